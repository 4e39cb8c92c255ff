/**
 * How each restart ended, on the real node, driven by the real ApiServerSource adapter configured from both
 * shipped sources (config objects, and the opted-in workloads whose status changes end a rollout): a good
 * ConfigMap edit is reported `rolled-out`, an edit that makes helloworld fail its readiness probe stalls the
 * Deployment until its progress deadline and is reported `failed`; the outcome lives in the workload's rollout
 * annotation and in Kubernetes Events on it. Two function instances share the work (one hears the config
 * objects, the other the workloads), and a cold third instance started after the workloads' events were lost
 * finishes the rollout at its resync: nothing restarts twice, no outcome is written twice or skipped.
 */
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { pingSourceRequest } from '../../cluster/apiserver-event.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { buildImages, importImages, type BuiltImage } from '../../cluster/images.js';
import { kubeRequest, writeServiceAccountKubeconfig } from '../../cluster/kube.js';
import {
  appsWorkload,
  applyKustomizationIn,
  deleteNamespace,
  eventually,
  mergePatch,
  optedInConfigMap,
  PATHS,
  WATCH_LABEL,
} from '../../cluster/objects.js';
import { shippedSource } from '../../cluster/shipped-source.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import { parseRolloutRecord, type RolloutRecord } from '../../functions/config-restarter/src/rollout.js';
import { adminKubeconfigPath, adminTarget, testNode, uniqueName } from './cluster-env.js';

const target = adminTarget();
const node = testNode();
const ns = uniqueName('outcomes');
const CM = 'shop-config';
const DEPLOY = 'shop';
const ROLLOUT = 'rolling.restart.controller/rollout';
const RESTART = 'rolling.restart.controller/restartTimestamp';
const labels = { app: 'shop', env: 'test' };
const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);

interface KubeEvent {
  reason: string;
  type: string;
  message: string;
  involvedObject: { kind: string; name: string; uid?: string };
  source?: { component?: string };
}
interface Deployment {
  metadata: { uid: string; annotations?: Record<string, string> };
  spec: { template: { metadata?: { annotations?: Record<string, string> } } };
  status?: { replicas?: number; updatedReplicas?: number; availableReplicas?: number };
}

let helloworld: BuiltImage;
let sourceKubeconfig: string;
const functions: FunctionProcess[] = [];
const adapters: ApiServerSourceAdapter[] = [];

async function get<T>(objectPath: string): Promise<T> {
  return (await kubeRequest<T>(target, 'GET', objectPath)).body;
}

const deployment = (): Promise<Deployment> => get<Deployment>(`${PATHS.deployments(ns)}/${DEPLOY}`);
const record = async (): Promise<RolloutRecord | undefined> =>
  parseRolloutRecord((await deployment()).metadata.annotations?.[ROLLOUT]);

/**
 * The function's Kubernetes Events on the Deployment (what `kubectl describe` lists next to the Deployment
 * controller's own `ScalingReplicaSet`), oldest first: their names end in the creation time in hex.
 */
async function events(): Promise<KubeEvent[]> {
  const selector = encodeURIComponent(`involvedObject.name=${DEPLOY},involvedObject.kind=Deployment`);
  const { items } = await get<{ items: KubeEvent[] }>(
    `/api/v1/namespaces/${ns}/events?fieldSelector=${selector}`,
  );
  return items.filter((e) => e.source?.component === 'config-restarter');
}
const reasons = async (): Promise<string[]> => (await events()).map((e) => e.reason);

async function replicaSets(): Promise<number> {
  const selector = encodeURIComponent(`workload-name=${DEPLOY}`);
  const { items } = await get<{ items: unknown[] }>(`${PATHS.replicasets(ns)}?labelSelector=${selector}`);
  return items.length;
}

/** Edits the ConfigMap's data; returns its new content hash, as the record names it. */
async function edit(data: Record<string, string | null>): Promise<string> {
  await mergePatch(target, `${PATHS.configmaps(ns)}/${CM}`, { data });
  return contentHash('ConfigMap', await get(`${PATHS.configmaps(ns)}/${CM}`));
}

/** The real adapter configured from a shipped ApiServerSource of knative/, delivering to `sink`. */
async function startAdapter(name: string, sink: FunctionProcess): Promise<ApiServerSourceAdapter> {
  const source = await shippedSource('knative', name);
  const adapter = await startApiServerSourceAdapter({
    binary: process.env.TEST_ASSET_APISERVER_ADAPTER ?? 'apiserver_receive_adapter',
    kubeconfig: sourceKubeconfig,
    namespace: ns,
    name: source.name,
    sink: sink.url,
    mode: source.mode,
    resources: source.resources,
    logFile: path.join(dir, `${name}-${adapters.length}.log`),
  });
  adapters.push(adapter);
  await adapter.waitUntilWatching();
  return adapter;
}

async function startInstance(name: string): Promise<FunctionProcess> {
  const fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: ns,
    logFile: path.join(dir, `${name}.log`),
  });
  functions.push(fn);
  return fn;
}

/** The rollout record once it has ended (for the restart at `restartedAt`, when given). */
async function ended(restartedAt?: string, timeoutMs = 180_000): Promise<RolloutRecord> {
  return eventually(
    'the rollout outcome',
    async () => {
      const rec = await record();
      if (!rec || rec.state === 'progressing') return undefined;
      return restartedAt === undefined || rec.restartedAt === restartedAt ? rec : undefined;
    },
    timeoutMs,
  );
}

let configInstance: FunctionProcess;
let workloadInstance: FunctionProcess;
let workloadAdapter: ApiServerSourceAdapter;

beforeAll(async () => {
  const images = await buildImages(['helloworld'], { log: () => undefined });
  helloworld = images.helloworld;
  await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
  sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, ns, 'config-restarter-source');
  await kubeRequest(
    target,
    'POST',
    PATHS.configmaps(ns),
    optedInConfigMap(CM, labels, { ENV_MESSAGE: 'one' }),
  );
  const podSpec = {
    terminationGracePeriodSeconds: 2,
    containers: [
      {
        name: 'main',
        image: helloworld.ref,
        envFrom: [{ configMapRef: { name: CM } }],
        readinessProbe: { httpGet: { path: '/health/readiness', port: 8080 }, periodSeconds: 1 },
      },
    ],
  };
  const manifest = appsWorkload('Deployment', DEPLOY, {
    labels: { ...labels, [WATCH_LABEL]: 'true' },
    optIn: true,
    podSpec,
  }) as {
    spec: Record<string, unknown>;
  };
  await kubeRequest(target, 'POST', PATHS.deployments(ns), {
    ...manifest,
    // A short deadline, so a rollout whose pods never become Ready is reported failed within the test.
    spec: { ...manifest.spec, replicas: 2, progressDeadlineSeconds: 20 },
  });
  await eventually(
    'the Deployment available',
    async () => ((await deployment()).status?.availableReplicas === 2 ? true : undefined),
    180_000,
  );
  configInstance = await startInstance('instance-a');
  workloadInstance = await startInstance('instance-b');
  await startAdapter('config-restarter-source', configInstance);
  workloadAdapter = await startAdapter('config-restarter-workloads', workloadInstance);
}, 480_000);

afterAll(async () => {
  for (const adapter of adapters) await adapter.stop();
  for (const fn of functions) await fn.stop();
  await deleteNamespace(target, ns);
});

describe('the outcome of every restart, on the node', () => {
  it('a good edit: rolled-out, with a Restarted and a RolledOut Event naming the ConfigMap and its hash', async () => {
    const hash = await edit({ ENV_MESSAGE: 'two' });
    const rec = await ended();
    expect(rec).toMatchObject({ state: 'rolled-out', configs: { [`configmap/${CM}`]: hash } });
    const dep = await deployment();
    expect(dep.spec.template.metadata?.annotations?.[RESTART]).toBe(rec.restartedAt);
    expect(dep.status).toMatchObject({ replicas: 2, updatedReplicas: 2, availableReplicas: 2 });
    const list = await eventually('both Events', async () =>
      (await events()).length >= 2 ? events() : undefined,
    );
    expect(list.map((e) => e.reason)).toEqual(['Restarted', 'RolledOut']);
    for (const event of list) {
      expect(event.involvedObject).toMatchObject({ kind: 'Deployment', name: DEPLOY, uid: dep.metadata.uid });
      expect(event.message).toContain(`ConfigMap/${CM} ${hash}`);
    }
    expect(Date.parse(rec.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(rec.restartedAt));
    expect(await replicaSets()).toBe(2);
  }, 240_000);

  it('an edit that makes helloworld fail its readiness probe: the rollout stalls and is reported failed', async () => {
    // PORT moves the app off the port its readiness probe asks: the new pods never become Ready.
    const hash = await edit({ PORT: '9090' });
    const failed = await eventually(
      'the failed outcome',
      async () => {
        const now = await record();
        return now?.configs[`configmap/${CM}`] === hash && now.state !== 'progressing' ? now : undefined;
      },
      180_000,
    );
    expect(failed.state).toBe('failed');
    expect(failed.message).toContain('ProgressDeadlineExceeded');
    const warning = await eventually('the RolloutFailed Event', async () =>
      (await events()).find((e) => e.reason === 'RolloutFailed'),
    );
    expect(warning.type).toBe('Warning');
    expect(warning.message).toContain(hash);
    // The old pods keep serving: Kubernetes stopped the rollout, the function did not touch it.
    expect((await deployment()).status?.availableReplicas).toBeGreaterThanOrEqual(1);
    expect(await reasons()).toEqual(['Restarted', 'RolledOut', 'Restarted', 'RolloutFailed']);
  }, 300_000);

  it('a fix while the workloads instance is gone and its events lost: a cold instance resumes at its resync, once', async () => {
    // The workloads' instance and its adapter go away: every status change of the next rollout is lost.
    await workloadAdapter.stop();
    await workloadInstance.stop();
    const hash = await edit({ PORT: null, ENV_MESSAGE: 'three' });
    const progressing = await eventually('the restart', async () => {
      const rec = await record();
      return rec?.configs[`configmap/${CM}`] === hash ? rec : undefined;
    });
    expect(progressing.state).toBe('progressing');
    await eventually(
      'the Deployment rolled out',
      async () => {
        const { status } = await deployment();
        return status?.updatedReplicas === 2 && status.availableReplicas === 2 && status.replicas === 2
          ? true
          : undefined;
      },
      180_000,
    );
    expect((await record())?.state).toBe('progressing');
    // A cold instance, started by the PingSource's resync, carries on from what the workload holds.
    const cold = await startInstance('instance-c');
    const res = await fetch(cold.url, { method: 'POST', ...pingSourceRequest({ namespace: ns }) });
    const body = (await res.json()) as { outcomes?: { outcome: string }[]; restarted: number };
    expect(res.status).toBe(200);
    expect(body.restarted).toBe(0);
    expect(body.outcomes?.map((o) => o.outcome)).toEqual(['rolled-out']);
    const rec = await ended(progressing.restartedAt);
    expect(rec.state).toBe('rolled-out');
    // The same resync again, and the config instance's: nothing restarts, no outcome twice.
    const again = await fetch(configInstance.url, {
      method: 'POST',
      ...pingSourceRequest({ namespace: ns }),
    });
    expect(((await again.json()) as { restarted: number; outcomes?: unknown[] }).outcomes).toBeUndefined();
    expect(await reasons()).toEqual([
      'Restarted',
      'RolledOut',
      'Restarted',
      'RolloutFailed',
      'Restarted',
      'RolledOut',
    ]);
    // One ReplicaSet per restart: three edits, three restarts, nothing twice.
    expect(await replicaSets()).toBe(4);
  }, 300_000);
});
