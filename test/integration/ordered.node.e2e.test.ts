/**
 * Ordered, health-gated restarts on the real node, driven by the real ApiServerSource adapter configured from
 * both shipped sources: three Deployments in `restartOrder` groups 1, 2 and 3 of one ConfigMap. A good edit rolls
 * them one group after another (a group's new pods are created only after the lower group's new pods are
 * available); an edit that makes helloworld fail its readiness probe fails group 1 and holds groups 2 and 3;
 * the fix rolls all three with two instances and a cold third one started in the middle: each workload restarts
 * once, none is skipped.
 */
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { pingSourceRequest } from '../../cluster/apiserver-event.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { buildImages, importImages } from '../../cluster/images.js';
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
const ns = uniqueName('ordered');
const CM = 'order-config';
const GROUPS = ['g1', 'g2', 'g3'] as const;
type Name = (typeof GROUPS)[number];
const ROLLOUT = 'rolling.restart.controller/rollout';
const labels = { app: 'order', env: 'test' };
const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);

interface Pod {
  metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string };
  status: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}
interface KubeEvent {
  reason: string;
  involvedObject: { name: string };
  source?: { component?: string };
}

const functions: FunctionProcess[] = [];
const adapters: ApiServerSourceAdapter[] = [];
let sourceKubeconfig: string;

async function get<T>(objectPath: string): Promise<T> {
  return (await kubeRequest<T>(target, 'GET', objectPath)).body;
}
async function record(name: Name): Promise<RolloutRecord | undefined> {
  const { metadata } = await get<{ metadata: { annotations?: Record<string, string> } }>(
    `${PATHS.deployments(ns)}/${name}`,
  );
  return parseRolloutRecord(metadata.annotations?.[ROLLOUT]);
}
async function replicaSets(name: Name): Promise<number> {
  const selector = encodeURIComponent(`workload-name=${name}`);
  return (await get<{ items: unknown[] }>(`${PATHS.replicasets(ns)}?labelSelector=${selector}`)).items.length;
}
async function pods(name: Name): Promise<Pod[]> {
  const selector = encodeURIComponent(`workload-name=${name}`);
  return (await get<{ items: Pod[] }>(`/api/v1/namespaces/${ns}/pods?labelSelector=${selector}`)).items;
}
/**
 * The function's Events per workload, oldest first (their names are `<workload>.<creation time in hex>…`), and
 * apart from `Deferred` (how often a group is deferred depends on how many events reach it while it waits).
 */
async function events(): Promise<Record<Name, string[]>> {
  const { items } = await get<{ items: KubeEvent[] }>(`/api/v1/namespaces/${ns}/events`);
  const mine = items.filter((e) => e.source?.component === 'config-restarter' && e.reason !== 'Deferred');
  return Object.fromEntries(
    GROUPS.map((name) => [name, mine.filter((e) => e.involvedObject.name === name).map((e) => e.reason)]),
  ) as Record<Name, string[]>;
}
/** The Events since `before`, per workload. */
async function eventsSince(before: Record<Name, string[]>): Promise<Record<Name, string[]>> {
  const now = await events();
  return Object.fromEntries(GROUPS.map((name) => [name, now[name].slice(before[name].length)])) as Record<
    Name,
    string[]
  >;
}
const ROLLED = ['Restarted', 'RolledOut'];
async function edit(data: Record<string, string | null>): Promise<string> {
  await mergePatch(target, `${PATHS.configmaps(ns)}/${CM}`, { data });
  return contentHash('ConfigMap', await get(`${PATHS.configmaps(ns)}/${CM}`));
}
/** Every group's record in `state` for the content `hash`. */
async function allIn(hash: string, states: (RolloutRecord['state'] | undefined)[], timeoutMs = 240_000) {
  return eventually(
    `rollout records ${states.join(', ')}`,
    async () => {
      const now = await Promise.all(GROUPS.map(record));
      const ok = now.every((r, i) =>
        states[i] === undefined ? true : r?.state === states[i] && r.configs[`configmap/${CM}`] === hash,
      );
      return ok ? now : undefined;
    },
    timeoutMs,
  );
}

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
const resync = async (fn: FunctionProcess) =>
  (await fetch(fn.url, { method: 'POST', ...pingSourceRequest({ namespace: ns }) })).status;

let configInstance: FunctionProcess;
let workloadInstance: FunctionProcess;
let workloadAdapter: ApiServerSourceAdapter;

beforeAll(async () => {
  const { helloworld } = await buildImages(['helloworld'], { log: () => undefined });
  await importImages({ helloworld }, { containerdAddress: node.containerdAddress, log: () => undefined });
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
  sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, ns, 'config-restarter-source');
  await kubeRequest(
    target,
    'POST',
    PATHS.configmaps(ns),
    optedInConfigMap(CM, labels, { ENV_MESSAGE: 'one' }),
  );
  for (const [i, name] of GROUPS.entries()) {
    const manifest = appsWorkload('Deployment', name, {
      labels: { ...labels, [WATCH_LABEL]: 'true' },
      optIn: true,
      extraMeta: {
        annotations: {
          'rolling.restart.controller/restartOnTrigger': 'true',
          'rolling.restart.controller/restartOrder': String(i + 1),
        },
      },
      podSpec: {
        terminationGracePeriodSeconds: 2,
        containers: [
          {
            name: 'main',
            image: helloworld.ref,
            envFrom: [{ configMapRef: { name: CM } }],
            readinessProbe: { httpGet: { path: '/health/readiness', port: 8080 }, periodSeconds: 1 },
          },
        ],
      },
    }) as { spec: Record<string, unknown> };
    await kubeRequest(target, 'POST', PATHS.deployments(ns), {
      ...manifest,
      spec: { ...manifest.spec, replicas: 1, progressDeadlineSeconds: 20 },
    });
  }
  for (const name of GROUPS) {
    await eventually(
      `${name} available`,
      async () => {
        const { status } = await get<{ status?: { availableReplicas?: number } }>(
          `${PATHS.deployments(ns)}/${name}`,
        );
        return status?.availableReplicas === 1 ? true : undefined;
      },
      180_000,
    );
  }
  configInstance = await startInstance('instance-a');
  workloadInstance = await startInstance('instance-b');
  await startAdapter('config-restarter-source', configInstance);
  workloadAdapter = await startAdapter('config-restarter-workloads', workloadInstance);
  // The first resync records the content on every workload (first contact).
  expect(await resync(configInstance)).toBe(200);
}, 480_000);

afterAll(async () => {
  for (const adapter of adapters) await adapter.stop();
  for (const fn of functions) await fn.stop();
  await deleteNamespace(target, ns);
});

describe('restartOrder groups 1, 2, 3 on the node', () => {
  it("a good edit: each group's new pods are created only after the lower group's new pods are available", async () => {
    const hash = await edit({ ENV_MESSAGE: 'two' });
    await allIn(hash, ['rolled-out', 'rolled-out', 'rolled-out']);
    const newest = async (name: Name): Promise<Pod> => {
      const list = (await pods(name)).filter((p) => !p.metadata.deletionTimestamp);
      expect(list).toHaveLength(1);
      return list[0]!;
    };
    const readyAt = (pod: Pod): number =>
      Date.parse(
        pod.status.conditions?.find((c) => c.type === 'Ready' && c.status === 'True')?.lastTransitionTime ??
          '',
      );
    const created = (pod: Pod): number => Date.parse(pod.metadata.creationTimestamp);
    const [p1, p2, p3] = await Promise.all(GROUPS.map(newest));
    // Kubernetes times have one-second resolution.
    expect(created(p2!)).toBeGreaterThanOrEqual(readyAt(p1!));
    expect(created(p3!)).toBeGreaterThanOrEqual(readyAt(p2!));
    for (const name of GROUPS) expect(await replicaSets(name)).toBe(2);
    expect(await events()).toEqual({ g1: ROLLED, g2: ROLLED, g3: ROLLED });
  }, 300_000);

  it('a failure in group 1 holds groups 2 and 3: no new pods for them, the held records and Events', async () => {
    const before = await events();
    const hash = await edit({ PORT: '9090' });
    await eventually(
      'group 1 failed, groups 2 and 3 held',
      async () => {
        const [r1, r2, r3] = await Promise.all(GROUPS.map(record));
        return r1?.state === 'failed' &&
          r1.configs[`configmap/${CM}`] === hash &&
          r2?.state === 'held' &&
          r3?.state === 'held'
          ? true
          : undefined;
      },
      240_000,
    );
    expect(await replicaSets('g1')).toBe(3);
    expect(await replicaSets('g2')).toBe(2);
    expect(await replicaSets('g3')).toBe(2);
    // A resync later changes nothing and reports nothing again.
    expect(await resync(configInstance)).toBe(200);
    expect(await eventsSince(before)).toEqual({
      g1: ['Restarted', 'RolloutFailed'],
      g2: ['Held'],
      g3: ['Held'],
    });
  }, 300_000);

  it('the fix, with the workloads instance gone in the middle and a cold one resuming: each group restarts once', async () => {
    const before = await events();
    const hash = await edit({ PORT: null, ENV_MESSAGE: 'three' });
    // Group 1 restarts; then its instance for the workloads' events and their adapter go away.
    await eventually('group 1 restarted', async () => {
      const r = await record('g1');
      return r?.state === 'progressing' && r.configs[`configmap/${CM}`] === hash ? true : undefined;
    });
    await workloadAdapter.stop();
    await workloadInstance.stop();
    await eventually(
      'group 1 rolled out (by Kubernetes)',
      async () => {
        const { status } = await get<{
          status?: { updatedReplicas?: number; availableReplicas?: number; replicas?: number };
        }>(`${PATHS.deployments(ns)}/g1`);
        return status?.updatedReplicas === 1 && status.availableReplicas === 1 && status.replicas === 1
          ? true
          : undefined;
      },
      180_000,
    );
    expect((await record('g2'))?.state).toBe('held');
    // A cold instance: the PingSource's resync resumes, then it hears the workloads' events.
    const cold = await startInstance('instance-c');
    expect(await resync(cold)).toBe(200);
    await startAdapter('config-restarter-workloads', cold);
    await allIn(hash, ['rolled-out', 'rolled-out', 'rolled-out']);
    // The config instance's resync too: nothing restarts again.
    expect(await resync(configInstance)).toBe(200);
    for (const name of GROUPS) expect(await replicaSets(name)).toBe(name === 'g1' ? 4 : 3);
    expect(await eventsSince(before)).toEqual({ g1: ROLLED, g2: ROLLED, g3: ROLLED });
  }, 400_000);
});
