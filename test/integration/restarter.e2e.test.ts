/**
 * End to end on a real kube-apiserver: ConfigMap edit -> the real ApiServerSource adapter -> the built
 * config-restarter (running with the token of its own ServiceAccount, bound only by the project's
 * manifests) -> patched workloads. Every assertion reads what the API server holds afterwards.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { shippedSource } from '../../cluster/shipped-source.js';
import { kubeRequest, writeServiceAccountKubeconfig, type KubeTarget } from '../../cluster/kube.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import { parseHashRecord } from '../../functions/config-restarter/src/records.js';
import { apiServerSourceRequest, pingSourceRequest } from '../../cluster/apiserver-event.js';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import {
  applyKustomization,
  appsWorkload,
  eventually,
  knativeService,
  mergePatch,
  optedInConfigMap,
  PATHS,
  readWorkload,
  settle,
  type WorkloadState,
} from '../../cluster/objects.js';

jest.setTimeout(120_000);

const NS = 'helloworld';
const RESTART = 'rolling.restart.controller/restartTimestamp';
const HASHES = 'rolling.restart.controller/configHashes';

let admin: KubeTarget;
let fn: FunctionProcess;
let dir: string;
let sourceKubeconfig: string;

const send = async (wire: { headers: Record<string, string>; body: string }): Promise<Response> =>
  fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });

async function configMapHash(name: string): Promise<string> {
  const { body } = await kubeRequest<{ data?: Record<string, string> }>(
    admin,
    'GET',
    `${PATHS.configmaps(NS)}/${name}`,
  );
  return contentHash('ConfigMap', body);
}

/** The real adapter, configured like the ApiServerSource of knative/ (its selector), in either mode. */
async function startAdapter(mode: 'Reference' | 'Resource'): Promise<ApiServerSourceAdapter> {
  const source = await shippedSource('knative');
  const adapter = await startApiServerSourceAdapter({
    binary: process.env.TEST_ASSET_APISERVER_ADAPTER ?? 'apiserver_receive_adapter',
    kubeconfig: sourceKubeconfig,
    namespace: NS,
    name: source.name,
    sink: fn.url,
    mode,
    resources: source.resources,
    logFile: path.join(dir, `adapter-${mode}-${Date.now()}.log`),
  });
  await adapter.waitUntilWatching();
  return adapter;
}

beforeAll(async () => {
  admin = adminTarget();
  dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), 'e2e');
  // The project's own manifests: Namespace, ServiceAccounts, Roles, RoleBindings, sources, both environments.
  await applyKustomization(adminKubeconfigPath(), 'knative');
  await applyKustomization(adminKubeconfigPath(), 'kustomize/overlays/test');
  await applyKustomization(adminKubeconfigPath(), 'kustomize/overlays/prod');

  const fnKubeconfig = path.join(dir, 'config-restarter.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), fnKubeconfig, NS, 'config-restarter');
  sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, NS, 'config-restarter-source');
  // WATCH_NAMESPACES unset: the function acts in its own namespace (the kubeconfig context's).
  fn = await startFunction({ kubeconfig: fnKubeconfig, logFile: path.join(dir, 'config-restarter.log') });
});

afterAll(async () => {
  const code = await fn?.stop();
  expect(code).toBe(0);
});

describe.each(['Reference', 'Resource'] as const)('driven by the real adapter in %s mode', (mode) => {
  const suffix = mode.toLowerCase();
  const app = `it-${suffix}`;
  const cm = `${app}-config`;
  const labels = { app, env: 'test' };
  let adapter: ApiServerSourceAdapter;

  const workloads: [string, string, string][] = [
    // [collection path, name, expectation]
    [PATHS.deployments(NS), `${app}-deploy`, 'restart'],
    [PATHS.statefulsets(NS), `${app}-sts`, 'restart'],
    [PATHS.daemonsets(NS), `${app}-ds`, 'restart'],
    [PATHS.ksvcs(NS), `${app}-ksvc`, 'restart'],
    [PATHS.deployments(NS), `${app}-by-reference`, 'restart'],
    [PATHS.deployments(NS), `${app}-prod`, 'untouched'],
    [PATHS.deployments(NS), `${app}-not-opted-in`, 'untouched'],
    // Made by the Knative Serving controller, owned by Revision -00001; opted in and tied by its labels too.
    [PATHS.deployments(NS), `${app}-ksvc-00001-deployment`, 'untouched'],
  ];
  const before = new Map<string, WorkloadState>();

  beforeAll(async () => {
    const create = (collection: string, body: unknown) => kubeRequest(admin, 'POST', collection, body);
    await create(PATHS.deployments(NS), appsWorkload('Deployment', `${app}-deploy`, { labels, optIn: true }));
    await create(PATHS.statefulsets(NS), appsWorkload('StatefulSet', `${app}-sts`, { labels, optIn: true }));
    await create(PATHS.daemonsets(NS), appsWorkload('DaemonSet', `${app}-ds`, { labels, optIn: true }));
    await create(
      PATHS.ksvcs(NS),
      knativeService(`${app}-ksvc`, {
        labels,
        optIn: true,
        // Copied to the Revision's Deployment: it is opted in too, and must still never be patched.
        templateMeta: { annotations: { 'rolling.restart.controller/restartOnTrigger': 'true' } },
      }),
    );
    await create(
      PATHS.deployments(NS),
      appsWorkload('Deployment', `${app}-by-reference`, {
        labels: { app: 'unrelated' },
        optIn: true,
        podSpec: { volumes: [{ name: 'config', configMap: { name: cm } }] },
      }),
    );
    await create(
      PATHS.deployments(NS),
      appsWorkload('Deployment', `${app}-prod`, { labels: { app, env: 'prod' }, optIn: true }),
    );
    await create(
      PATHS.deployments(NS),
      appsWorkload('Deployment', `${app}-not-opted-in`, { labels, optIn: false }),
    );
    await eventually(`the Knative Serving controller to create ${app}-ksvc-00001-deployment`, () =>
      readWorkload(admin, PATHS.deployments(NS), `${app}-ksvc-00001-deployment`),
    );
    adapter = await startAdapter(mode);
    // The ConfigMap appears after the adapter watches: an `add` -> first contact, hashes recorded, nothing restarted.
    await kubeRequest(admin, 'POST', PATHS.configmaps(NS), optedInConfigMap(cm, labels, { MESSAGE: 'one' }));
    const firstHash = await configMapHash(cm);
    for (const [collection, name] of workloads.filter(([, , expectation]) => expectation === 'restart')) {
      await eventually(`the add to be recorded on ${name}`, async () => {
        const state = await readWorkload(admin, collection, name);
        return parseHashRecord(state.annotations[HASHES])[`configmap/${cm}`] === firstHash ? true : undefined;
      });
    }
    await settle(() => fn.eventsHandled());
    for (const [collection, name] of workloads) before.set(name, await readWorkload(admin, collection, name));
  });

  afterAll(async () => {
    await adapter?.stop();
  });

  it('the add recorded the content on every tied opted-in workload and restarted none', () => {
    for (const [collection, name, expectation] of workloads) {
      const state = before.get(name)!;
      expect(state.templateAnnotations[RESTART]).toBeUndefined();
      // A Deployment's generation also counts metadata annotation changes (they are copied to its
      // ReplicaSets); the pod template, and so the pods, stayed the same.
      const recordBumpsGeneration = collection === PATHS.deployments(NS) && expectation === 'restart';
      expect(state.generation).toBe(recordBumpsGeneration ? 2 : 1);
      if (expectation === 'restart') expect(state.annotations[HASHES]).toBeDefined();
      else expect(state.annotations[HASHES]).toBeUndefined();
    }
  });

  it('a data change restarts exactly the matching opted-in workloads, the Knative Service through its template', async () => {
    const changedAt = new Date();
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { MESSAGE: 'two' } });
    const hash = await configMapHash(cm);
    for (const [collection, name, expectation] of workloads.filter(([, , e]) => e === 'restart')) {
      const state = await eventually(`${name} to restart`, async () => {
        const s = await readWorkload(admin, collection, name);
        return s.templateAnnotations[RESTART] ? s : undefined;
      });
      expect(expectation).toBe('restart');
      expect(state.generation).toBe(before.get(name)!.generation + 1);
      expect(Date.parse(state.templateAnnotations[RESTART]!)).toBeGreaterThanOrEqual(
        changedAt.getTime() - 1000,
      );
      expect(parseHashRecord(state.annotations[HASHES])[`configmap/${cm}`]).toBe(hash);
    }
    await settle(() => fn.eventsHandled());
    for (const [collection, name] of workloads.filter(([, , e]) => e === 'untouched')) {
      const state = await readWorkload(admin, collection, name);
      expect(state.generation).toBe(before.get(name)!.generation);
      expect(state.templateAnnotations[RESTART]).toBeUndefined();
    }
  });

  it('a metadata-only edit restarts nothing', async () => {
    const snapshot = await readWorkload(admin, PATHS.deployments(NS), `${app}-deploy`);
    const handled = await fn.eventsHandled();
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, {
      metadata: { labels: { note: 'relabelled' }, annotations: { owner: 'team-a' } },
    });
    await eventually('the update event to arrive', async () =>
      (await fn.eventsHandled()) > handled ? true : undefined,
    );
    await settle(() => fn.eventsHandled());
    const after = await readWorkload(admin, PATHS.deployments(NS), `${app}-deploy`);
    expect(after.generation).toBe(snapshot.generation);
    expect(after.templateAnnotations[RESTART]).toBe(snapshot.templateAnnotations[RESTART]);
  });

  it('a burst of edits and duplicate deliveries: no more restarts than changes, one after the last, last hash recorded', async () => {
    const name = `${app}-deploy`;
    const start = await readWorkload(admin, PATHS.deployments(NS), name);
    const edits = 5;
    let lastEditAt = 0;
    for (let i = 0; i < edits; i++) {
      lastEditAt = Date.now();
      await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { MESSAGE: `burst-${i}` } });
      // Duplicate deliveries of the same change, as a retrying sender would make them.
      const duplicate = apiServerSourceRequest({
        action: 'update',
        mode,
        object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cm, namespace: NS } },
        id: `duplicate-${suffix}-${i}`,
      });
      await Promise.all([send(duplicate), send(duplicate)]);
    }
    const finalHash = await configMapHash(cm);
    const end = await eventually('the last content to be recorded', async () => {
      const s = await readWorkload(admin, PATHS.deployments(NS), name);
      return parseHashRecord(s.annotations[HASHES])[`configmap/${cm}`] === finalHash ? s : undefined;
    });
    await settle(() => fn.eventsHandled());
    const settled = await readWorkload(admin, PATHS.deployments(NS), name);
    expect(settled.generation).toBe(end.generation);
    const restarts = settled.generation - start.generation;
    expect(restarts).toBeGreaterThanOrEqual(1);
    expect(restarts).toBeLessThanOrEqual(edits);
    expect(Date.parse(settled.templateAnnotations[RESTART]!)).toBeGreaterThanOrEqual(lastEditAt - 1000);
    expect(parseHashRecord(settled.annotations[HASHES])[`configmap/${cm}`]).toBe(finalHash);
  });

  it('two ConfigMaps tied to one workload keep both records', async () => {
    const name = `${app}-two-configs`;
    const second = `${app}-second`;
    await kubeRequest(
      admin,
      'POST',
      PATHS.configmaps(NS),
      optedInConfigMap(second, { app: 'other' }, { X: '1' }),
    );
    await kubeRequest(
      admin,
      'POST',
      PATHS.deployments(NS),
      appsWorkload('Deployment', name, {
        labels,
        optIn: true,
        podSpec: {
          containers: [
            { name: 'main', image: 'registry.example/app:1', envFrom: [{ configMapRef: { name: second } }] },
          ],
        },
      }),
    );
    await settle(() => fn.eventsHandled());
    const start = await readWorkload(admin, PATHS.deployments(NS), name);
    await Promise.all([
      mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { MESSAGE: `both-${suffix}` } }),
      mergePatch(admin, `${PATHS.configmaps(NS)}/${second}`, { data: { X: '2' } }),
    ]);
    const [hashA, hashB] = [await configMapHash(cm), await configMapHash(second)];
    const end = await eventually('both records', async () => {
      const s = await readWorkload(admin, PATHS.deployments(NS), name);
      const records = parseHashRecord(s.annotations[HASHES]);
      return records[`configmap/${cm}`] === hashA && records[`configmap/${second}`] === hashB ? s : undefined;
    });
    await settle(() => fn.eventsHandled());
    const restarts = (await readWorkload(admin, PATHS.deployments(NS), name)).generation - start.generation;
    expect(restarts).toBeGreaterThanOrEqual(1);
    expect(restarts).toBeLessThanOrEqual(2);
    expect(end.templateAnnotations[RESTART]).toBeDefined();
  });
});

describe('the helloworld environments from the overlays', () => {
  let adapter: ApiServerSourceAdapter;
  beforeAll(async () => {
    adapter = await startAdapter('Reference');
  });
  afterAll(async () => {
    await adapter?.stop();
  });

  it('editing the test ConfigMap rolls a new revision template of helloworld-test only', async () => {
    const prodBefore = await readWorkload(admin, PATHS.ksvcs(NS), 'helloworld-prod');
    const testBefore = await readWorkload(admin, PATHS.ksvcs(NS), 'helloworld-test');
    // First contact (nothing recorded yet): a resync records, then the edit restarts.
    await send(pingSourceRequest());
    await mergePatch(admin, `${PATHS.configmaps(NS)}/helloworld-config-test`, {
      data: { MESSAGE: 'Hello from an edit' },
    });
    const testAfter = await eventually('helloworld-test to get a new template', async () => {
      const s = await readWorkload(admin, PATHS.ksvcs(NS), 'helloworld-test');
      return s.templateAnnotations[RESTART] ? s : undefined;
    });
    expect(testAfter.generation).toBe(testBefore.generation + 1);
    await settle(() => fn.eventsHandled());
    const prodAfter = await readWorkload(admin, PATHS.ksvcs(NS), 'helloworld-prod');
    expect(prodAfter.generation).toBe(prodBefore.generation);
    expect(prodAfter.templateAnnotations[RESTART]).toBeUndefined();
  });
});

describe('a change made while the adapter is down', () => {
  it('is rolled out by the resync event', async () => {
    const app = 'it-resync';
    const cm = `${app}-config`;
    const labels = { app, env: 'test' };
    await kubeRequest(admin, 'POST', PATHS.configmaps(NS), optedInConfigMap(cm, labels, { MESSAGE: 'one' }));
    await kubeRequest(
      admin,
      'POST',
      PATHS.statefulsets(NS),
      appsWorkload('StatefulSet', `${app}-sts`, { labels, optIn: true }),
    );
    // The first resync records what the workload uses and restarts nothing.
    const first = await send(pingSourceRequest());
    expect(first.status).toBe(200);
    const recorded = await readWorkload(admin, PATHS.statefulsets(NS), `${app}-sts`);
    expect(parseHashRecord(recorded.annotations[HASHES])[`configmap/${cm}`]).toBe(await configMapHash(cm));
    expect(recorded.templateAnnotations[RESTART]).toBeUndefined();

    // The adapter goes down, the ConfigMap changes, the adapter comes back: it replays nothing.
    const adapter = await startAdapter('Reference');
    await adapter.stop();
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, {
      data: { MESSAGE: 'changed while nobody watched' },
    });
    const handled = await fn.eventsHandled();
    const restarted = await startAdapter('Reference');
    try {
      await settle(() => fn.eventsHandled());
      expect(await fn.eventsHandled()).toBe(handled);
    } finally {
      await restarted.stop();
    }
    const unchanged = await readWorkload(admin, PATHS.statefulsets(NS), `${app}-sts`);
    expect(unchanged.generation).toBe(recorded.generation);

    const resync = await send(pingSourceRequest());
    expect(resync.status).toBe(200);
    const after = await readWorkload(admin, PATHS.statefulsets(NS), `${app}-sts`);
    expect(after.generation).toBe(recorded.generation + 1);
    expect(after.templateAnnotations[RESTART]).toBeDefined();
    expect(parseHashRecord(after.annotations[HASHES])[`configmap/${cm}`]).toBe(await configMapHash(cm));

    // A second resync finds nothing new.
    await send(pingSourceRequest());
    expect((await readWorkload(admin, PATHS.statefulsets(NS), `${app}-sts`)).generation).toBe(
      after.generation,
    );
  });
});
