/**
 * Istio in front of helloworld, on top of the Knative path: istiod (pilot-discovery) as a process in the node's
 * network and mount namespaces (like Kourier's control plane), with its CA, its validation webhook and the CRDs of
 * its own module, and the ingress gateway (`istio: ingressgateway` in `istio-system`) as a pod of pilot-agent +
 * the upstream Envoy. See docs/cluster.md, "Istio in front of helloworld".
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { ensureIstioBinaries, upstreamModuleDir } from './binaries.js';
import { installObjects } from './controllers.js';
import { buildImages, importImages } from './images.js';
import {
  INGRESS_GATEWAY,
  ISTIO_NAMESPACE,
  ISTIOD_PORTS,
  fillIstioPlaceholders,
  istiodArgs,
  istiodEnv,
  type IstioManifest,
} from './istio-config.js';
import { spawnInNodeNamespaces } from './knative-path.js';
import { kubeRequest, type KubeTarget } from './kube.js';
import { deploymentAvailable } from './objects.js';
import { fetchInNode, mustRun, netnsPath, runCommand } from './node-network.js';
import type { NodeInfo, NodeProcess } from './node.js';
import { elapsed, isProcessAlive, sleep, terminateProcess, waitFor, type Log } from './util.js';

const SYSTEM_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'system', 'istio');

/** Options of {@link startIstio}. */
export interface StartIstioOptions {
  /** The cluster directory (istiod's log and working directory). */
  dir: string;
  node: NodeInfo;
  /** Admin kubeconfig (server on 127.0.0.1, which the node namespace bridges to the API server). */
  kubeconfig: string;
  target: KubeTarget;
  detached: boolean;
  timeoutMs: number;
  log: Log;
  /** Called with istiod as soon as it is spawned, so a failed start can still be stopped. */
  onSpawned: (process: NodeProcess) => void;
}

/** The CRDs of the pinned Istio module (`manifests/charts/base/files/crd-all.gen.yaml`), unchanged. */
async function istioCrds(): Promise<string> {
  return path.join(
    await upstreamModuleDir('istiod'),
    'manifests',
    'charts',
    'base',
    'files',
    'crd-all.gen.yaml',
  );
}

/** Whether every CRD of the file is Established (the API server serves its kind). */
async function crdsEstablished(target: KubeTarget, names: readonly string[]): Promise<boolean> {
  for (const name of names) {
    const { status, body } = await kubeRequest<{
      status?: { conditions?: { type: string; status: string }[] };
    }>(target, 'GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`, undefined, {
      allowStatus: [404],
    });
    const established = body.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    if (status === 404 || !established) return false;
  }
  return true;
}

/** Whether istiod's webhook controller patched its CA into both validating webhooks and set them to `Fail`. */
export async function validationWebhookArmed(target: KubeTarget): Promise<boolean> {
  for (const name of ['istiod-default-validator', 'istio-validator-istio-system']) {
    const { status, body } = await kubeRequest<{
      webhooks?: { failurePolicy?: string; clientConfig: { caBundle?: string } }[];
    }>(
      target,
      'GET',
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${name}`,
      undefined,
      {
        allowStatus: [404],
      },
    );
    const webhook = body.webhooks?.[0];
    if (status === 404 || !webhook?.clientConfig.caBundle || webhook.failurePolicy !== 'Fail') return false;
  }
  return true;
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`${what} not after ${timeoutMs / 1000} s`);
    await sleep(500);
  }
}

/**
 * Builds (or takes from the caches) istiod, pilot-agent and the `istio-proxy` image, installs Istio's CRDs and the
 * objects of `cluster/system/istio/`, starts istiod and waits until it is ready, its validation webhook armed and
 * the ingress gateway pod available. Needs the Knative path (CoreDNS: the gateway resolves istiod's Service).
 */
export async function startIstio(options: StartIstioOptions): Promise<NodeProcess> {
  const { node, target, log, timeoutMs } = options;
  let start = Date.now();
  const binaries = await ensureIstioBinaries(log);
  const images = await buildImages(['istio-proxy'], { log });
  await importImages(images, { containerdAddress: node.containerdAddress, log });
  log(`Istio binaries and image ready (${elapsed(start)} s)`);

  start = Date.now();
  const crdFile = await istioCrds();
  const crds = (yaml.loadAll(readFileSync(crdFile, 'utf8')) as (IstioManifest | null)[]).filter(
    (m): m is IstioManifest => m?.kind === 'CustomResourceDefinition',
  );
  await installObjects(target, [crdFile]);
  await until(
    'Istio CRDs Established',
    () =>
      crdsEstablished(
        target,
        crds.map((c) => c.metadata?.name ?? ''),
      ),
    timeoutMs,
  );
  await installObjects(target, [path.join(SYSTEM_DIR, 'istiod.yaml')], (m) =>
    fillIstioPlaceholders(m, images['istio-proxy'].ref),
  );
  log(`Istio CRDs (${crds.length}) and istiod's objects applied (${elapsed(start)} s)`);

  start = Date.now();
  const istiod = spawnInNodeNamespaces(
    { name: 'istiod', binary: binaries.istiod, args: istiodArgs(options.kubeconfig), env: istiodEnv() },
    { dir: options.dir, node, detached: options.detached },
  );
  options.onSpawned(istiod);
  await waitFor(
    'istiod',
    () => ok(node.netns, `http://127.0.0.1:${ISTIOD_PORTS.http}/ready`),
    () => isProcessAlive(istiod.pid, 'nsenter') || isProcessAlive(istiod.pid, istiod.binary),
    istiod.log,
    timeoutMs,
  );
  log(`istiod ready (${elapsed(start)} s, pid ${istiod.pid})`);
  start = Date.now();
  await until('istiod validation webhook armed', () => validationWebhookArmed(target), timeoutMs);
  log(`istiod validation webhook armed (${elapsed(start)} s)`);

  start = Date.now();
  await installObjects(target, [path.join(SYSTEM_DIR, 'ingressgateway.yaml')], (m) =>
    fillIstioPlaceholders(m, images['istio-proxy'].ref),
  );
  await until(
    `${ISTIO_NAMESPACE}/${INGRESS_GATEWAY} available`,
    () => deploymentAvailable(target, ISTIO_NAMESPACE, INGRESS_GATEWAY),
    timeoutMs,
  );
  log(`Istio ingress gateway available (${elapsed(start)} s)`);
  return istiod;
}

async function ok(netns: string, url: string): Promise<boolean> {
  try {
    return (await fetchInNode(netns, url, { timeoutMs: 2_000 })).status === 200;
  } catch {
    return false;
  }
}

/**
 * Deletes the gateway Deployment (its pods would otherwise keep asking a stopped istiod for configuration) and
 * stops istiod; returns whether istiod was running.
 */
export async function stopIstio(
  istiod: NodeProcess | undefined,
  target: KubeTarget,
  log: Log,
): Promise<boolean> {
  await kubeRequest(
    target,
    'DELETE',
    `/apis/apps/v1/namespaces/${ISTIO_NAMESPACE}/deployments/${INGRESS_GATEWAY}`,
    undefined,
    { allowStatus: [404] },
  );
  if (!istiod || !isProcessAlive(istiod.pid, istiod.binary)) return false;
  await terminateProcess(istiod.pid, istiod.binary, 5_000);
  log(`stopped istiod (pid ${istiod.pid})`);
  return true;
}

/** One request to the ingress gateway, as {@link requestGateway} sends it. */
export interface GatewayRequest {
  /** The gateway Service's ClusterIP (or any address of the gateway inside the node namespace). */
  address: string;
  port: number;
  /** `Host` header, and the TLS server name for HTTPS. */
  host: string;
  path?: string;
  /** HTTPS, trusting this CA certificate (PEM) only. */
  tlsCa?: string;
  timeoutMs?: number;
}

/** What the gateway answered. */
export interface GatewayAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The certificate the gateway presented (HTTPS): its subject alternative names. */
  peerSubjectAltName?: string;
}

const GATEWAY_REQUEST = `
const [o] = JSON.parse(process.argv[1]);
const client = require(o.tlsCa ? 'node:https' : 'node:http');
const req = client.request(
  { host: o.address, port: o.port, path: o.path || '/', method: 'GET', headers: { host: o.host },
    timeout: o.timeoutMs, ...(o.tlsCa ? { ca: o.tlsCa, servername: o.host } : {}) },
  (res) => {
    const cert = res.socket.getPeerCertificate ? res.socket.getPeerCertificate() : undefined;
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => (body += d));
    res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, headers: res.headers, body,
      peerSubjectAltName: cert && cert.subjectaltname })));
  },
);
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (err) => { process.stderr.write(String(err.code || err.message)); process.exitCode = 1; });
req.end();
`;

/**
 * A request to the ingress gateway from inside the node's network namespace, with an explicit `Host` (and for
 * HTTPS the same name as SNI, verified against `tlsCa`): what a client outside sends to the gateway's address.
 */
export async function requestGateway(netns: string, request: GatewayRequest): Promise<GatewayAnswer> {
  const timeoutMs = request.timeoutMs ?? 5_000;
  const result = await runCommand(
    'nsenter',
    [
      `--net=${netnsPath(netns)}`,
      '--',
      process.execPath,
      '-e',
      GATEWAY_REQUEST,
      JSON.stringify([{ ...request, timeoutMs }]),
    ],
    { timeoutMs: timeoutMs + 5_000, env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  if (result.code !== 0) {
    throw new Error(
      `GET ${request.host}${request.path ?? '/'} via ${request.address}:${request.port}: ${result.stderr.trim()}`,
    );
  }
  return JSON.parse(result.stdout) as GatewayAnswer;
}

const GATEWAY_POLL = `
const [o, body, deadline] = JSON.parse(process.argv[1]);
const client = require('node:http');
const once = () => new Promise((resolve) => {
  const req = client.get({ host: o.address, port: o.port, path: o.path || '/', headers: { host: o.host }, timeout: 2000 },
    (res) => { let b = ''; res.setEncoding('utf8'); res.on('data', (d) => (b += d)); res.on('end', () => resolve(res.statusCode === 200 && b === body)); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => resolve(false));
});
(async () => {
  while (Date.now() < deadline) {
    if (await once()) { process.stdout.write(String(Date.now())); return; }
    await new Promise((r) => setTimeout(r, 10));
  }
  process.stderr.write('deadline passed'); process.exitCode = 1;
})();
`;

/**
 * Starts polling the gateway over HTTP (one process inside the node namespace, a request every ~10 ms plus its round
 * trip) until it answers 200 with exactly `body`; resolves with that moment (epoch ms). Start it before the change
 * whose effect is timed.
 */
export async function gatewayServes(
  netns: string,
  request: Omit<GatewayRequest, 'tlsCa' | 'timeoutMs'>,
  body: string,
  timeoutMs: number,
): Promise<number> {
  const result = await runCommand(
    'nsenter',
    [
      `--net=${netnsPath(netns)}`,
      '--',
      process.execPath,
      '-e',
      GATEWAY_POLL,
      JSON.stringify([request, body, Date.now() + timeoutMs]),
    ],
    { timeoutMs: timeoutMs + 5_000, env: { ...process.env, NODE_NO_WARNINGS: '1' } },
  );
  if (result.code !== 0)
    throw new Error(`${request.host}${request.path ?? '/'} never served "${body}": ${result.stderr.trim()}`);
  return Number(result.stdout);
}

/**
 * A self-signed certificate and key (PEM) for `host` (CN and the one DNS subject alternative name), valid one day:
 * what a Gateway's `credentialName` Secret holds in a local cluster.
 */
export async function selfSignedCertificate(host: string): Promise<{ cert: string; key: string }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'gateway-tls-'));
  try {
    const [key, cert] = [path.join(dir, 'tls.key'), path.join(dir, 'tls.crt')];
    await mustRun('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${host}`,
      '-addext',
      `subjectAltName=DNS:${host}`,
      '-keyout',
      key,
      '-out',
      cert,
    ]);
    return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
