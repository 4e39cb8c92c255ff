import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureBinary, type Binaries } from './binaries.js';
import { installCrds } from './crds.js';
import { KubeRequestError, kubeRequest, writeKubeconfig, type KubeTarget } from './kube.js';
import {
  REPO_ROOT,
  elapsed,
  freePorts,
  isProcessAlive,
  sleep,
  stderrLog,
  tailFile,
  terminateProcess,
  type Log,
} from './util.js';

/** Options of {@link startCluster}. */
export interface StartClusterOptions {
  /** Cluster directory (state, logs, kubeconfig, data). Default: {@link defaultClusterDir}. */
  dir?: string;
  /** Binaries to run. Default: {@link ensureBinary} for each (build cache or TEST_ASSET_* / KUBEBUILDER_ASSETS). */
  binaries?: Pick<Binaries, 'kubeApiserver' | 'etcd'>;
  /** Progress output. Default: stderr. */
  log?: Log;
  /** Time allowed for each of etcd, kube-apiserver and the CRDs to become ready. Default 90 s. */
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
  startedAt: string;
  /** True when {@link startCluster} found this cluster already running and left it alone. */
  alreadyRunning: boolean;
}

/** Result of {@link clusterStatus}. */
export interface ClusterStatus {
  dir: string;
  /**
   * `running`: both processes alive and /readyz answers 200. `unhealthy`: alive but not ready. `stale`: state left
   * by processes that are gone. `stopped`: no state.
   */
  state: 'running' | 'unhealthy' | 'stale' | 'stopped';
  processes: { kubeApiserver: boolean; etcd: boolean };
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
    return JSON.parse(readFileSync(file, 'utf8')) as PersistedState;
  } catch {
    return undefined;
  }
}

function writeState(dir: string, state: PersistedState): void {
  writeFileSync(path.join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

function processesAlive(state: PersistedState): { kubeApiserver: boolean; etcd: boolean } {
  return {
    kubeApiserver:
      state.pids.kubeApiserver > 0 && isProcessAlive(state.pids.kubeApiserver, state.binaries.kubeApiserver),
    etcd: state.pids.etcd > 0 && isProcessAlive(state.pids.etcd, state.binaries.etcd),
  };
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

/** Spawns one control plane process with stdout and stderr appended to `logFile`. */
function spawnLogged(
  binary: string,
  args: string[],
  logFile: string,
  cwd: string,
  detached: boolean,
): number {
  const fd = openSync(logFile, 'w');
  try {
    const child = spawn(binary, args, { cwd, detached, stdio: ['ignore', fd, fd] });
    // Spawn failures (ENOENT, EACCES) are reported asynchronously; the missing pid is checked below.
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${binary}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Polls `probe` until it returns true; fails early when `alive` turns false, citing `logFile`. */
async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  alive: () => boolean,
  logFile: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (!alive()) {
      throw new Error(`${what} exited during start-up. Last lines of ${logFile}:\n${tailFile(logFile)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what} not ready after ${timeoutMs / 1000} s. Last lines of ${logFile}:\n${tailFile(logFile)}`,
      );
    }
    await sleep(200);
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

function apiserverArgs(dataDir: string, port: number, etcdPort: number): string[] {
  const keyFile = path.join(dataDir, 'sa.key');
  return [
    `--etcd-servers=http://127.0.0.1:${etcdPort}`,
    `--cert-dir=${path.join(dataDir, 'certs')}`,
    `--secure-port=${port}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    // No controller-manager creates default ServiceAccounts, so the admission plugin would reject every pod.
    '--disable-admission-plugins=ServiceAccount',
    '--authorization-mode=RBAC',
    `--token-auth-file=${path.join(dataDir, 'tokens.csv')}`,
    `--service-account-issuer=https://127.0.0.1:${port}/`,
    `--service-account-key-file=${keyFile}`,
    `--service-account-signing-key-file=${keyFile}`,
  ];
}

/** Writes the secrets the apiserver reads at start: the admin token file and the service-account signing key. */
function writeAuthFiles(dataDir: string): string {
  const adminToken = randomBytes(24).toString('hex');
  writeFileSync(path.join(dataDir, 'tokens.csv'), `${adminToken},admin,admin,"system:masters"\n`, {
    mode: 0o600,
  });
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  writeFileSync(path.join(dataDir, 'sa.key'), privateKey, { mode: 0o600 });
  return adminToken;
}

async function launch(
  dir: string,
  binaries: { kubeApiserver: string; etcd: string },
  detached: boolean,
  timeoutMs: number,
  log: Log,
): Promise<ClusterInfo> {
  const dataDir = path.join(dir, DATA_DIR);
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(path.join(dataDir, 'etcd'), { recursive: true, mode: 0o700 });
  mkdirSync(path.join(dataDir, 'certs'), { recursive: true });
  const adminToken = writeAuthFiles(dataDir);
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
    binaries,
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
    apiserverArgs(dataDir, apiserverPort, etcdPort),
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

  start = Date.now();
  await installCrds(target(state), log, timeoutMs);
  log(`CRDs established and discoverable (${elapsed(start)} s)`);
  state.ready = true;
  writeState(dir, state);
  return { ...withoutInternal(state), alreadyRunning: false };
}

function withoutInternal(state: PersistedState): Omit<ClusterInfo, 'alreadyRunning'> {
  const { formatVersion: _formatVersion, ready: _ready, ...info } = state;
  return info;
}

/**
 * Starts etcd and kube-apiserver on free 127.0.0.1 ports, installs the CRDs and writes `<dir>/kubeconfig`.
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
    if (alive.etcd && alive.kubeApiserver) {
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

  const binaries = options.binaries ?? {
    etcd: await ensureBinary('etcd', log),
    kubeApiserver: await ensureBinary('kubeApiserver', log),
  };
  const detached = options.detached ?? true;
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(dir, binaries, detached, timeoutMs, log);
    } catch (err) {
      await stopCluster(dir, () => undefined);
      // Ports are picked free but may be taken by someone else before the process binds them: retry.
      const portRace = err instanceof Error && /address already in use/.test(err.message);
      if (!portRace || attempt >= 3) throw err;
      log(`port conflict during start-up, retrying with new ports (attempt ${attempt + 1})`);
    }
  }
}

/**
 * Stops the cluster recorded in `dir` (kube-apiserver, then etcd; SIGTERM, SIGKILL after 10 s) and removes its data,
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
    wasRunning = alive.etcd || alive.kubeApiserver;
    if (alive.kubeApiserver) {
      await terminateProcess(state.pids.kubeApiserver, state.binaries.kubeApiserver);
      log(`stopped kube-apiserver (pid ${state.pids.kubeApiserver})`);
    }
    if (alive.etcd) {
      await terminateProcess(state.pids.etcd, state.binaries.etcd);
      log(`stopped etcd (pid ${state.pids.etcd})`);
    }
  }
  rmSync(path.join(resolved, DATA_DIR), { recursive: true, force: true });
  rmSync(path.join(resolved, 'kubeconfig'), { force: true });
  rmSync(path.join(resolved, STATE_FILE), { force: true });
  if (options.keepLogs === false) {
    rmSync(path.join(resolved, 'etcd.log'), { force: true });
    rmSync(path.join(resolved, 'kube-apiserver.log'), { force: true });
  }
  return wasRunning;
}

/** Reports whether the cluster recorded in `dir` is running and healthy. Never changes anything. */
export async function clusterStatus(dir: string = defaultClusterDir()): Promise<ClusterStatus> {
  const resolved = path.resolve(dir);
  const state = readState(resolved);
  if (!state) return { dir: resolved, state: 'stopped', processes: { kubeApiserver: false, etcd: false } };
  const processes = processesAlive(state);
  const info = { ...withoutInternal(state), alreadyRunning: true };
  if (!processes.etcd || !processes.kubeApiserver) return { dir: resolved, state: 'stale', processes, info };
  const healthy = state.ready && (await isReady(state));
  return { dir: resolved, state: healthy ? 'running' : 'unhealthy', processes, info };
}
