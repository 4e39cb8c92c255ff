import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, stopCluster, type ClusterInfo } from '../../cluster/control-plane.js';
import { buildImages, importImages } from '../../cluster/images.js';
import { kubeRequest } from '../../cluster/kube.js';
import { podNetnsFiles } from '../../cluster/node-host.js';
import { NETNS_DIR, runCommand } from '../../cluster/node-network.js';
import { eventually } from '../../cluster/objects.js';
import { isProcessAlive } from '../../cluster/util.js';

/** What the machine looks like from here: what a node may add and `cluster:down` must take away again. */
interface Snapshot {
  netns: string[];
  mounts: string[];
  cgroups: string[];
  links: string;
  iptables: string;
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** The top-level cgroups of every hierarchy (a node's kubepods tree lives under its own cgroup root there). */
function topCgroups(): string[] {
  return list('/sys/fs/cgroup').flatMap((h) =>
    list(path.join('/sys/fs/cgroup', h))
      .filter((e) => !e.includes('.') && !['notify_on_release', 'release_agent', 'tasks'].includes(e))
      .map((e) => `${h}/${e}`),
  );
}

async function output(command: string, args: string[]): Promise<string> {
  const result = await runCommand(command, args);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

async function snapshot(): Promise<Snapshot> {
  return {
    netns: list(NETNS_DIR),
    mounts: readFileSync('/proc/mounts', 'utf8').split('\n').filter(Boolean).sort(),
    cgroups: topCgroups(),
    links: (await output('ip', ['-o', 'link', 'show'])).replace(/\s+/g, ' '),
    // Rules only (counters and the dump's timestamps change by themselves).
    iptables: (await output('iptables-save', []))
      .split('\n')
      .filter((l) => l.startsWith('-') || l.startsWith(':'))
      .map((l) => l.replace(/\[\d+:\d+\]/, ''))
      .join('\n'),
  };
}

/** PIDs of processes that still refer to `dir` (binary, arguments or working directory). */
function processesUsing(dir: string): number[] {
  return list('/proc')
    .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
    .filter((pid) => {
      try {
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmdline.includes(dir) || readlinkSync(`/proc/${pid}/cwd`).startsWith(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('cluster:down with a node', () => {
  const dir = path.join(os.tmpdir(), `config-restarter-teardown-${process.pid}`);
  let before: Snapshot;
  let cluster: ClusterInfo | undefined;

  afterAll(async () => {
    await stopCluster(dir, () => undefined, { keepLogs: false });
  }, 120_000);

  it('leaves no process, mount, cgroup, namespace, link or iptables rule behind', async () => {
    before = await snapshot();
    cluster = await startCluster({ dir, log: () => undefined, detached: false });
    const node = cluster.node;
    if (!node) throw new Error('started without a node');
    const target = { server: cluster.server, caData: cluster.caData, token: cluster.adminToken };

    // While it runs: its namespace, its cgroup root and a running pod with mounted volumes.
    expect(list(NETNS_DIR)).toContain(node.netns);
    expect(topCgroups()).toContain(`memory${node.cgroupRoot}`);
    const images = await buildImages(['helloworld'], { log: () => undefined });
    await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
    await eventually('default ServiceAccount', async () =>
      (await kubeRequest(target, 'GET', '/api/v1/namespaces/default/serviceaccounts/default', undefined, {
        allowStatus: [404],
      }).then((r) => r.status === 200))
        ? true
        : undefined,
    );
    await kubeRequest(target, 'POST', '/api/v1/namespaces/default/pods', {
      metadata: { name: 'sleeper' },
      spec: {
        terminationGracePeriodSeconds: 30,
        containers: [
          { name: 'app', image: images.helloworld.ref, env: [{ name: 'ENV_MESSAGE', value: 'hi' }] },
        ],
      },
    });
    await eventually(
      'pod sleeper Running',
      async () => {
        const { body } = await kubeRequest<{ status: { phase?: string } }>(
          target,
          'GET',
          '/api/v1/namespaces/default/pods/sleeper',
        );
        return body.status.phase === 'Running' ? true : undefined;
      },
      90_000,
    );
    const kubeletMounts = readFileSync(
      `/proc/${node.processes.find((p) => p.name === 'kubelet')?.pid}/mounts`,
      'utf8',
    );
    // The pod's volumes (its ServiceAccount token) are mounted in the node's own mount namespace only.
    expect(kubeletMounts).toContain(path.join(node.root, 'kubelet', 'pods'));
    expect(readFileSync('/proc/mounts', 'utf8')).not.toContain(path.join(node.root, 'kubelet', 'pods'));

    // The pod's network namespace, as containerd made it (`/var/run/netns/cni-…`).
    const containerd = node.processes.find((p) => p.name === 'containerd');
    const podNetns = podNetnsFiles(containerd?.pid ?? 0).map((f) => path.basename(f));

    // With the pod still running: down.
    expect(await stopCluster(dir, () => undefined)).toBe(true);

    const after = await snapshot();
    // Other clusters on this machine may come and go meanwhile: namespaces, mounts and cgroups are compared as far
    // as they can be this cluster's (its namespace, its pods' namespaces, its directory, its cgroup root).
    const ours = (entries: string[]): string[] =>
      entries.filter(
        (e) =>
          e.includes(dir) ||
          e.includes(node.netns) ||
          e.includes(node.cgroupRoot) ||
          podNetns.some((n) => e.includes(n)),
      );
    expect(podNetns.length).toBeGreaterThan(0);
    expect(ours(after.netns)).toEqual(ours(before.netns));
    expect(ours(after.mounts)).toEqual(ours(before.mounts));
    expect(ours(after.cgroups)).toEqual(ours(before.cgroups));
    expect(after.links).toEqual(before.links);
    expect(after.iptables).toEqual(before.iptables);
    expect(processesUsing(dir)).toEqual([]);
    for (const p of [...node.processes, ...cluster.controllers])
      expect(isProcessAlive(p.pid, p.binary)).toBe(false);
  }, 300_000);
});
