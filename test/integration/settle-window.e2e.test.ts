/**
 * The settle window on the local control plane: the real ApiServerSource adapter, configured like the shipped
 * Secret variant (`knative/secrets`: ConfigMaps and Secrets labelled with the watch label, Reference mode), delivers
 * through a relay to the built function (`CONFIG_KINDS=ConfigMap,Secret`, its own ServiceAccount and RBAC), and
 * kube-controller-manager rolls the Deployments:
 *
 * - a ConfigMap and a Secret used by one Deployment, changed 200 ms apart inside its 2 s window: exactly one
 *   restart, after the window (one new ReplicaSet, one restartTimestamp), whose records name both new contents;
 * - the function stopped after the first change and started again inside the window: still one restart, after
 *   the window, covering both;
 * - the function stopped inside the window and started only after its end (scaled to zero): the new instance
 *   restarts at once on its own, with no event.
 *
 * Every assertion reads what the API server holds (the relay only tells when a delivery was answered).
 */
import { jest } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { kubeRequest, writeServiceAccountKubeconfig, type KubeTarget } from '../../cluster/kube.js';
import {
  applyKustomizationIn,
  appsWorkload,
  deleteNamespace,
  eventually,
  mergePatch,
  optedInConfigMap,
  PATHS,
  readWorkload,
  rolloutsOf,
  WATCH_LABEL,
} from '../../cluster/objects.js';
import { shippedSource } from '../../cluster/shipped-source.js';
import { REPO_ROOT, sleep } from '../../cluster/util.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import type { ConfigObject } from '../../functions/config-restarter/src/model.js';
import { parseHashRecord } from '../../functions/config-restarter/src/records.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';

jest.setTimeout(120_000);

const NS = uniqueName('settle');
const PREFIX = 'rolling.restart.controller';
const RESTART = `${PREFIX}/restartTimestamp`;
const HASHES = `${PREFIX}/configHashes`;
const WINDOW = `${PREFIX}/settleWindow`;

let admin: KubeTarget;
let dir: string;
let fn: FunctionProcess;
let relay: Server;
let adapter: ApiServerSourceAdapter;
let started = 0;
/** Deliveries the relay passed on, by object name: the function's answers. */
const deliveries: { name: string; type: string; status: number; body: string }[] = [];

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Passes every delivery of the adapter to the function running now, and records its answer. */
function startRelay(): Promise<Server> {
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(
          (entry): entry is [string, string] =>
            typeof entry[1] === 'string' && !['host', 'connection', 'content-length'].includes(entry[0]),
        ),
      );
      const answer = await fetch(fn.url, { method: 'POST', headers, body });
      const text = await answer.text();
      deliveries.push({
        name: headers['ce-name'] ?? '',
        type: headers['ce-type'] ?? '',
        status: answer.status,
        body: text,
      });
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
      res.end(text);
    })().catch((error: unknown) => {
      res.writeHead(502).end(String(error));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Starts (again) the function with Secrets enabled, logging to a file of its own. */
async function startFn(): Promise<FunctionProcess> {
  return startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: NS,
    logFile: path.join(dir, `config-restarter-${++started}.log`),
    env: { CONFIG_KINDS: 'ConfigMap,Secret' },
  });
}

/** The parts of one test: a ConfigMap (tied by labels) and a Secret (a volume) of one Deployment. */
interface Trio {
  cm: string;
  secret: string;
  deploy: string;
}

const trio = (name: string): Trio => ({
  cm: `${name}-cm`,
  secret: `${name}-secret`,
  deploy: `${name}-deploy`,
});

const secretData = (value: string) => ({ password: Buffer.from(value).toString('base64') });

/** Creates the trio while watched (the adds record both contents) and waits for the first ReplicaSet. */
async function createTrio({ cm, secret, deploy }: Trio, settle: string): Promise<void> {
  const labels = { app: deploy, env: 'test' };
  await kubeRequest(admin, 'POST', PATHS.deployments(NS), {
    ...appsWorkload('Deployment', deploy, {
      labels,
      optIn: true,
      podSpec: {
        containers: [{ name: 'main', image: 'registry.example/app:1' }],
        volumes: [{ name: 'secret', secret: { secretName: secret } }],
      },
      extraMeta: { annotations: { [`${PREFIX}/restartOnTrigger`]: 'true', [`${PREFIX}/settle`]: settle } },
    }),
  });
  await eventually(`the first ReplicaSet of ${deploy}`, async () =>
    (await replicaSets(deploy)).length === 1 ? true : undefined,
  );
  // Let the function's warm index see the Deployment before the objects it uses appear.
  await sleep(500);
  await kubeRequest(admin, 'POST', PATHS.configmaps(NS), optedInConfigMap(cm, labels, { MESSAGE: 'v0' }));
  await kubeRequest(admin, 'POST', PATHS.secrets(NS), {
    metadata: {
      name: secret,
      labels: { [WATCH_LABEL]: 'true' },
      annotations: { [`${PREFIX}/triggerRestart`]: 'true' },
    },
    data: secretData('p0'),
  });
  await eventually(`both adds recorded on ${deploy}`, async () => {
    const record = parseHashRecord(
      (await readWorkload(admin, PATHS.deployments(NS), deploy)).annotations[HASHES],
    );
    return record[`configmap/${cm}`] && record[`secret/${secret}`] ? true : undefined;
  });
}

const replicaSets = (deploy: string) => rolloutsOf(admin, PATHS.replicasets(NS), `Deployment/${deploy}`);
const deployment = (deploy: string) => readWorkload(admin, PATHS.deployments(NS), deploy);

/** The content hashes of the trio's ConfigMap and Secret as the API server holds them now. */
async function currentHashes({ cm, secret }: Trio): Promise<Record<string, string>> {
  const read = async (collection: string, name: string) =>
    (await kubeRequest<ConfigObject>(admin, 'GET', `${collection}/${name}`)).body;
  return {
    [`configmap/${cm}`]: contentHash('ConfigMap', await read(PATHS.configmaps(NS), cm)),
    [`secret/${secret}`]: contentHash('Secret', await read(PATHS.secrets(NS), secret)),
  };
}

/** Waits until the function answered the update of `name` (the adapter delivered it). */
async function answered(name: string, before: number): Promise<string> {
  const delivery = await eventually(`the update of ${name} answered`, () =>
    Promise.resolve(
      deliveries.slice(before).find((d) => d.name === name && d.type === 'dev.knative.apiserver.ref.update'),
    ),
  );
  expect(delivery.status).toBe(200);
  return delivery.body;
}

/** The settle window on the Deployment now. */
async function windowOn(deploy: string): Promise<{ records: string[]; until: string } | undefined> {
  const raw = (await deployment(deploy)).annotations[WINDOW];
  return raw ? (JSON.parse(raw) as { records: string[]; until: string }) : undefined;
}

/**
 * Waits for the restart, then checks it is the only one, after the window, with both contents recorded: one
 * new ReplicaSet, one restartTimestamp, the window removed, and nothing more `quietMs` later.
 */
async function expectOneRestartAfter(t: Trio, until: string, quietMs = 3000): Promise<void> {
  const restartedAt = await eventually(
    `the restart of ${t.deploy}`,
    async () => (await deployment(t.deploy)).templateAnnotations[RESTART],
    20_000,
  );
  expect(Date.parse(restartedAt)).toBeGreaterThanOrEqual(Date.parse(until));
  const sets = await eventually(`the second ReplicaSet of ${t.deploy}`, async () => {
    const found = await replicaSets(t.deploy);
    return found.length === 2 ? found : undefined;
  });
  expect(sets.map((s) => s.revision)).toEqual([1, 2]);
  const after = await deployment(t.deploy);
  expect(parseHashRecord(after.annotations[HASHES])).toEqual(await currentHashes(t));
  expect(after.annotations[WINDOW]).toBeUndefined();

  await sleep(quietMs);
  expect((await replicaSets(t.deploy)).length).toBe(2);
  expect((await deployment(t.deploy)).templateAnnotations[RESTART]).toBe(restartedAt);
}

beforeAll(async () => {
  admin = adminTarget();
  dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), NS);
  // The project's plumbing with the Secret variant (its Roles for both the source and the function).
  await applyKustomizationIn(adminKubeconfigPath(), 'knative/secrets', NS);
  const sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, NS, 'config-restarter-source');
  fn = await startFn();
  relay = await startRelay();
  const source = await shippedSource('knative/secrets');
  expect(source.resources.map((r) => r.resource)).toEqual(['configmaps', 'secrets']);
  adapter = await startApiServerSourceAdapter({
    binary: process.env.TEST_ASSET_APISERVER_ADAPTER ?? 'apiserver_receive_adapter',
    kubeconfig: sourceKubeconfig,
    namespace: NS,
    name: source.name,
    sink: `http://127.0.0.1:${(relay.address() as AddressInfo).port}/`,
    mode: source.mode,
    resources: source.resources,
    logFile: path.join(dir, 'adapter.log'),
  });
  await adapter.waitUntilWatching();
});

afterAll(async () => {
  await adapter?.stop();
  await new Promise((resolve) => relay?.close(resolve));
  const code = await fn?.stop();
  await deleteNamespace(admin, NS);
  expect(code).toBe(0);
});

it('a ConfigMap and a Secret changed 200 ms apart inside a 2 s window: one restart, after it, naming both', async () => {
  const t = trio('st-burst');
  await createTrio(t, '2s');
  const before = deliveries.length;

  await mergePatch(admin, `${PATHS.configmaps(NS)}/${t.cm}`, { data: { MESSAGE: 'v1' } });
  await sleep(200);
  await mergePatch(admin, `${PATHS.secrets(NS)}/${t.secret}`, { data: secretData('p1') });
  const replies = [await answered(t.cm, before), await answered(t.secret, before)];
  expect(replies[0]).toContain('"action":"defer"');
  expect(replies[0]).toContain(`settle: window open until`);
  expect(replies[1]).toContain(`covers ConfigMap/${t.cm}, Secret/${t.secret}; added Secret/${t.secret}`);

  const window = await windowOn(t.deploy);
  expect(window?.records).toEqual([`configmap/${t.cm}`, `secret/${t.secret}`]);
  // Nothing restarted inside the window.
  expect(Date.now()).toBeLessThan(Date.parse(window!.until));
  expect((await deployment(t.deploy)).templateAnnotations[RESTART]).toBeUndefined();
  expect((await replicaSets(t.deploy)).length).toBe(1);

  await expectOneRestartAfter(t, window!.until);
});

it('the window survives the function being stopped after the first change and started again inside it', async () => {
  const t = trio('st-restart');
  await createTrio(t, '6s');
  const before = deliveries.length;

  await mergePatch(admin, `${PATHS.configmaps(NS)}/${t.cm}`, { data: { MESSAGE: 'v1' } });
  expect(await answered(t.cm, before)).toContain('"action":"defer"');
  const window = await windowOn(t.deploy);
  expect(window?.records).toEqual([`configmap/${t.cm}`]);
  expect(await fn.stop()).toBe(0);

  fn = await startFn();
  await mergePatch(admin, `${PATHS.secrets(NS)}/${t.secret}`, { data: secretData('p1') });
  expect(await answered(t.secret, before)).toContain(`added Secret/${t.secret}`);
  expect(Date.now()).toBeLessThan(Date.parse(window!.until));
  expect(await windowOn(t.deploy)).toEqual({
    ...window,
    records: [`configmap/${t.cm}`, `secret/${t.secret}`],
  });
  expect((await replicaSets(t.deploy)).length).toBe(1);

  await expectOneRestartAfter(t, window!.until);
});

it('a window that ended while no function ran is closed by the next one at its start, with no event', async () => {
  const t = trio('st-cold');
  await createTrio(t, '2s');
  const before = deliveries.length;

  await mergePatch(admin, `${PATHS.configmaps(NS)}/${t.cm}`, { data: { MESSAGE: 'v1' } });
  await sleep(200);
  await mergePatch(admin, `${PATHS.secrets(NS)}/${t.secret}`, { data: secretData('p1') });
  await answered(t.secret, before);
  const window = await windowOn(t.deploy);
  expect(window?.records).toEqual([`configmap/${t.cm}`, `secret/${t.secret}`]);
  expect(await fn.stop()).toBe(0);

  // Scaled to zero: the window ends with no instance to see it, and nothing restarts.
  await sleep(Math.max(0, Date.parse(window!.until) - Date.now() + 1000));
  expect((await deployment(t.deploy)).templateAnnotations[RESTART]).toBeUndefined();
  expect(await windowOn(t.deploy)).toEqual(window);

  const delivered = deliveries.length;
  fn = await startFn();
  await expectOneRestartAfter(t, window!.until);
  expect(deliveries.length).toBe(delivered);
});
