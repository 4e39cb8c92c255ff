/**
 * What a node changes on the machine, and takes back: its cgroup root, its mount namespace (with the files bind-mounted
 * in it), the kubelet client certificate, and the sweep that removes every trace of a node (processes, pod network
 * namespaces, mounts, cgroups, the network namespace). See docs/cluster.md, "Mounts, cgroups and kernel settings" and
 * "Stopping".
 */
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import {
  KUBELET_KERNEL_TUNABLES,
  nodeHostsFile,
  nodePaths,
  nodeResolvConf,
  type NodeLayout,
} from './node-config.js';
import {
  mountsUnder,
  mustRun,
  netnsExists,
  nodeNetnsName,
  processesInNetns,
  removeNodeNetns,
  runCommand,
} from './node-network.js';
import { sleep, type Log } from './util.js';

const NODE_DIR = 'node';
const CGROUP_ROOT = '/sys/fs/cgroup';

/** The node's cgroup root in every cgroup v1 hierarchy: a name of its own per cluster directory. */
export function nodeCgroupRoot(clusterDir: string): string {
  return `/config-restarter-${createHash('sha256').update(clusterDir).digest('hex').slice(0, 10)}`;
}

/** The node's layout for a cluster directory (names derived from the directory, no state needed). */
export function nodeLayout(clusterDir: string, sandboxImage: string): NodeLayout {
  return {
    root: path.join(clusterDir, NODE_DIR),
    netns: nodeNetnsName(clusterDir),
    nodeName: 'local-node',
    cgroupRoot: nodeCgroupRoot(clusterDir),
    sandboxImage,
  };
}

/** The PEM files of the API server's client identity towards the kubelet. */
export interface KubeletClientCert {
  ca: string;
  cert: string;
  key: string;
}

/** A CA and a client certificate (`system:masters`) the API server presents to the kubelet (logs, exec). */
export async function writeKubeletClientCert(pki: string): Promise<KubeletClientCert> {
  mkdirSync(pki, { recursive: true, mode: 0o700 });
  const files = {
    ca: path.join(pki, 'kubelet-client-ca.crt'),
    caKey: path.join(pki, 'kubelet-client-ca.key'),
    cert: path.join(pki, 'apiserver-kubelet-client.crt'),
    key: path.join(pki, 'apiserver-kubelet-client.key'),
    csr: path.join(pki, 'apiserver-kubelet-client.csr'),
    ext: path.join(pki, 'client.ext'),
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await mustRun('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    files.caKey,
    '-out',
    files.ca,
    '-days',
    '3650',
    '-subj',
    '/CN=config-restarter-kubelet-client-ca',
  ]);
  await mustRun('openssl', [
    'req',
    ...ec,
    '-keyout',
    files.key,
    '-out',
    files.csr,
    '-subj',
    '/O=system:masters/CN=kube-apiserver-kubelet-client',
  ]);
  writeFileSync(files.ext, 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
  await mustRun('openssl', [
    'x509',
    '-req',
    '-in',
    files.csr,
    '-CA',
    files.ca,
    '-CAkey',
    files.caKey,
    '-CAcreateserial',
    '-out',
    files.cert,
    '-days',
    '3650',
    '-extfile',
    files.ext,
  ]);
  return { ca: files.ca, cert: files.cert, key: files.key };
}

/** Creates the persistent mount namespace of the node's processes and the files bind-mounted inside it. */
export async function createMountNamespace(layout: NodeLayout): Promise<void> {
  const p = nodePaths(layout.root);
  mkdirSync(p.overlayDir, { recursive: true });
  writeFileSync(p.mountNamespace, '');
  await mustRun('unshare', [`--mount=${p.mountNamespace}`, '--propagation', 'private', 'true']);
  const binds: [string, string][] = [];
  for (const [key, value] of Object.entries(KUBELET_KERNEL_TUNABLES)) {
    const file = path.join(p.overlayDir, key.replaceAll('/', '.'));
    writeFileSync(file, `${value}\n`);
    binds.push([file, `/proc/sys/${key}`]);
  }
  const hosts = path.join(p.overlayDir, 'hosts');
  writeFileSync(hosts, nodeHostsFile());
  binds.push([hosts, '/etc/hosts']);
  const resolvConf = path.join(p.overlayDir, 'resolv.conf');
  writeFileSync(resolvConf, nodeResolvConf());
  binds.push([resolvConf, '/etc/resolv.conf']);
  const script = binds.map(([from, to]) => `mount --bind ${from} ${to}`).join(' && ');
  await mustRun('nsenter', [`--mount=${p.mountNamespace}`, '--', 'sh', '-c', script]);
}

/** Creates the node's cgroup root in every cgroup v1 hierarchy (cpuset needs its cpus and mems filled in). */
export function createCgroupRoot(cgroupRoot: string): void {
  for (const hierarchy of cgroupHierarchies()) {
    const dir = path.join(CGROUP_ROOT, hierarchy, cgroupRoot);
    mkdirSync(dir, { recursive: true });
    if (hierarchy === 'cpuset') {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        copyFileSync(path.join(CGROUP_ROOT, hierarchy, file), path.join(dir, file));
      }
    }
  }
}

/**
 * The cgroup hierarchies mounted under /sys/fs/cgroup: the v1 ones, and with `withUnified` also the hybrid layout's
 * cgroup2 `unified` one (kubelet does not need the root there, but runc mirrors the pods' cgroups into it).
 */
function cgroupHierarchies(withUnified = false): string[] {
  const types = withUnified ? ['cgroup', 'cgroup2'] : ['cgroup'];
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .filter((f) => types.includes(f[2] ?? '') && f[1]?.startsWith(`${CGROUP_ROOT}/`))
    .map((f) => path.relative(CGROUP_ROOT, f[1] as string));
}

/**
 * The pods' network namespace files (`/var/run/netns/cni-…`): containerd bind-mounts each into the node's mount
 * namespace, so they are listed in the mount table of any process there (e.g. containerd's).
 */
export function podNetnsFiles(pidInNode: number): string[] {
  try {
    return parseNetnsMounts(readFileSync(`/proc/${pidInNode}/mounts`, 'utf8'));
  } catch {
    return [];
  }
}

/** The `cni-…` network namespace files in a mount table (`/proc/<pid>/mounts` format). */
export function parseNetnsMounts(mounts: string): string[] {
  return (
    mounts
      .split('\n')
      .map((line) => line.split(' '))
      // /var/run is usually a link to /run: the table shows the resolved path.
      .filter((f) => f[2] === 'nsfs' && /^(\/var)?\/run\/netns\/cni-/.test(f[1] ?? ''))
      .map((f) => f[1] as string)
  );
}

/** PIDs of the processes in the node's cgroup tree (containers and their shims' children). */
export function processesInCgroupRoot(cgroupRoot: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    try {
      for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        pids.add(Number(pid));
      }
    } catch {
      // Gone meanwhile.
    }
    for (const entry of entries) {
      if (!entry.includes('.')) walk(path.join(dir, entry));
    }
  };
  for (const hierarchy of ['pids', 'memory', 'cpu', 'freezer'])
    walk(path.join(CGROUP_ROOT, hierarchy, cgroupRoot));
  return [...pids];
}

/** Removes the node's cgroup directories, deepest first (they must be empty of processes). */
function removeCgroupRoot(cgroupRoot: string): void {
  const remove = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return;
    }
    for (const entry of entries) remove(path.join(dir, entry));
    try {
      rmdirSync(dir);
    } catch {
      // Still busy (a process survived): reported by the caller's checks.
    }
  };
  for (const hierarchy of cgroupHierarchies(true)) remove(path.join(CGROUP_ROOT, hierarchy, cgroupRoot));
}

export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** Removes `/var/log/containers` links kubelet made into this node's pod log directory. */
function removeContainerLogLinks(podLogs: string): void {
  const dir = '/var/log/containers';
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const entry of entries) {
    const link = path.join(dir, entry);
    try {
      if (readlinkSync(link).startsWith(`${podLogs}/`)) rmSync(link, { force: true });
    } catch {
      // Not a link.
    }
  }
}

/**
 * Removes whatever a node of this cluster directory may have left: processes in its network namespace or cgroup
 * tree, pod network namespaces, mounts below the node directory, the mount namespace, the cgroup tree and the
 * network namespace. Safe to call when nothing is left.
 */
export async function removeNodeLeftovers(
  clusterDir: string,
  log: Log,
  podNetns: string[] = [],
): Promise<void> {
  const layout = nodeLayout(clusterDir, '');
  const p = nodePaths(layout.root);
  // Without state (a crashed start), the node's mount namespace still lists its pods' network namespace files.
  if (podNetns.length === 0 && mountsUnder(layout.root).includes(p.mountNamespace)) {
    const mounts = await runCommand('nsenter', [
      `--mount=${p.mountNamespace}`,
      '--',
      'cat',
      '/proc/self/mounts',
    ]);
    podNetns = parseNetnsMounts(mounts.stdout);
  }
  for (let round = 0; round < 20; round++) {
    const pids = [...processesInNetns(layout.netns), ...processesInCgroupRoot(layout.cgroupRoot)];
    if (pids.length === 0) break;
    if (round === 0) log(`killing ${pids.length} leftover node process(es): ${pids.join(', ')}`);
    killAll(pids);
    await sleep(100);
  }
  for (const file of podNetns) {
    if (!existsSync(file)) continue;
    await runCommand('umount', [file]);
    rmSync(file, { force: true });
  }
  for (const mount of mountsUnder(layout.root)) await runCommand('umount', ['-l', mount]);
  removeCgroupRoot(layout.cgroupRoot);
  if (netnsExists(layout.netns)) await removeNodeNetns(layout.netns);
  removeContainerLogLinks(p.podLogs);
}
