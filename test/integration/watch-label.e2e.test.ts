/**
 * The watch label and the named writer, on the local control plane, with the real ApiServerSource adapter
 * configured like the shipped source (rendered from knative/: Reference mode, selector
 * rolling.restart.controller/watch=true) delivering through a counting relay to the function:
 *
 * - an unlabelled, unreferenced ConfigMap written 100 times produces 0 events at the function; a labelled one
 *   produces one event per write, and the function acts on the label alone;
 * - a ConfigMap opted in only by the annotation (the original contract) and tied by reference produces no event,
 *   and the resync (what the PingSource sends) rolls it out;
 * - after a restart, `metadata.managedFields` show the field manager `config-restarter` owning exactly the
 *   function's annotations, and each decision names the ConfigMap's last field manager.
 */
import { jest } from '@jest/globals';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { pingSourceRequest } from '../../cluster/apiserver-event.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { kubeRequest, writeServiceAccountKubeconfig, type KubeTarget } from '../../cluster/kube.js';
import {
  applyKustomization,
  appsWorkload,
  eventually,
  knativeService,
  optedInConfigMap,
  PATHS,
  readWorkload,
  WATCH_LABEL,
} from '../../cluster/objects.js';
import { shippedSource } from '../../cluster/shipped-source.js';
import { REPO_ROOT, sleep } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';

jest.setTimeout(180_000);

const NS = 'helloworld';
const PREFIX = 'rolling.restart.controller';
const RESTART = `${PREFIX}/restartTimestamp`;
const HASHES = `${PREFIX}/configHashes`;
/** The field manager the test's own edits of ConfigMaps use. */
const EDITOR = 'it-editor';

/** One delivery the relay passed on to the function. */
interface Delivery {
  type: string;
  name: string;
  status: number;
  reply: { result?: string; decisions?: Decision[] };
}
interface Decision {
  workload: { kind: string; name: string };
  action: string;
  configs: string[];
  lastWrite: { config: string; fieldManager: string; operation: string; time: string }[];
}
interface ManagedFieldsEntry {
  manager: string;
  operation: string;
  time: string;
  fieldsV1?: Record<string, unknown>;
  subresource?: string;
}

let admin: KubeTarget;
let fn: FunctionProcess;
let relay: Server;
let adapter: ApiServerSourceAdapter;
const deliveries: Delivery[] = [];

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A relay between the adapter and the function that records every delivery and the function's answer. */
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
      let reply: Delivery['reply'] = {};
      try {
        reply = JSON.parse(text) as Delivery['reply'];
      } catch {
        // A non-JSON answer is recorded by its status only.
      }
      // A 200 answer is a binary-mode CloudEvent: its data (the decisions) is the body.
      deliveries.push({
        type: headers['ce-type'] ?? '',
        name: headers['ce-name'] ?? '',
        status: answer.status,
        reply,
      });
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' });
      res.end(text);
    })().catch((error: unknown) => {
      res.writeHead(502).end(String(error));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

const deliveriesOf = (name: string): Delivery[] => deliveries.filter((d) => d.name === name);

/**
 * A merge patch of a ConfigMap's data by the test's own field manager. managedFields record seconds only: after a
 * write of another manager within the same second both would be named, so `nextSecond` waits for the next one.
 */
async function editConfigMap(
  name: string,
  data: Record<string, string>,
  { nextSecond = false } = {},
): Promise<void> {
  if (nextSecond) await sleep(1000 - (Date.now() % 1000) + 50);
  await kubeRequest(
    admin,
    'PATCH',
    `${PATHS.configmaps(NS)}/${name}?fieldManager=${EDITOR}`,
    { data },
    { contentType: 'application/merge-patch+json' },
  );
}

/** The paths of the leaves a managedFields entry owns (`f:` keys; `.`, the map itself, left out). */
function ownedLeaves(fields: Record<string, unknown>, prefix = ''): string[] {
  const leaves: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (key === '.') continue;
    const name = key.replace(/^[fkv]:/, '');
    const here = prefix ? `${prefix}.${name}` : name;
    const children = Object.keys(value ?? {}).filter((k) => k !== '.');
    if (children.length === 0) leaves.push(here);
    else leaves.push(...ownedLeaves(value as Record<string, unknown>, here));
  }
  return leaves.sort();
}

async function managedFields(objectPath: string): Promise<ManagedFieldsEntry[]> {
  const { body } = await kubeRequest<{ metadata: { managedFields?: ManagedFieldsEntry[] } }>(
    admin,
    'GET',
    objectPath,
  );
  return body.metadata.managedFields ?? [];
}

beforeAll(async () => {
  admin = adminTarget();
  const dir = path.join(
    process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'),
    'watch-label',
  );
  await applyKustomization(adminKubeconfigPath(), 'knative');
  const sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, NS, 'config-restarter-source');
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: NS,
    logFile: path.join(dir, 'config-restarter.log'),
  });
  relay = await startRelay();
  const source = await shippedSource('knative');
  expect(source.resources).toEqual([
    { group: '', version: 'v1', resource: 'configmaps', selector: `${WATCH_LABEL}=true` },
  ]);
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
  expect(await fn?.stop()).toBe(0);
});

it('an unlabelled, unreferenced ConfigMap written 100 times produces 0 events; a labelled one, one per write', async () => {
  const WRITES = 100;
  const noise = 'wl-noise';
  const labelled = 'wl-labelled';
  const eventsBefore = await fn.eventsHandled();
  await kubeRequest(admin, 'POST', PATHS.configmaps(NS), { metadata: { name: noise }, data: { V: '0' } });
  await kubeRequest(admin, 'POST', PATHS.configmaps(NS), {
    // The label alone: no annotation.
    metadata: { name: labelled, labels: { app: labelled, [WATCH_LABEL]: 'true' } },
    data: { V: '0' },
  });
  for (let i = 1; i <= WRITES; i++) await editConfigMap(noise, { V: String(i) });
  for (let i = 1; i <= WRITES; i++) await editConfigMap(labelled, { V: String(i) });

  // One watch delivers in write order: once the labelled object's last write arrived, every noise write (all
  // made before) would have arrived too.
  await eventually(
    `${WRITES + 1} deliveries for ${labelled}`,
    () => Promise.resolve(deliveriesOf(labelled).length >= WRITES + 1 ? true : undefined),
    60_000,
  );
  expect(deliveriesOf(noise)).toEqual([]);
  const events = deliveriesOf(labelled);
  expect(events.map((d) => d.type)).toEqual([
    'dev.knative.apiserver.ref.add',
    ...Array<string>(WRITES).fill('dev.knative.apiserver.ref.update'),
  ]);
  // The label is an opt-in for the function too: every event is processed, none ignored as "not opted in".
  expect(new Set(events.map((d) => `${d.status} ${d.reply.result}`))).toEqual(new Set(['200 processed']));
  expect((await fn.eventsHandled()) - eventsBefore).toBe(WRITES + 1);
});

it('a ConfigMap opted in only by the annotation produces no event and is rolled out by the resync', async () => {
  const cm = 'wl-annotated';
  const deployment = 'wl-by-reference';
  await kubeRequest(
    admin,
    'POST',
    PATHS.configmaps(NS),
    optedInConfigMap(cm, { app: 'wl-annotated' }, { MESSAGE: 'one' }, 'annotation'),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(NS),
    appsWorkload('Deployment', deployment, {
      labels: { app: deployment },
      optIn: true,
      podSpec: {
        containers: [
          { name: 'main', image: 'registry.example/app:1', envFrom: [{ configMapRef: { name: cm } }] },
        ],
      },
    }),
  );
  const resync = async (): Promise<{ decisions: Decision[] }> => {
    const wire = pingSourceRequest();
    const res = await fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });
    expect(res.status).toBe(200);
    return (await res.json()) as { decisions: Decision[] };
  };
  // First contact records the content.
  const first = await resync();
  expect(first.decisions.find((d) => d.workload.name === deployment)?.action).toBe('record');

  await editConfigMap(cm, { MESSAGE: 'two' }, { nextSecond: true });
  // A labelled write after it: once its event arrived, an event for the annotated one would have arrived too.
  const markers = deliveriesOf('wl-labelled').length;
  await editConfigMap('wl-labelled', { V: 'marker' });
  await eventually('the marker event', () =>
    Promise.resolve(deliveriesOf('wl-labelled').length > markers ? true : undefined),
  );
  expect(deliveriesOf(cm)).toEqual([]);
  expect(
    (await readWorkload(admin, PATHS.deployments(NS), deployment)).templateAnnotations[RESTART],
  ).toBeUndefined();

  // The resync (every 10 minutes as shipped) rolls it out, once, naming who changed the ConfigMap.
  const second = await resync();
  const decision = second.decisions.find((d) => d.workload.name === deployment);
  expect(decision).toMatchObject({ action: 'restart', configs: [`ConfigMap ${NS}/${cm}`] });
  expect(decision?.lastWrite).toEqual([
    {
      config: `ConfigMap ${NS}/${cm}`,
      fieldManager: EDITOR,
      operation: 'Update',
      time: expect.any(String) as string,
    },
  ]);
  expect(
    (await readWorkload(admin, PATHS.deployments(NS), deployment)).templateAnnotations[RESTART],
  ).toBeDefined();
  expect((await resync()).decisions.find((d) => d.workload.name === deployment)?.action).toBe('skip');
});

describe('managedFields after a restart', () => {
  const app = 'wl-owned';
  const cm = `${app}-config`;
  const labels = { app, env: 'test' };
  const deploymentPath = `${PATHS.deployments(NS)}/${app}`;
  const ksvcPath = `${PATHS.ksvcs(NS)}/${app}`;

  beforeAll(async () => {
    await kubeRequest(
      admin,
      'POST',
      PATHS.deployments(NS),
      appsWorkload('Deployment', app, { labels, optIn: true }),
    );
    await kubeRequest(admin, 'POST', PATHS.ksvcs(NS), knativeService(app, { labels, optIn: true }));
    // Created while watched: the `add` records the content on both (no restart).
    await kubeRequest(admin, 'POST', PATHS.configmaps(NS), optedInConfigMap(cm, labels, { MESSAGE: 'one' }));
    for (const objectPath of [deploymentPath, ksvcPath]) {
      await eventually(`the record on ${objectPath}`, async () => {
        const { body } = await kubeRequest<{ metadata: { annotations?: Record<string, string> } }>(
          admin,
          'GET',
          objectPath,
        );
        return body.metadata.annotations?.[HASHES] ? true : undefined;
      });
    }
    await editConfigMap(cm, { MESSAGE: 'two' }, { nextSecond: true });
    await eventually('both restarts', async () => {
      const deployment = await readWorkload(admin, PATHS.deployments(NS), app);
      const ksvc = await readWorkload(admin, PATHS.ksvcs(NS), app);
      return deployment.templateAnnotations[RESTART] && ksvc.templateAnnotations[RESTART] ? true : undefined;
    });
  });

  it.each([
    ['Deployment', deploymentPath],
    ['Knative Service', ksvcPath],
  ])(
    'the field manager config-restarter owns exactly the function annotations of the %s',
    async (_kind, objectPath) => {
      const entries = await managedFields(objectPath);
      const own = entries.filter((e) => e.manager === 'config-restarter');
      expect(own.map((e) => [e.operation, e.subresource ?? ''])).toEqual([['Update', '']]);
      // The hash record, the rollout record (the outcome of the restart, README "Outcomes of restarts") and the
      // pod template's restart time.
      expect(ownedLeaves(own[0]!.fieldsV1!)).toEqual([
        `metadata.annotations.${HASHES}`,
        `metadata.annotations.${PREFIX}/rollout`,
        `spec.template.metadata.annotations.${RESTART}`,
      ]);
      // Everything else stays with its writers (the creator, the controllers), none of which owns those.
      const others = entries.filter((e) => e.manager !== 'config-restarter');
      expect(others.length).toBeGreaterThan(0);
      for (const entry of others) {
        const leaves = ownedLeaves(entry.fieldsV1 ?? {});
        expect(leaves.filter((l) => l.endsWith(HASHES) || l.endsWith(RESTART))).toEqual([]);
      }
    },
  );

  it("the decisions name the ConfigMap's last field manager, in the reply and in the log", async () => {
    const update = deliveriesOf(cm).find((d) => d.type === 'dev.knative.apiserver.ref.update');
    const decisions = update?.reply.decisions ?? [];
    // Knative's own Deployment of the Revision is tied by labels too, and skipped (not opted in).
    expect(
      decisions
        .filter((d) => d.action === 'restart')
        .map((d) => `${d.workload.kind} ${d.workload.name}`)
        .sort(),
    ).toEqual([`Deployment ${app}`, `Service ${app}`]);
    for (const decision of decisions) {
      expect(decision.lastWrite).toEqual([
        {
          config: `ConfigMap ${NS}/${cm}`,
          fieldManager: EDITOR,
          operation: 'Update',
          time: expect.any(String) as string,
        },
      ]);
    }
    const { body } = await kubeRequest<{ metadata: { managedFields: ManagedFieldsEntry[] } }>(
      admin,
      'GET',
      `${PATHS.configmaps(NS)}/${cm}`,
    );
    const editorEntry = body.metadata.managedFields.find((e) => e.manager === EDITOR);
    expect(decisions[0]?.lastWrite[0]?.time).toBe(editorEntry?.time);
    const logged = fn
      .logLines()
      .filter((l) => l.msg === 'decision' && (l.workload as { name?: string } | undefined)?.name === app);
    expect(logged.some((l) => JSON.stringify(l.lastWrite).includes(`"fieldManager":"${EDITOR}"`))).toBe(true);
  });
});
