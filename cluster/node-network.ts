/**
 * The node's network namespace: everything that needs pod networking (containerd, kubelet, kube-proxy, the Knative
 * autoscaler and activator, the pods themselves) lives in a network namespace the harness creates per cluster and
 * removes again. The host namespace gets no link, no bridge, no iptables rule and no forwarding change; the pod and
 * service CIDRs exist only inside the namespace (see docs/cluster.md, "The node").
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';

/** Addresses used inside every node namespace. Nothing outside the namespace routes them. */
export const NODE_NETWORK = {
  /** The node's own address (one end of a veth pair): kubelet, kube-proxy and the activator serve on it. */
  nodeIp: '10.213.255.2',
  nodeSubnet: '10.213.255.0/24',
  /** The CNI bridge's range (host-local IPAM); the bridge itself takes the first address. */
  podCidr: '10.213.128.0/20',
  podGateway: '10.213.128.1',
  /** kube-apiserver's `--service-cluster-ip-range`; the `kubernetes` Service takes the first address. */
  serviceCidr: '10.213.0.0/20',
  kubernetesServiceIp: '10.213.0.1',
  /** The `kube-dns` Service (CoreDNS, cluster/knative-path.ts): kubelet's `clusterDNS`. */
  dnsServiceIp: '10.213.0.10',
  /** Link names inside the namespace (they never exist in the host namespace). */
  nodeLink: 'node0',
  nodePeerLink: 'node0-peer',
  bridge: 'cni0',
} as const;

/** The directory `ip netns add` puts namespace files in. */
export const NETNS_DIR = '/var/run/netns';

/**
 * Name of a cluster directory's node namespace: derived from the directory, so two clusters on one machine never
 * share one, and `down` finds it again without state.
 */
export function nodeNetnsName(clusterDir: string): string {
  return `cr-node-${createHash('sha256').update(clusterDir).digest('hex').slice(0, 10)}`;
}

/** Path of a named network namespace, as `nsenter --net=` takes it. */
export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (child.stdin) {
      // A command that exits without reading its input must not fail the caller.
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}

/** Like {@link runCommand}, but a non-zero exit is an error naming the command. */
export async function mustRun(command: string, args: readonly string[], input?: string): Promise<string> {
  const result = await runCommand(command, args, { input });
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  return result.stdout;
}

/** `ip -n <netns> ...`: netlink commands inside the namespace, nothing else changes. */
function ipIn(netns: string, ...args: string[]): Promise<string> {
  return mustRun('ip', ['-n', netns, ...args]);
}

/** Writes a sysctl of the namespace (net.* sysctls are per network namespace). */
function sysctlIn(netns: string, key: string, value: string): Promise<string> {
  const file = `/proc/sys/${key.replaceAll('.', '/')}`;
  return mustRun('nsenter', [`--net=${netnsPath(netns)}`, '--', 'sh', '-c', `echo ${value} > ${file}`]);
}

/** Whether the named namespace exists. */
export function netnsExists(name: string): boolean {
  return existsSync(netnsPath(name));
}

/**
 * Creates the node namespace: loopback up, a veth pair whose `node0` end carries the node IP, a route for the
 * service CIDR (kube-proxy's rules rewrite it; without a route locally sent packets would never reach them) and
 * forwarding on, all inside the namespace. The CNI bridge appears with the first pod.
 */
export async function createNodeNetns(name: string): Promise<void> {
  const n = NODE_NETWORK;
  await mustRun('ip', ['netns', 'add', name]);
  try {
    await ipIn(name, 'link', 'set', 'lo', 'up');
    await ipIn(name, 'link', 'add', n.nodeLink, 'type', 'veth', 'peer', 'name', n.nodePeerLink);
    await ipIn(name, 'addr', 'add', `${n.nodeIp}/24`, 'dev', n.nodeLink);
    await ipIn(name, 'link', 'set', n.nodePeerLink, 'up');
    await ipIn(name, 'link', 'set', n.nodeLink, 'up');
    await ipIn(name, 'route', 'add', n.serviceCidr, 'dev', n.nodeLink);
    await sysctlIn(name, 'net.ipv4.ip_forward', '1');
    // Service traffic between two pods on the bridge must pass kube-proxy's iptables rules (per namespace).
    await sysctlIn(name, 'net.bridge.bridge-nf-call-iptables', '1');
  } catch (err) {
    await removeNodeNetns(name);
    throw err;
  }
}

/** Removes the namespace (its links, routes and iptables rules go with it). No-op when it does not exist. */
export async function removeNodeNetns(name: string): Promise<void> {
  if (!netnsExists(name)) return;
  await mustRun('ip', ['netns', 'delete', name]);
}

/** Inode of a namespace file, to tell which processes live in it. */
function netnsInode(file: string): number | undefined {
  try {
    return statSync(file).ino;
  } catch {
    return undefined;
  }
}

/** PIDs of every process whose network namespace is `name`. */
export function processesInNetns(name: string): number[] {
  const inode = netnsInode(netnsPath(name));
  if (inode === undefined) return [];
  const pids: number[] = [];
  for (const entry of safeReaddir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (netnsInode(`/proc/${entry}/ns/net`) === inode) pids.push(Number(entry));
  }
  return pids;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Result of {@link fetchInNode}. */
export interface NodeFetchResult {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The script {@link fetchInNode} runs inside the namespace: one request, the answer as JSON on stdout. */
const FETCH_SCRIPT = `
const [url, method, headers, body, timeoutMs] = JSON.parse(process.argv[1]);
fetch(url, { method, headers, body: body ?? undefined, signal: AbortSignal.timeout(timeoutMs) }).then(
  async (res) => {
    process.stdout.write(JSON.stringify({
      status: res.status,
      headers: Object.fromEntries(res.headers),
      body: await res.text(),
    }));
  },
  (err) => {
    process.stderr.write(String(err && err.cause ? err.cause.message || err.cause : err));
    process.exitCode = 1;
  },
);
`;

/**
 * One HTTP request sent from inside the node namespace (so pod IPs, ClusterIPs and the node IP are reachable), by a
 * short-lived `nsenter --net=<netns> node -e <fetch>`. Rejects when no answer arrives (connection refused, timeout).
 */
export async function fetchInNode(
  netns: string,
  url: string,
  init: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    timeoutMs?: number;
    /** Accept any TLS certificate (the harness's own probes of self-signed endpoints). */
    insecureTls?: boolean;
  } = {},
): Promise<NodeFetchResult> {
  const timeoutMs = init.timeoutMs ?? 5_000;
  const request = JSON.stringify([
    url,
    init.method ?? 'GET',
    init.headers ?? {},
    init.body ?? null,
    timeoutMs,
  ]);
  const result = await runCommand(
    'nsenter',
    [`--net=${netnsPath(netns)}`, '--', process.execPath, '-e', FETCH_SCRIPT, request],
    {
      timeoutMs: timeoutMs + 5_000,
      env: {
        ...process.env,
        NODE_NO_WARNINGS: '1',
        ...(init.insecureTls ? { NODE_TLS_REJECT_UNAUTHORIZED: '0' } : {}),
      },
    },
  );
  if (result.code !== 0)
    throw new Error(`${init.method ?? 'GET'} ${url} from ${netns}: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as NodeFetchResult;
}

/** The mount points below `prefix` listed in /proc/mounts, deepest first (the order to unmount them in). */
export function mountsUnder(prefix: string): string[] {
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((p): p is string => p !== undefined)
    // /proc/mounts escapes spaces and other special characters as octal.
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8))))
    .filter((p) => p === prefix || p.startsWith(`${prefix}/`));
  return [...new Set(mounts)].sort((a, b) => b.length - a.length);
}
