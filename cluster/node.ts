/**
 * The real node next to the local control plane: containerd + runc + the CNI plugins, kubelet, kube-proxy and
 * kube-scheduler v1.34.4, and the Knative Serving autoscaler and activator. Everything that needs pod networking
 * runs inside the node's network namespace (`node-network.ts`) and one mount namespace of its own (pod mounts never
 * show up in the machine's mount table, and vanish with the last node process). See docs/cluster.md, "The node".
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeBinaries } from './binaries.js';
import type { IstioProcessName } from './istio-config.js';
import type { KnativePathProcessName } from './knative-path.js';
import { installObjects } from './controllers.js';
import { KubeRequestError, kubeRequest, writeKubeconfig, type KubeTarget } from './kube.js';
import { leaseHeld } from './objects.js';
import {
  containerdConfig,
  cniConfig,
  egressSelectorConfig,
  kubeletConfig,
  kubeProxyConfig,
  nodePaths,
  type NodeLayout,
} from './node-config.js';
import {
  createCgroupRoot,
  createMountNamespace,
  killAll,
  nodeLayout,
  podNetnsFiles,
  processesInCgroupRoot,
  removeNodeLeftovers,
  writeKubeletClientCert,
  type KubeletClientCert,
} from './node-host.js';
import { NODE_NETWORK, createNodeNetns, fetchInNode, netnsPath, runCommand } from './node-network.js';
import {
  REPO_ROOT,
  elapsed,
  freePorts,
  isProcessAlive,
  sleep,
  spawnLogged,
  terminateProcess,
  waitFor,
  type Log,
} from './util.js';

/** Names of the node's processes, also their log file names (`<dir>/<name>.log`). */
export type NodeProcessName =
  | 'apiserver-bridge'
  | 'apiserver-bridge-node'
  | 'egress-proxy'
  | 'containerd'
  | 'kubelet'
  | 'kube-proxy'
  | 'kube-scheduler'
  | 'knative-autoscaler'
  | 'knative-activator';

/** A running node process, as recorded in the cluster's state file (the Knative path's processes included). */
export interface NodeProcess {
  name: NodeProcessName | KnativePathProcessName | IstioProcessName;
  pid: number;
  binary: string;
  log: string;
}

/** What a running node exposes to tests, the demo and `status`. */
export interface NodeInfo {
  /** `<cluster dir>/node` */
  root: string;
  /** The node's network namespace (`ip netns` name); `nsenter --net=/var/run/netns/<netns>` enters it. */
  netns: string;
  nodeName: string;
  nodeIp: string;
  podCidr: string;
  serviceCidr: string;
  cgroupRoot: string;
  /** containerd's socket: `ctr --address <it> -n k8s.io ...`, or `importImages`. */
  containerdAddress: string;
  sandboxImage: string;
  /** Port of the kube-scheduler's health endpoint on 127.0.0.1. */
  schedulerPort: number;
  processes: NodeProcess[];
}

/** The identities the node's components authenticate as (token file rows, see control-plane.ts). */
export const NODE_IDENTITIES = {
  kubelet: { user: (nodeName: string) => `system:node:${nodeName}`, groups: ['system:nodes'] },
  'kube-proxy': { user: () => 'system:kube-proxy', groups: [] as string[] },
  'kube-scheduler': { user: () => 'system:kube-scheduler', groups: [] as string[] },
} as const;
/** A component that authenticates with its own token. */
export type NodeIdentity = keyof typeof NODE_IDENTITIES;

/** Everything a node process needs to know to start. */
interface NodeContext {
  dir: string;
  layout: NodeLayout;
  binaries: NodeBinaries;
  apiserverPort: number;
  /** Admin target (the Knative processes run as admin, like the Serving controller). */
  target: KubeTarget;
  kubeconfigs: Record<NodeIdentity | 'admin', string>;
  schedulerPort: number;
  profilingPorts: { autoscaler: number; activator: number };
}

type Where = 'host' | 'node';

interface NodeProcessSpec {
  /** `node`: inside the node's network and mount namespaces; `host`: next to the API server. */
  where: Where;
  /** The binary is one of this repository's TypeScript modules, run by this Node.js with tsx's loader. */
  typescript?: boolean;
  command(ctx: NodeContext): { binary: string; args: string[]; env?: Record<string, string> };
  ready(ctx: NodeContext): Promise<boolean>;
  stopGraceMs: number;
}

const SERVING_NAMESPACE = 'knative-serving';
const NODE_SYSTEM_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'system', 'node');
/** The node's objects: the activator's Service and Endpoints, the local-images admission policy. */
const NODE_SYSTEM_FILES = ['knative-serving.yaml', 'local-images.yaml'].map((f) =>
  path.join(NODE_SYSTEM_DIR, f),
);
const NODE_DIR = 'node';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ACTIVATOR_PORT = 8012;

async function socketAnswers(command: string, args: string[]): Promise<boolean> {
  try {
    return (await runCommand(command, args, { timeoutMs: 5_000 })).code === 0;
  } catch {
    return false;
  }
}

/** Any HTTP answer counts: the port is served. */
async function servedInNode(
  netns: string,
  url: string,
  headers: Record<string, string> = {},
): Promise<boolean> {
  try {
    await fetchInNode(netns, url, { headers, timeoutMs: 2_000, insecureTls: true });
    return true;
  } catch {
    return false;
  }
}

async function okInNode(netns: string, url: string, headers: Record<string, string> = {}): Promise<boolean> {
  try {
    return (await fetchInNode(netns, url, { headers, timeoutMs: 2_000, insecureTls: true })).status === 200;
  } catch {
    return false;
  }
}

interface NodeCondition {
  type: string;
  status: string;
}

/** Whether the Node object reports Ready=True. */
export async function nodeReady(target: KubeTarget, nodeName: string): Promise<boolean> {
  try {
    const { body } = await kubeRequest<{ status?: { conditions?: NodeCondition[] } }>(
      target,
      'GET',
      `/api/v1/nodes/${nodeName}`,
    );
    return body.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  } catch (err) {
    if (err instanceof KubeRequestError) return false;
    throw err;
  }
}

/** kube-scheduler's /healthz on 127.0.0.1 (self-signed serving certificate). */
async function schedulerHealthy(port: number): Promise<boolean> {
  try {
    const result = await runCommand(
      process.execPath,
      [
        '-e',
        `fetch('https://127.0.0.1:${port}/healthz').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))`,
      ],
      { timeoutMs: 5_000, env: { ...process.env, NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_NO_WARNINGS: '1' } },
    );
    return result.code === 0;
  } catch {
    return false;
  }
}

/** The per-process table: how each node process is started, where, and when it counts as ready. */
export const NODE_PROCESSES: Readonly<Record<NodeProcessName, NodeProcessSpec>> = {
  // The API server's port inside the node namespace (127.0.0.1 and the node IP): a Unix socket on the shared
  // filesystem carries the connections to 127.0.0.1 of the API server's namespace.
  'apiserver-bridge': {
    where: 'host',
    command: (ctx) => ({
      binary: 'socat',
      args: [
        `UNIX-LISTEN:${nodePaths(ctx.layout.root).apiserverSocket},fork,unlink-early,mode=600`,
        `TCP:127.0.0.1:${ctx.apiserverPort}`,
      ],
    }),
    ready: (ctx) => Promise.resolve(existsSync(nodePaths(ctx.layout.root).apiserverSocket)),
    stopGraceMs: 2_000,
  },
  'apiserver-bridge-node': {
    where: 'node',
    command: (ctx) => ({
      binary: 'socat',
      args: [
        `TCP-LISTEN:${ctx.apiserverPort},fork,reuseaddr`,
        `UNIX-CONNECT:${nodePaths(ctx.layout.root).apiserverSocket}`,
      ],
    }),
    ready: (ctx) =>
      servedInNode(ctx.layout.netns, `https://${NODE_NETWORK.nodeIp}:${ctx.apiserverPort}/readyz`),
    stopGraceMs: 2_000,
  },
  'egress-proxy': {
    where: 'host',
    typescript: true,
    command: (ctx) => ({
      binary: path.join(REPO_ROOT, 'cluster', 'egress-proxy.ts'),
      args: [nodePaths(ctx.layout.root).egressSocket, netnsPath(ctx.layout.netns)],
    }),
    ready: (ctx) => Promise.resolve(existsSync(nodePaths(ctx.layout.root).egressSocket)),
    stopGraceMs: 2_000,
  },
  containerd: {
    where: 'node',
    command: (ctx) => ({
      binary: 'containerd',
      args: ['--config', nodePaths(ctx.layout.root).containerdConfig],
    }),
    ready: (ctx) =>
      socketAnswers('ctr', ['--address', nodePaths(ctx.layout.root).containerdSocket, 'version']),
    stopGraceMs: 10_000,
  },
  kubelet: {
    where: 'node',
    command: (ctx) => ({
      binary: ctx.binaries.kubelet,
      args: [
        `--config=${nodePaths(ctx.layout.root).kubeletConfig}`,
        `--kubeconfig=${ctx.kubeconfigs.kubelet}`,
        `--root-dir=${nodePaths(ctx.layout.root).kubeletRoot}`,
        `--hostname-override=${ctx.layout.nodeName}`,
        `--node-ip=${NODE_NETWORK.nodeIp}`,
      ],
    }),
    ready: (ctx) => nodeReady(ctx.target, ctx.layout.nodeName),
    stopGraceMs: 10_000,
  },
  'kube-proxy': {
    where: 'node',
    command: (ctx) => ({
      binary: ctx.binaries.kubeProxy,
      args: [`--config=${nodePaths(ctx.layout.root).kubeProxyConfig}`],
    }),
    ready: (ctx) => okInNode(ctx.layout.netns, 'http://127.0.0.1:10256/healthz'),
    stopGraceMs: 5_000,
  },
  'kube-scheduler': {
    where: 'host',
    command: (ctx) => ({
      binary: ctx.binaries.kubeScheduler,
      args: [
        `--kubeconfig=${ctx.kubeconfigs['kube-scheduler']}`,
        `--authentication-kubeconfig=${ctx.kubeconfigs['kube-scheduler']}`,
        `--authorization-kubeconfig=${ctx.kubeconfigs['kube-scheduler']}`,
        '--leader-elect=false',
        '--bind-address=127.0.0.1',
        `--secure-port=${ctx.schedulerPort}`,
      ],
    }),
    ready: (ctx) => schedulerHealthy(ctx.schedulerPort),
    stopGraceMs: 5_000,
  },
  'knative-autoscaler': {
    where: 'node',
    command: (ctx) => ({
      binary: ctx.binaries.autoscaler,
      args: [`--kubeconfig=${ctx.kubeconfigs.admin}`],
      env: {
        SYSTEM_NAMESPACE: SERVING_NAMESPACE,
        POD_NAME: 'autoscaler-local',
        // The bucket leases carry this address; the activator dials it (see nodeHostsFile).
        POD_IP: NODE_NETWORK.nodeIp,
        PROFILING_PORT: String(ctx.profilingPorts.autoscaler),
      },
    }),
    // One autoscaler owns every bucket once it holds their leases.
    ready: (ctx) => leaseHeld(ctx.target, SERVING_NAMESPACE, 'autoscaler-bucket-'),
    stopGraceMs: 5_000,
  },
  'knative-activator': {
    where: 'node',
    command: (ctx) => ({
      binary: ctx.binaries.activator,
      args: [`--kubeconfig=${ctx.kubeconfigs.admin}`],
      env: {
        SYSTEM_NAMESPACE: SERVING_NAMESPACE,
        POD_NAME: 'activator-local',
        POD_IP: NODE_NETWORK.nodeIp,
        PROFILING_PORT: String(ctx.profilingPorts.activator),
      },
    }),
    // Its health check (a kubelet-style probe) passes once its stats connection to the autoscaler is up.
    ready: (ctx) =>
      okInNode(ctx.layout.netns, `http://${NODE_NETWORK.nodeIp}:${ACTIVATOR_PORT}/`, {
        'K-Kubelet-Probe': 'activator',
      }),
    // It drains for up to a minute; nothing is in flight once the cluster goes down.
    stopGraceMs: 0,
  },
};

/** Every node process, for logs and status output. */
export const NODE_PROCESS_NAMES = Object.keys(NODE_PROCESSES) as NodeProcessName[];

/** Start phases: the bridges before the controllers (webhook calls use the egress), the rest after them. */
export const BRIDGE_PROCESSES: readonly NodeProcessName[] = [
  'apiserver-bridge',
  'apiserver-bridge-node',
  'egress-proxy',
];
const RUNTIME_PROCESSES: readonly NodeProcessName[] = ['containerd'];
const AGENT_PROCESSES: readonly NodeProcessName[] = [
  'kubelet',
  'kube-proxy',
  'kube-scheduler',
  'knative-autoscaler',
  'knative-activator',
];
/** Stop order: the agents first, so nothing restarts a pod while containerd goes away; the bridges last. */
const STOP_ORDER: readonly NodeProcessName[] = [
  'kube-scheduler',
  'knative-activator',
  'knative-autoscaler',
  'kubelet',
  'kube-proxy',
  'containerd',
  'egress-proxy',
  'apiserver-bridge-node',
  'apiserver-bridge',
];

/** The flags kube-apiserver needs next to a node (see {@link prepareNode}). */
export function apiserverNodeArgs(layout: NodeLayout, client: KubeletClientCert): string[] {
  return [
    // The `kubernetes` Service's endpoint: pods reach the API server through it (node IP, bridged to loopback).
    `--advertise-address=${NODE_NETWORK.nodeIp}`,
    // Never resolve node names through the machine's resolver.
    '--kubelet-preferred-address-types=InternalIP',
    `--kubelet-client-certificate=${client.cert}`,
    `--kubelet-client-key=${client.key}`,
    `--egress-selector-config-file=${nodePaths(layout.root).egressConfig}`,
  ];
}

/** What {@link prepareNode} returns: the layout and the API server's client identity towards the kubelet. */
export interface PreparedNode {
  layout: NodeLayout;
  kubeletClient: KubeletClientCert;
}

/**
 * Everything the node needs before the API server starts: the network and mount namespaces, the cgroup root, the
 * kubelet client certificate and the configuration files.
 */
export async function prepareNode(clusterDir: string, sandboxImage: string): Promise<PreparedNode> {
  const layout = nodeLayout(clusterDir, sandboxImage);
  const p = nodePaths(layout.root);
  await removeNodeLeftovers(clusterDir, () => undefined);
  for (const dir of [
    p.containerdRoot,
    p.containerdState,
    p.runcRoot,
    p.cniConfDir,
    p.cniDataDir,
    p.kubeletRoot,
    p.podLogs,
  ]) {
    mkdirSync(dir, { recursive: true });
  }
  await createNodeNetns(layout.netns);
  await createMountNamespace(layout);
  createCgroupRoot(layout.cgroupRoot);
  const kubeletClient = await writeKubeletClientCert(p.pki);
  writeFileSync(p.containerdConfig, containerdConfig(layout));
  writeFileSync(path.join(p.cniConfDir, '10-config-restarter.conflist'), cniConfig(layout));
  writeFileSync(p.kubeletConfig, kubeletConfig(layout));
  writeFileSync(p.egressConfig, egressSelectorConfig(layout));
  return { layout, kubeletClient };
}

/** Spawns one node process; returns once its PID runs the real binary (nsenter has exec'd it). */
async function spawnNodeProcess(
  name: NodeProcessName,
  ctx: NodeContext,
  detached: boolean,
): Promise<NodeProcess> {
  const spec = NODE_PROCESSES[name];
  const { binary, args, env } = spec.command(ctx);
  const log = path.join(ctx.dir, `${name}.log`);
  const baseEnv: NodeJS.ProcessEnv = { PATH, HOME: process.env.HOME, ...env };
  const wrapped: [string, string[]] = spec.typescript
    ? [process.execPath, [binary, ...args]]
    : spec.where === 'node'
      ? [
          'nsenter',
          [
            `--net=${netnsPath(ctx.layout.netns)}`,
            `--mount=${nodePaths(ctx.layout.root).mountNamespace}`,
            '--',
            binary,
            ...args,
          ],
        ]
      : [binary, args];
  const processEnv = spec.typescript ? { ...baseEnv, NODE_OPTIONS: '--import tsx' } : baseEnv;
  // tsx resolves from the repository; the others start in the cluster directory like the controllers.
  const pid = spawnLogged(
    wrapped[0],
    wrapped[1],
    log,
    spec.typescript ? REPO_ROOT : ctx.dir,
    detached,
    processEnv,
  );
  const deadline = Date.now() + 5_000;
  while (!isProcessAlive(pid, binary) && Date.now() < deadline) await sleep(20);
  return { name, pid, binary, log };
}

/** Starts a group of node processes at once and waits until each is ready. */
async function startGroup(
  names: readonly NodeProcessName[],
  ctx: NodeContext,
  detached: boolean,
  timeoutMs: number,
  log: Log,
  onSpawned: (p: NodeProcess) => void,
): Promise<void> {
  const start = Date.now();
  const processes: NodeProcess[] = [];
  for (const name of names) {
    const p = await spawnNodeProcess(name, ctx, detached);
    processes.push(p);
    onSpawned(p);
  }
  await Promise.all(
    processes.map(async (p) => {
      await waitFor(
        p.name,
        () => NODE_PROCESSES[p.name as NodeProcessName].ready(ctx),
        () => isProcessAlive(p.pid, p.binary),
        p.log,
        timeoutMs,
      );
      log(`${p.name} ready (${elapsed(start)} s, pid ${p.pid})`);
    }),
  );
}

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  dir: string;
  prepared: PreparedNode;
  binaries: NodeBinaries;
  apiserverPort: number;
  target: KubeTarget;
  /** Kubeconfigs: the admin one and one per {@link NodeIdentity}. */
  kubeconfigs: Record<NodeIdentity | 'admin', string>;
  detached: boolean;
  timeoutMs: number;
  log: Log;
  /** Called whenever the recorded state changes, so a failed start can still be stopped. */
  onChange: (info: NodeInfo) => void;
}

/** The node as far as it got: started in phases by {@link startNodeBridges} and {@link startNodeAgents}. */
export interface NodeHandle {
  info: NodeInfo;
  ctx: NodeContext;
}

/** Phase 1, right after the API server: the bridges into the node namespace and the API server's egress proxy. */
export async function startNodeBridges(options: StartNodeOptions): Promise<NodeHandle> {
  const { layout } = options.prepared;
  const p = nodePaths(layout.root);
  const [schedulerPort, autoscalerProfiling, activatorProfiling] = (await freePorts(3)) as [
    number,
    number,
    number,
  ];
  const ctx: NodeContext = {
    dir: options.dir,
    layout,
    binaries: options.binaries,
    apiserverPort: options.apiserverPort,
    target: options.target,
    kubeconfigs: options.kubeconfigs,
    schedulerPort,
    profilingPorts: { autoscaler: autoscalerProfiling, activator: activatorProfiling },
  };
  writeFileSync(p.kubeProxyConfig, kubeProxyConfig(layout, options.kubeconfigs['kube-proxy']));
  const info: NodeInfo = {
    root: layout.root,
    netns: layout.netns,
    nodeName: layout.nodeName,
    nodeIp: NODE_NETWORK.nodeIp,
    podCidr: NODE_NETWORK.podCidr,
    serviceCidr: NODE_NETWORK.serviceCidr,
    cgroupRoot: layout.cgroupRoot,
    containerdAddress: p.containerdSocket,
    sandboxImage: layout.sandboxImage,
    schedulerPort,
    processes: [],
  };
  const record = (proc: NodeProcess): void => {
    info.processes.push(proc);
    options.onChange(info);
  };
  await startGroup(BRIDGE_PROCESSES, ctx, options.detached, options.timeoutMs, options.log, record);
  await startGroup(RUNTIME_PROCESSES, ctx, options.detached, options.timeoutMs, options.log, record);
  return { info, ctx };
}

/**
 * Phase 2, once the controllers run: the node's objects (`system/node/`: the activator's Service and Endpoints, the
 * local-images admission policy), then kubelet, kube-proxy, kube-scheduler and the Knative autoscaler and activator; returns once the Node is Ready
 * and each is serving.
 */
export async function startNodeAgents(
  handle: NodeHandle,
  options: Pick<StartNodeOptions, 'detached' | 'timeoutMs' | 'log' | 'onChange'>,
): Promise<NodeInfo> {
  const { info, ctx } = handle;
  await installObjects(ctx.target, NODE_SYSTEM_FILES, (manifest) => {
    for (const subset of (manifest as { subsets?: { addresses?: { ip: string }[] }[] }).subsets ?? []) {
      for (const address of subset.addresses ?? []) address.ip = NODE_NETWORK.nodeIp;
    }
  });
  await startGroup(AGENT_PROCESSES, ctx, options.detached, options.timeoutMs, options.log, (proc) => {
    info.processes.push(proc);
    options.onChange(info);
  });
  return info;
}

/** Writes the kubeconfig of each node identity (server: the API server's loopback port, valid in both namespaces). */
export function writeNodeKubeconfigs(
  dir: string,
  server: string,
  caData: string,
  tokens: Record<NodeIdentity, string>,
  adminKubeconfig: string,
): Record<NodeIdentity | 'admin', string> {
  const result = { admin: adminKubeconfig } as Record<NodeIdentity | 'admin', string>;
  for (const identity of Object.keys(NODE_IDENTITIES) as NodeIdentity[]) {
    const file = path.join(dir, NODE_DIR, `${identity}.kubeconfig`);
    writeKubeconfig(file, { server, caData, token: tokens[identity], name: identity });
    result[identity] = file;
  }
  return result;
}

/**
 * Stops the node recorded in the state: the agents first (scheduler, Knative, kubelet, kube-proxy), every pod's
 * containers (SIGKILL to the node's cgroup tree), containerd, the bridges; then sweeps whatever is left (processes in the node's
 * namespaces or cgroups, pod network namespaces, mounts) and removes the namespaces and cgroups. Returns the names
 * of the processes that were still running.
 */
export async function stopNode(clusterDir: string, info: NodeInfo | undefined, log: Log): Promise<string[]> {
  const running: string[] = [];
  const processes = info?.processes ?? [];
  const byName = new Map(processes.map((p) => [p.name, p]));
  let podNetns: string[] = [];
  for (const name of STOP_ORDER) {
    const p = byName.get(name);
    if (name === 'containerd' && p && isProcessAlive(p.pid, p.binary)) {
      // With kubelet gone nothing restarts a container: kill them all at once (their shims are swept below with
      // the node namespace's other processes), after noting the pods' network namespace files.
      podNetns = podNetnsFiles(p.pid);
      if (info) killAll(processesInCgroupRoot(info.cgroupRoot));
    }
    if (!p || !isProcessAlive(p.pid, p.binary)) continue;
    running.push(name);
    await terminateProcess(p.pid, p.binary, NODE_PROCESSES[name].stopGraceMs);
    // socat forks one child per connection.
    if (p.binary === 'socat') killProcessGroup(p.pid);
    log(`stopped ${name} (pid ${p.pid})`);
  }
  await removeNodeLeftovers(clusterDir, log, podNetns);
  return running;
}

function killProcessGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // No such group (not detached) or already gone.
  }
}
