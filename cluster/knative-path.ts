/**
 * The Knative path on the local node: CoreDNS (cluster.local for the pods), the Kourier ingress (its control plane
 * and the upstream Envoy gateway Deployment), the Knative Eventing controller (ApiServerSource, PingSource and
 * the other Eventing kinds, with the adapter Deployments it makes running on the node) and the multi-tenant
 * channel-based Broker over the in-memory channel (their controllers, and the release's ingress, filter and dispatcher
 * Deployments). The processes run in the node's network and mount namespaces, like the Knative autoscaler and
 * activator; the gateway and the Broker's data plane run as pods.
 * See docs/cluster.md, "The Knative path".
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureKnativePathBinaries, type KnativePathBinaries } from './binaries.js';
import { installObjects } from './controllers.js';
import { buildImages, importImages } from './images.js';
import {
  KOURIER_GATEWAY,
  KOURIER_GATEWAY_NAMESPACE,
  KOURIER_INGRESS_CLASS,
  KNATIVE_PATH_PORTS,
  brokerControllerEnv,
  corefile,
  eventingControllerEnv,
  fillPlaceholders,
  imcControllerEnv,
  kourierEnv,
  type PathImages,
} from './knative-path-config.js';
import { kubeRequest, type KubeTarget } from './kube.js';
import { deploymentAvailable, leaseHeld } from './objects.js';
import { nodeClusterDnsResolvConf, nodePaths, nodeResolvConf } from './node-config.js';
import { NODE_NETWORK, fetchInNode, netnsPath, runCommand } from './node-network.js';
import type { NodeInfo, NodeProcess } from './node.js';
import {
  elapsed,
  exitOf,
  freePorts,
  isProcessAlive,
  sleep,
  spawnLogged,
  terminateProcess,
  waitFor,
  type Log,
} from './util.js';

/** Names of the Knative path's processes, also their log file names (`<dir>/<name>.log`). */
export type KnativePathProcessName =
  'coredns' | 'kourier' | 'knative-eventing-controller' | 'mt-broker-controller' | 'imc-controller';

const SYSTEM_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'system', 'knative-path');
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Everything a process of the path needs to start. */
interface PathContext {
  dir: string;
  node: NodeInfo;
  binaries: KnativePathBinaries;
  /** Admin kubeconfig (server on 127.0.0.1, which the node namespace bridges to the API server). */
  kubeconfig: string;
  target: KubeTarget;
  adapterImage: string;
  dispatcherImage: string;
  corefile: string;
  profilingPorts: Record<'kourier' | 'eventing' | 'broker' | 'imc', number>;
  /** The in-memory channel controller's webhook (no configuration points at it: see system/knative-path). */
  imcWebhookPort: number;
}

interface PathProcessSpec {
  command(ctx: PathContext): { binary: string; args: string[]; env: Record<string, string> };
  ready(ctx: PathContext): Promise<boolean>;
  stopGraceMs: number;
}

async function okInNode(netns: string, url: string): Promise<boolean> {
  try {
    return (await fetchInNode(netns, url, { timeoutMs: 2_000 })).status === 200;
  } catch {
    return false;
  }
}

/** The per-process table: how each process of the path is started and when it counts as ready. */
export const PATH_PROCESSES: Readonly<Record<KnativePathProcessName, PathProcessSpec>> = {
  coredns: {
    command: (ctx) => ({ binary: ctx.binaries.coredns, args: ['-conf', ctx.corefile], env: {} }),
    // The ready plugin answers 200 once the kubernetes plugin has listed Services and EndpointSlices.
    ready: (ctx) => okInNode(ctx.node.netns, `http://127.0.0.1:${KNATIVE_PATH_PORTS.dnsReady}/ready`),
    stopGraceMs: 2_000,
  },
  kourier: {
    command: (ctx) => ({
      binary: ctx.binaries.kourier,
      args: [`--kubeconfig=${ctx.kubeconfig}`],
      env: kourierEnv('net-kourier-controller-local', ctx.profilingPorts.kourier),
    }),
    ready: (ctx) => leaseHeld(ctx.target, 'knative-serving', 'net-kourier-controller.'),
    stopGraceMs: 3_000,
  },
  'knative-eventing-controller': {
    command: (ctx) => ({
      binary: ctx.binaries.eventingController,
      args: [`--kubeconfig=${ctx.kubeconfig}`],
      env: eventingControllerEnv(ctx.adapterImage, 'eventing-controller-local', ctx.profilingPorts.eventing),
    }),
    ready: (ctx) =>
      leaseHeld(
        ctx.target,
        'knative-eventing',
        'controller.knative.dev.eventing.pkg.reconciler.apiserversource.',
      ),
    stopGraceMs: 3_000,
  },
  'mt-broker-controller': {
    command: (ctx) => ({
      binary: ctx.binaries.brokerController,
      args: [`--kubeconfig=${ctx.kubeconfig}`],
      env: brokerControllerEnv('mt-broker-controller-local', ctx.profilingPorts.broker),
    }),
    ready: (ctx) =>
      leaseHeld(
        ctx.target,
        'knative-eventing',
        'mt-broker-controller.knative.dev.eventing.pkg.reconciler.broker.',
      ),
    stopGraceMs: 3_000,
  },
  'imc-controller': {
    command: (ctx) => ({
      binary: ctx.binaries.imcController,
      args: [`--kubeconfig=${ctx.kubeconfig}`],
      env: imcControllerEnv(
        ctx.dispatcherImage,
        'imc-controller-local',
        ctx.profilingPorts.imc,
        ctx.imcWebhookPort,
      ),
    }),
    ready: (ctx) =>
      leaseHeld(
        ctx.target,
        'knative-eventing',
        'inmemorychannel-webhook.knative.dev.eventing.pkg.reconciler.inmemorychannel.',
      ),
    stopGraceMs: 3_000,
  },
};

/**
 * Start order: DNS first (the gateway's bootstrap names the xDS server), then the ingress, then Eventing, then the
 * Broker and channel controllers.
 */
export const PATH_PROCESS_NAMES = Object.keys(PATH_PROCESSES) as KnativePathProcessName[];

/** Spawns one process inside the node's network and mount namespaces (its log: `<dir>/<name>.log`). */
export function spawnInNodeNamespaces(
  command: { name: NodeProcess['name']; binary: string; args: string[]; env: Record<string, string> },
  where: { dir: string; node: NodeInfo; detached: boolean },
): NodeProcess {
  const { name, binary, args, env } = command;
  const log = path.join(where.dir, `${name}.log`);
  const pid = spawnLogged(
    'nsenter',
    [
      `--net=${netnsPath(where.node.netns)}`,
      `--mount=${nodePaths(where.node.root).mountNamespace}`,
      '--',
      binary,
      ...args,
    ],
    log,
    where.dir,
    where.detached,
    { PATH, HOME: process.env.HOME, ...env },
  );
  return { name, pid, binary, log };
}

function spawnInNode(name: KnativePathProcessName, ctx: PathContext, detached: boolean): NodeProcess {
  return spawnInNodeNamespaces(
    { name, ...PATH_PROCESSES[name].command(ctx) },
    { dir: ctx.dir, node: ctx.node, detached },
  );
}

/** Server-side applies the files of `cluster/system/knative-path/` with the placeholders filled in. */
async function installPathObjects(target: KubeTarget, images: PathImages): Promise<void> {
  const files = readdirSync(SYSTEM_DIR)
    .filter((file) => file.endsWith('.yaml'))
    .sort()
    .map((file) => path.join(SYSTEM_DIR, file));
  await installObjects(target, files, (manifest) => fillPlaceholders(manifest, images));
}

/** Makes Kourier the ingress of every Knative Route (the Serving controller resyncs on the change). */
async function selectKourier(target: KubeTarget): Promise<void> {
  await kubeRequest(
    target,
    'PATCH',
    '/api/v1/namespaces/knative-serving/configmaps/config-network',
    { data: { 'ingress-class': KOURIER_INGRESS_CLASS } },
    { contentType: 'application/merge-patch+json' },
  );
}

/** Options of {@link startKnativePath}. */
export interface StartKnativePathOptions {
  /** The cluster directory (logs, the Corefile). */
  dir: string;
  node: NodeInfo;
  kubeconfig: string;
  target: KubeTarget;
  detached: boolean;
  timeoutMs: number;
  log: Log;
  /** Called with each process as soon as it is spawned, so a failed start can still be stopped. */
  onSpawned: (process: NodeProcess) => void;
}

/**
 * Builds (or takes from the caches) the binaries and images of the path, imports the images into the node's
 * containerd, applies the path's objects and starts CoreDNS, Kourier and the Eventing controller one after the
 * other; returns once each is ready and the Envoy gateway pod is available.
 */
export async function startKnativePath(options: StartKnativePathOptions): Promise<NodeProcess[]> {
  const { node, target, log, timeoutMs } = options;
  let start = Date.now();
  const binaries = await ensureKnativePathBinaries(log);
  const images = await buildImages(
    ['envoy', 'apiserver-adapter', 'mtping', 'broker-ingress', 'broker-filter', 'imc-dispatcher'],
    { log },
  );
  await importImages(images, { containerdAddress: node.containerdAddress, log });
  log(`Knative path binaries and images ready (${elapsed(start)} s)`);

  const corefilePath = path.join(node.root, 'Corefile');
  mkdirSync(node.root, { recursive: true });
  writeFileSync(corefilePath, corefile(options.kubeconfig));
  const [kourier, eventing, broker, imc, imcWebhookPort] = (await freePorts(5)) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const ctx: PathContext = {
    dir: options.dir,
    node,
    binaries,
    kubeconfig: options.kubeconfig,
    target,
    adapterImage: images['apiserver-adapter'].ref,
    dispatcherImage: images['imc-dispatcher'].ref,
    corefile: corefilePath,
    profilingPorts: { kourier, eventing, broker, imc },
    imcWebhookPort,
  };
  await selectKourier(target);
  await installPathObjects(target, {
    envoy: images.envoy.ref,
    mtping: images.mtping.ref,
    'broker-ingress': images['broker-ingress'].ref,
    'broker-filter': images['broker-filter'].ref,
    'imc-dispatcher': images['imc-dispatcher'].ref,
  });

  const processes: NodeProcess[] = [];
  for (const name of PATH_PROCESS_NAMES) {
    start = Date.now();
    const p = await startPathProcess(name, ctx, options, timeoutMs, log);
    processes.push(p);
    log(`${name} ready (${elapsed(start)} s, pid ${p.pid})`);
  }
  // The node's processes resolve cluster names through CoreDNS from now on: the bind-mounted file of the node's
  // mount namespace (node-host.ts createMountNamespace), rewritten in place so the mount keeps pointing at it.
  writeFileSync(path.join(nodePaths(node.root).overlayDir, 'resolv.conf'), nodeClusterDnsResolvConf());
  start = Date.now();
  const deadline = Date.now() + timeoutMs;
  while (!(await deploymentAvailable(target, KOURIER_GATEWAY_NAMESPACE, KOURIER_GATEWAY))) {
    if (Date.now() > deadline) {
      throw new Error(
        `the Kourier gateway (${KOURIER_GATEWAY_NAMESPACE}/${KOURIER_GATEWAY}) is not available`,
      );
    }
    await sleep(500);
  }
  log(`Kourier gateway available (${elapsed(start)} s)`);
  return processes;
}

/**
 * Stops the path's processes (the node's teardown sweeps them too); returns the names that were running. Given the
 * node's root (a node that keeps running), its processes go back to the resolver without a nameserver.
 */
export async function stopKnativePath(
  processes: readonly NodeProcess[],
  log: Log,
  nodeRoot?: string,
): Promise<string[]> {
  if (nodeRoot) writeFileSync(path.join(nodePaths(nodeRoot).overlayDir, 'resolv.conf'), nodeResolvConf());
  const running = processes.filter((p) => isProcessAlive(p.pid, p.binary));
  for (const p of [...running].reverse()) {
    const grace = PATH_PROCESSES[p.name as KnativePathProcessName]?.stopGraceMs ?? 2_000;
    await terminateProcess(p.pid, p.binary, grace);
    log(`stopped ${p.name} (pid ${p.pid})`);
  }
  return running.map((p) => p.name);
}

/** What {@link requestThroughClusterDns} got back. */
export interface ClusterDnsAnswer {
  /** The addresses CoreDNS gave for the URL's host (after following CNAMEs). */
  addresses: string[];
  /** The CNAME chain's first target, when the name is an alias (a Knative Service's is the ingress Service). */
  cname?: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Resolves the URL's host with the cluster DNS, then sends the request to that address with the original Host. */
const CLUSTER_DNS_REQUEST = `
const [url, dnsServer, timeoutMs, init] = JSON.parse(process.argv[1]);
const dns = require('node:dns').promises;
const http = require('node:http');
const resolver = new dns.Resolver({ timeout: timeoutMs, tries: 1 });
resolver.setServers([dnsServer]);
const target = new URL(url);
(async () => {
  const cname = await resolver.resolveCname(target.hostname).then((c) => c[0], () => undefined);
  const addresses = await resolver.resolve4(target.hostname);
  const req = http.request(
    { host: addresses[0], port: target.port || 80, path: target.pathname + target.search, method: init.method,
      headers: { ...init.headers, host: target.host }, timeout: timeoutMs },
    (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => process.stdout.write(JSON.stringify({ addresses, cname, status: res.statusCode, headers: res.headers, body })));
    },
  );
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (err) => { process.stderr.write(String(err.message)); process.exitCode = 1; });
  req.end(init.body ?? undefined);
})().catch((err) => { process.stderr.write(String(err.code || err.message)); process.exitCode = 1; });
`;

/** Method, headers and body of a {@link requestThroughClusterDns} request (default: a GET without a body). */
export interface ClusterDnsRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

/**
 * A request as a pod sends it: from inside the node's network namespace, the host name resolved by the cluster's
 * CoreDNS (through the `kube-dns` Service), then HTTP to the address it gave with the original `Host`.
 */
export async function requestThroughClusterDns(
  netns: string,
  url: string,
  timeoutMs = 5_000,
  init: ClusterDnsRequestInit = {},
): Promise<ClusterDnsAnswer> {
  const result = await runCommand(
    'nsenter',
    [
      `--net=${netnsPath(netns)}`,
      '--',
      process.execPath,
      '-e',
      CLUSTER_DNS_REQUEST,
      JSON.stringify([url, NODE_NETWORK.dnsServiceIp, timeoutMs, { method: 'GET', headers: {}, ...init }]),
    ],
    { timeoutMs: timeoutMs * 3 + 5_000, env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  const method = init.method ?? 'GET';
  if (result.code !== 0) throw new Error(`${method} ${url} in ${netns}: ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as ClusterDnsAnswer;
}

/**
 * Spawns one path process and waits until it is ready. A process that dies during start-up without a line in its
 * log (seen in fresh-clone runs for Kourier and the Eventing controller, never reproduced by hand: see
 * docs/cluster.md) is started again, up to three times in all; a failure with a log, or a third one, is reported.
 */
async function startPathProcess(
  name: KnativePathProcessName,
  ctx: PathContext,
  options: { detached: boolean; onSpawned: (p: NodeProcess) => void },
  timeoutMs: number,
  log: Log,
): Promise<NodeProcess> {
  for (let attempt = 1; ; attempt++) {
    const p = spawnInNode(name, ctx, options.detached);
    options.onSpawned(p);
    try {
      await waitFor(
        name,
        () => PATH_PROCESSES[name].ready(ctx),
        () => isProcessAlive(p.pid, 'nsenter') || isProcessAlive(p.pid, p.binary),
        p.log,
        timeoutMs,
      );
      return p;
    } catch (err) {
      const silent = !existsSync(p.log) || readFileSync(p.log, 'utf8').trim() === '';
      if (attempt >= 3 || !silent || isProcessAlive(p.pid, p.binary)) throw err;
      const how = exitOf(p.pid) ?? 'ended';
      log(`${name} (pid ${p.pid}) ${how} during start-up without a log line; starting it again`);
    }
  }
}
