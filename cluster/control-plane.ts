import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureBinary, ensureNodeBinaries, type Binaries, type NodeBinaries } from './binaries.js';
import { ensureHostPackages } from './host-packages.js';
import {
  CONTROLLER_NAMES,
  CONTROLLERS,
  startControllers,
  stopControllers,
  type ControllerName,
  type ControllerProcess,
} from './controllers.js';
import { installCrds } from './crds.js';
import { startIstio } from './istio-path.js';
import { startKnativePath } from './knative-path.js';
import { buildImages, importImages, type ImageName } from './images.js';
import { KubeRequestError, kubeRequest, writeKubeconfig, type KubeTarget } from './kube.js';
import {
  NODE_IDENTITIES,
  NODE_PROCESS_NAMES,
  apiserverNodeArgs,
  prepareNode,
  startNodeAgents,
  startNodeBridges,
  stopNode,
  writeNodeKubeconfigs,
  type NodeIdentity,
  type NodeInfo,
  type NodeProcess,
  type PreparedNode,
} from './node.js';
import { removeNodeLeftovers } from './node-host.js';
import { NODE_NETWORK } from './node-network.js';
import {
  REPO_ROOT,
  elapsed,
  freePorts,
  isProcessAlive,
  spawnLogged,
  stderrLog,
  terminateProcess,
  waitFor,
  type Log,
} from './util.js';

/** Options of {@link startCluster}. */
export interface StartClusterOptions {
  /** Cluster directory (state, logs, kubeconfig, data). Default: {@link defaultClusterDir}. */
  dir?: string;
  /**
   * Binaries to run; missing ones come from {@link ensureBinary} (build cache or TEST_ASSET_* / KUBEBUILDER_ASSETS).
   */
  binaries?: Partial<Binaries>;
  /**
   * Also run kube-controller-manager and the Knative Serving controller and webhook (default true). Without them
   * the control plane is etcd + kube-apiserver only: lighter, but nothing reconciles anything.
   */
  controllers?: boolean;
  /**
   * Also run a node (default true; needs the controllers): containerd, kubelet, kube-proxy, kube-scheduler and the
   * Knative autoscaler and activator in a network namespace of their own, so pods run. Needs root, the Debian
   * packages of {@link ensureHostPackages} (installed when missing) and the local images.
   */
  node?: boolean;
  /**
   * Also run the Knative path on the node (default false; needs the node): CoreDNS, the Kourier ingress (control
   * plane + Envoy gateway) and the Knative Eventing controller. See cluster/knative-path.ts.
   */
  knative?: boolean;
  /**
   * Also run Istio on top of the Knative path (default false; implies `knative`): istiod with its validation
   * webhook and the ingress gateway (pilot-agent + Envoy). See cluster/istio-path.ts.
   */
  istio?: boolean;
  /** Progress output. Default: stderr. */
  log?: Log;
  /** Time allowed for each of etcd, kube-apiserver, the CRDs and the controllers to become ready. Default 90 s. */
  timeoutMs?: number;
  /**
   * Run the processes in their own process group (default true) so they outlive the caller. Tests pass false:
   * a Ctrl-C in the terminal then reaches them too.
   */
  detached?: boolean;
}

/** A running local control plane. */
export interface ClusterInfo {
  dir: string;
  /** Admin kubeconfig (group system:masters). */
  kubeconfig: string;
  /** `https://127.0.0.1:<port>` */
  server: string;
  /** Base64 PEM of the apiserver's serving CA. */
  caData: string;
  /** Bearer token of the admin user. */
  adminToken: string;
  ports: { apiserver: number; etcd: number; etcdPeer: number };
  pids: { kubeApiserver: number; etcd: number };
  logs: { kubeApiserver: string; etcd: string };
  binaries: { kubeApiserver: string; etcd: string };
  /** The controller processes; empty when started without them. */
  controllers: ControllerProcess[];
  /** The node, when started with one. */
  node?: NodeInfo;
  startedAt: string;
  /** True when {@link startCluster} found this cluster already running and left it alone. */
  alreadyRunning: boolean;
}

/** Result of {@link clusterStatus}. */
export interface ClusterStatus {
  dir: string;
  /**
   * `running`: every process alive and /readyz answers 200. `unhealthy`: etcd and kube-apiserver alive but not
   * ready, or a controller is gone. `stale`: state left by an etcd or kube-apiserver that is gone. `stopped`: no
   * state.
   */
  state: 'running' | 'unhealthy' | 'stale' | 'stopped';
  /** `controllers` covers the node's processes too. */
  processes: { kubeApiserver: boolean; etcd: boolean; controllers: Partial<Record<string, boolean>> };
  info?: ClusterInfo;
}

type PersistedState = Omit<ClusterInfo, 'alreadyRunning'> & { formatVersion: 1; ready: boolean };

const STATE_FILE = 'state.json';
const DATA_DIR = 'data';

/** `$CLUSTER_DIR`, else `.cluster/` at the repository root (git-ignored). */
export function defaultClusterDir(): string {
  return path.resolve(process.env.CLUSTER_DIR || path.join(REPO_ROOT, '.cluster'));
}

function readState(dir: string): PersistedState | undefined {
  const file = path.join(dir, STATE_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const state = JSON.parse(readFileSync(file, 'utf8')) as PersistedState;
    // State written before controllers were recorded.
    state.controllers ??= [];
    return state;
  } catch {
    return undefined;
  }
}

function writeState(dir: string, state: PersistedState): void {
  writeFileSync(path.join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

function processesAlive(state: PersistedState): ClusterStatus['processes'] {
  const nodeProcesses = state.node?.processes ?? [];
  return {
    kubeApiserver:
      state.pids.kubeApiserver > 0 && isProcessAlive(state.pids.kubeApiserver, state.binaries.kubeApiserver),
    etcd: state.pids.etcd > 0 && isProcessAlive(state.pids.etcd, state.binaries.etcd),
    controllers: Object.fromEntries(
      [...state.controllers, ...nodeProcesses].map((c) => [c.name, isProcessAlive(c.pid, c.binary)]),
    ),
  };
}

function allAlive(alive: ClusterStatus['processes']): boolean {
  return alive.etcd && alive.kubeApiserver && Object.values(alive.controllers).every(Boolean);
}

function target(state: Pick<ClusterInfo, 'server' | 'caData' | 'adminToken'>): KubeTarget {
  return { server: state.server, caData: state.caData, token: state.adminToken };
}

async function isReady(state: PersistedState): Promise<boolean> {
  if (!state.caData) return false;
  try {
    const { status } = await kubeRequest(target(state), 'GET', '/readyz', undefined, { timeoutMs: 3_000 });
    return status === 200;
  } catch {
    return false;
  }
}

async function etcdHealthy(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2_000) });
    return res.ok && ((await res.json()) as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

function etcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=local',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=local=${peer}`,
    // A throw-away test store: durability is not worth the fsync latency.
    '--unsafe-no-fsync=true',
  ];
}

function apiserverArgs(
  dataDir: string,
  port: number,
  etcdPort: number,
  node: PreparedNode | undefined,
): string[] {
  const keyFile = path.join(dataDir, 'sa.key');
  const nodeArgs = node ? apiserverNodeArgs(node.layout, node.kubeletClient) : [];
  const overridden = new Set(nodeArgs.map((arg) => arg.split('=')[0]));
  return [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--cert-dir=${path.join(dataDir, 'certs')}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--service-cluster-ip-range=${NODE_NETWORK.serviceCidr}`,
    '--allow-privileged=true',
    // Without a node no pod runs, and without kube-controller-manager no default ServiceAccount exists for the
    // admission plugin to find. With a node, pods get their ServiceAccount token mounted as in any cluster.
    ...(node ? [] : ['--disable-admission-plugins=ServiceAccount']),
    '--enable-admission-plugins=NodeRestriction',
    '--authorization-mode=Node,RBAC',
    `--token-auth-file=${path.join(dataDir, 'tokens.csv')}`,
    `--service-account-issuer=https://127.0.0.1:${port}/`,
    `--service-account-key-file=${keyFile}`,
    `--service-account-signing-key-file=${keyFile}`,
  ]
    .filter((arg) => !overridden.has(arg.split('=')[0]))
    .concat(nodeArgs);
}

/** Tokens of the token file: the admin and, with a node, each node component. */
interface AuthTokens {
  admin: string;
  node: Record<NodeIdentity, string>;
}

/**
 * Writes the secrets the apiserver reads at start: the token file (the admin; with a node, the kubelet, kube-proxy
 * and kube-scheduler with the users and groups their bootstrap RBAC expects) and the service-account signing key.
 */
function writeAuthFiles(dataDir: string, nodeName: string | undefined): AuthTokens {
  const token = (): string => randomBytes(24).toString('hex');
  const tokens: AuthTokens = {
    admin: token(),
    node: { kubelet: token(), 'kube-proxy': token(), 'kube-scheduler': token() },
  };
  const rows = [`${tokens.admin},admin,admin,"system:masters"`];
  if (nodeName !== undefined) {
    for (const [identity, spec] of Object.entries(NODE_IDENTITIES) as [
      NodeIdentity,
      (typeof NODE_IDENTITIES)[NodeIdentity],
    ][]) {
      const user = spec.user(nodeName);
      rows.push(`${tokens.node[identity]},${user},${user},"${spec.groups.join(',')}"`);
    }
  }
  writeFileSync(path.join(dataDir, 'tokens.csv'), `${rows.join('\n')}\n`, { mode: 0o600 });
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  writeFileSync(path.join(dataDir, 'sa.key'), privateKey, { mode: 0o600 });
  return tokens;
}

/** What a node needs at start: its binaries and the images containerd gets. */
interface NodeInputs {
  binaries: NodeBinaries;
  images: Awaited<ReturnType<typeof buildImages>>;
  /** Whether the Knative path (cluster/knative-path.ts) runs on the node. */
  knative: boolean;
  /** Whether Istio (cluster/istio-path.ts) runs on top of it. */
  istio: boolean;
}

/** Images the node imports at start: the sandbox (pause) image and Knative's queue-proxy. */
const NODE_IMAGES: ImageName[] = ['pause', 'queue-proxy'];

async function launch(
  dir: string,
  binaries: Pick<Binaries, 'kubeApiserver' | 'etcd'>,
  controllerBinaries: Record<ControllerName, string> | undefined,
  nodeInputs: NodeInputs | undefined,
  detached: boolean,
  timeoutMs: number,
  log: Log,
): Promise<ClusterInfo> {
  const dataDir = path.join(dir, DATA_DIR);
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(path.join(dataDir, 'etcd'), { recursive: true, mode: 0o700 });
  mkdirSync(path.join(dataDir, 'certs'), { recursive: true });
  const sandboxImage = nodeInputs?.images.pause?.ref;
  if (nodeInputs && !sandboxImage) throw new Error('the image builder returned no pause image');
  const prepared = nodeInputs && sandboxImage ? await prepareNode(dir, sandboxImage) : undefined;
  const tokens = writeAuthFiles(dataDir, prepared?.layout.nodeName);
  const adminToken = tokens.admin;
  const [apiserverPort, etcdPort, etcdPeerPort] = (await freePorts(3)) as [number, number, number];
  const logs = { etcd: path.join(dir, 'etcd.log'), kubeApiserver: path.join(dir, 'kube-apiserver.log') };

  const state: PersistedState = {
    formatVersion: 1,
    ready: false,
    dir,
    kubeconfig: path.join(dir, 'kubeconfig'),
    server: `https://127.0.0.1:${apiserverPort}`,
    caData: '',
    adminToken,
    ports: { apiserver: apiserverPort, etcd: etcdPort, etcdPeer: etcdPeerPort },
    pids: { etcd: 0, kubeApiserver: 0 },
    logs,
    binaries: { kubeApiserver: binaries.kubeApiserver, etcd: binaries.etcd },
    controllers: [],
    startedAt: new Date().toISOString(),
  };

  let start = Date.now();
  state.pids.etcd = spawnLogged(
    binaries.etcd,
    etcdArgs(path.join(dataDir, 'etcd'), etcdPort, etcdPeerPort),
    logs.etcd,
    dir,
    detached,
  );
  // Record PIDs at once so `down` can clean up even if start-up fails half-way.
  writeState(dir, state);
  await waitFor(
    'etcd',
    () => etcdHealthy(etcdPort),
    () => isProcessAlive(state.pids.etcd, binaries.etcd),
    logs.etcd,
    timeoutMs,
  );
  log(`etcd ready on 127.0.0.1:${etcdPort} (${elapsed(start)} s, pid ${state.pids.etcd})`);

  start = Date.now();
  state.pids.kubeApiserver = spawnLogged(
    binaries.kubeApiserver,
    apiserverArgs(dataDir, apiserverPort, etcdPort, prepared),
    logs.kubeApiserver,
    dir,
    detached,
  );
  writeState(dir, state);
  const crtFile = path.join(dataDir, 'certs', 'apiserver.crt');
  await waitFor(
    'kube-apiserver',
    async () => {
      // The apiserver writes its self-signed certificate (leaf + CA) before serving.
      if (!state.caData && existsSync(crtFile)) state.caData = readFileSync(crtFile).toString('base64');
      return isReady(state);
    },
    () => isProcessAlive(state.pids.kubeApiserver, binaries.kubeApiserver),
    logs.kubeApiserver,
    timeoutMs,
  );
  // The bootstrap controller creates `default` shortly after /readyz; manifests and tests rely on it.
  await waitFor(
    'namespace default',
    async () => {
      try {
        await kubeRequest(target(state), 'GET', '/api/v1/namespaces/default');
        return true;
      } catch (err) {
        if (err instanceof KubeRequestError) return false;
        throw err;
      }
    },
    () => isProcessAlive(state.pids.kubeApiserver, binaries.kubeApiserver),
    logs.kubeApiserver,
    timeoutMs,
  );
  log(`kube-apiserver ready at ${state.server} (${elapsed(start)} s, pid ${state.pids.kubeApiserver})`);
  writeKubeconfig(state.kubeconfig, {
    server: state.server,
    caData: state.caData,
    token: adminToken,
    namespace: 'default',
    name: 'config-restarter-local',
  });
  writeState(dir, state);

  const nodeHandle =
    prepared && nodeInputs
      ? await startNodeBridges({
          dir,
          prepared,
          binaries: nodeInputs.binaries,
          apiserverPort,
          target: target(state),
          kubeconfigs: writeNodeKubeconfigs(dir, state.server, state.caData, tokens.node, state.kubeconfig),
          detached,
          timeoutMs,
          log,
          onChange: (info) => {
            state.node = info;
            writeState(dir, state);
          },
        })
      : undefined;
  if (nodeHandle && nodeInputs) {
    start = Date.now();
    await importImages(nodeInputs.images, { containerdAddress: nodeHandle.info.containerdAddress, log });
    log(`images imported into the node's containerd (${elapsed(start)} s)`);
  }

  start = Date.now();
  await installCrds(target(state), log, timeoutMs);
  log(`CRDs established and discoverable (${elapsed(start)} s)`);
  if (controllerBinaries) {
    start = Date.now();
    await startControllers({
      dir,
      ctx: { dataDir, kubeconfig: state.kubeconfig, target: target(state) },
      binaries: controllerBinaries,
      detached,
      timeoutMs,
      log,
      onSpawned: (processes) => {
        state.controllers = processes;
        writeState(dir, state);
      },
    });
    log(`controllers ready (${elapsed(start)} s)`);
  }
  if (nodeHandle && nodeInputs) {
    start = Date.now();
    const queueProxy = nodeInputs.images['queue-proxy']?.ref;
    if (queueProxy) await setQueueSidecarImage(target(state), queueProxy);
    state.node = await startNodeAgents(nodeHandle, {
      detached,
      timeoutMs,
      log,
      onChange: (info) => {
        state.node = info;
        writeState(dir, state);
      },
    });
    log(`node ${state.node.nodeName} ready (${elapsed(start)} s, network namespace ${state.node.netns})`);
    if (nodeInputs.knative) {
      // The Eventing controller runs mtping as its pingsource-mt-adapter Deployment: one adapter, not two.
      const ping = state.controllers.filter((c) => c.name === 'knative-ping-adapter');
      await stopControllers(ping, log);
      state.controllers = state.controllers.filter((c) => !ping.includes(c));
      writeState(dir, state);
      const node = state.node;
      const path = {
        dir,
        node,
        kubeconfig: state.kubeconfig,
        target: target(state),
        detached,
        timeoutMs,
        log,
        onSpawned: (proc: NodeProcess) => {
          node.processes.push(proc);
          writeState(dir, state);
        },
      };
      await startKnativePath(path);
      if (nodeInputs.istio) await startIstio(path);
    }
  }
  state.ready = true;
  writeState(dir, state);
  return { ...withoutInternal(state), alreadyRunning: false };
}

/** Points Knative's queue-proxy sidecar at the local image (a tag of the `localhost` registry: never resolved). */
async function setQueueSidecarImage(t: KubeTarget, image: string): Promise<void> {
  await kubeRequest(
    t,
    'PATCH',
    '/api/v1/namespaces/knative-serving/configmaps/config-deployment',
    { data: { 'queue-sidecar-image': image } },
    { contentType: 'application/merge-patch+json' },
  );
}

function withoutInternal(state: PersistedState): Omit<ClusterInfo, 'alreadyRunning'> {
  const { formatVersion: _formatVersion, ready: _ready, ...info } = state;
  return info;
}

/**
 * Starts etcd and kube-apiserver on free 127.0.0.1 ports, installs the CRDs, writes `<dir>/kubeconfig` and (unless
 * `controllers: false`) starts kube-controller-manager and the Knative Serving controller and webhook.
 * If the cluster recorded in `<dir>` is already running it is returned untouched (`alreadyRunning: true`);
 * state left by dead processes is cleaned up first.
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<ClusterInfo> {
  const dir = path.resolve(options.dir ?? defaultClusterDir());
  const log = options.log ?? stderrLog;
  const timeoutMs = options.timeoutMs ?? 90_000;
  mkdirSync(dir, { recursive: true });

  const existing = readState(dir);
  if (existing) {
    const alive = processesAlive(existing);
    if (allAlive(alive)) {
      // Possibly another `up` still starting it: give it the usual time before calling it broken.
      await waitFor(
        'the running kube-apiserver',
        async () => (readState(dir)?.ready ?? false) && isReady(readState(dir) ?? existing),
        () => processesAlive(existing).kubeApiserver,
        existing.logs.kubeApiserver,
        timeoutMs,
      );
      return { ...withoutInternal(readState(dir) ?? existing), alreadyRunning: true };
    }
    log(
      `cleaning up stale cluster state in ${dir} (etcd ${alive.etcd ? 'running' : 'gone'}, ` +
        `kube-apiserver ${alive.kubeApiserver ? 'running' : 'gone'})`,
    );
    await stopCluster(dir, log);
  }

  const given = options.binaries ?? {};
  const binaries = {
    etcd: given.etcd ?? (await ensureBinary('etcd', log)),
    kubeApiserver: given.kubeApiserver ?? (await ensureBinary('kubeApiserver', log)),
  };
  const withControllers = options.controllers ?? true;
  const controllerBinaries = withControllers ? await resolveControllerBinaries(given, log) : undefined;
  // The node needs the controllers: nothing would make its pods otherwise.
  const nodeInputs =
    withControllers && (options.node ?? true)
      ? {
          ...(await resolveNodeInputs(log)),
          knative: (options.knative ?? false) || (options.istio ?? false),
          istio: options.istio ?? false,
        }
      : undefined;
  const detached = options.detached ?? true;
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(dir, binaries, controllerBinaries, nodeInputs, detached, timeoutMs, log);
    } catch (err) {
      await stopCluster(dir, () => undefined);
      // Ports are picked free but may be taken by someone else before the process binds them: retry.
      const portRace = err instanceof Error && /address already in use/.test(err.message);
      if (!portRace || attempt >= 3) throw err;
      log(`port conflict during start-up, retrying with new ports (attempt ${attempt + 1})`);
    }
  }
}

/** The node's host packages, binaries and images (installed, built or taken from the caches). */
async function resolveNodeInputs(log: Log): Promise<Omit<NodeInputs, 'knative' | 'istio'>> {
  await ensureHostPackages(log);
  const binaries = await ensureNodeBinaries(log);
  const images = await buildImages(NODE_IMAGES, { log });
  return { binaries, images };
}

/** The controllers' binaries: given, else from {@link ensureBinary}. */
async function resolveControllerBinaries(
  given: Partial<Binaries>,
  log: Log,
): Promise<Record<ControllerName, string>> {
  const result: Partial<Record<ControllerName, string>> = {};
  for (const name of CONTROLLER_NAMES) {
    const component = CONTROLLERS[name].component;
    result[name] = given[component] ?? (await ensureBinary(component, log));
  }
  return result as Record<ControllerName, string>;
}

/**
 * Stops the cluster recorded in `dir` (controllers, kube-apiserver, then etcd; SIGTERM, then SIGKILL) and removes its data,
 * state and kubeconfig. Logs are kept for troubleshooting. Returns whether any process was still running.
 */
export async function stopCluster(
  dir: string = defaultClusterDir(),
  log: Log = stderrLog,
  options: { keepLogs?: boolean } = {},
): Promise<boolean> {
  const resolved = path.resolve(dir);
  const state = readState(resolved);
  let wasRunning = false;
  if (state) {
    const alive = processesAlive(state);
    // The node first (its pods and agents), then the controllers: they would otherwise log connection errors (and
    // the webhook would drain) for a while.
    const nodeRunning = await stopNode(resolved, state.node, log);
    const controllersRunning = await stopControllers(state.controllers, log);
    wasRunning = alive.etcd || alive.kubeApiserver || controllersRunning.length > 0 || nodeRunning.length > 0;
    if (alive.kubeApiserver) {
      await terminateProcess(state.pids.kubeApiserver, state.binaries.kubeApiserver);
      log(`stopped kube-apiserver (pid ${state.pids.kubeApiserver})`);
    }
    if (alive.etcd) {
      await terminateProcess(state.pids.etcd, state.binaries.etcd);
      log(`stopped etcd (pid ${state.pids.etcd})`);
    }
  }
  // Also when no state is left: a start that failed early may have made the namespaces already.
  await removeNodeLeftovers(resolved, log);
  rmSync(path.join(resolved, 'node'), { recursive: true, force: true });
  rmSync(path.join(resolved, DATA_DIR), { recursive: true, force: true });
  rmSync(path.join(resolved, 'kubeconfig'), { force: true });
  rmSync(path.join(resolved, STATE_FILE), { force: true });
  if (options.keepLogs === false) {
    for (const name of ['etcd', 'kube-apiserver', ...CONTROLLER_NAMES, ...NODE_PROCESS_NAMES]) {
      rmSync(path.join(resolved, `${name}.log`), { force: true });
    }
  }
  return wasRunning;
}

/** Reports whether the cluster recorded in `dir` is running and healthy. Never changes anything. */
export async function clusterStatus(dir: string = defaultClusterDir()): Promise<ClusterStatus> {
  const resolved = path.resolve(dir);
  const state = readState(resolved);
  if (!state) {
    return {
      dir: resolved,
      state: 'stopped',
      processes: { kubeApiserver: false, etcd: false, controllers: {} },
    };
  }
  const processes = processesAlive(state);
  const info = { ...withoutInternal(state), alreadyRunning: true };
  if (!processes.etcd || !processes.kubeApiserver) return { dir: resolved, state: 'stale', processes, info };
  const healthy = state.ready && allAlive(processes) && (await isReady(state));
  return { dir: resolved, state: healthy ? 'running' : 'unhealthy', processes, info };
}
