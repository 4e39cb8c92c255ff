/**
 * What a restart is for, seen on the real controllers: ConfigMap edit -> the real ApiServerSource adapter -> the
 * built config-restarter (its own ServiceAccount and RBAC) -> kube-controller-manager rolls a new ReplicaSet or
 * ControllerRevision, the Knative Serving controller a new Revision. Every assertion reads what the API server holds.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { shippedSource } from '../../cluster/shipped-source.js';
import { apiServerSourceRequest, type EventObject } from '../../cluster/apiserver-event.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { kubeRequest, writeServiceAccountKubeconfig, type KubeTarget } from '../../cluster/kube.js';
import {
  applyKustomizationIn,
  appsWorkload,
  deleteNamespace,
  eventually,
  knativeService,
  mergePatch,
  optedInConfigMap,
  PATHS,
  readWorkload,
  rolloutsOf,
  settle,
  writeHistory,
  type RolloutObject,
} from '../../cluster/objects.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';

jest.setTimeout(120_000);

const NS = uniqueName('rollouts');
const OPT_IN = 'rolling.restart.controller/restartOnTrigger';
const HASHES = 'rolling.restart.controller/configHashes';
/** The function's field manager (functions/config-restarter/src/kube.ts). */
const FUNCTION_MANAGER = 'config-restarter';

let admin: KubeTarget;
let fn: FunctionProcess;
let dir: string;
let sourceKubeconfig: string;

beforeAll(async () => {
  admin = adminTarget();
  dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), NS);
  // The project's plumbing (Namespace, ServiceAccounts, Roles, RoleBindings, sources) in a namespace of its own.
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', NS);
  const fnKubeconfig = path.join(dir, 'config-restarter.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), fnKubeconfig, NS, 'config-restarter');
  sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, NS, 'config-restarter-source');
  fn = await startFunction({ kubeconfig: fnKubeconfig, logFile: path.join(dir, 'config-restarter.log') });
});

afterAll(async () => {
  const code = await fn?.stop();
  // The namespace controller runs: everything made here goes with the namespace.
  await deleteNamespace(admin, NS);
  expect(code).toBe(0);
});

describe.each(['Reference', 'Resource'] as const)('driven by the real adapter in %s mode', (mode) => {
  const app = `ro-${mode.toLowerCase()}`;
  const cm = `${app}-config`;
  const labels = { app, env: 'test' };
  const deploy = `${app}-deploy`;
  const sts = `${app}-sts`;
  const ds = `${app}-ds`;
  const ksvc = `${app}-ksvc`;
  let adapter: ApiServerSourceAdapter;

  const replicaSets = (): Promise<RolloutObject[]> =>
    rolloutsOf(admin, PATHS.replicasets(NS), `Deployment/${deploy}`);
  const stsRevisions = (): Promise<RolloutObject[]> =>
    rolloutsOf(admin, PATHS.controllerrevisions(NS), `StatefulSet/${sts}`);
  const dsRevisions = (): Promise<RolloutObject[]> =>
    rolloutsOf(admin, PATHS.controllerrevisions(NS), `DaemonSet/${ds}`);
  const revisions = (): Promise<RolloutObject[]> =>
    rolloutsOf(admin, PATHS.revisions(NS), `Configuration/${ksvc}`);
  const counts = async (): Promise<number[]> =>
    Promise.all(
      [replicaSets(), stsRevisions(), dsRevisions(), revisions()].map(async (p) => (await p).length),
    );

  /** Waits until `list` returns `count` objects, then returns them. */
  const rollouts = (what: string, list: () => Promise<RolloutObject[]>, count: number) =>
    eventually(`${count} ${what}`, async () => {
      const items = await list();
      return items.length === count ? items : undefined;
    });

  /** Knative's Deployments behind the Revisions: written by the Serving controller only (and kcm's status). */
  async function expectRevisionDeploymentsUntouched(names: string[]): Promise<void> {
    for (const revision of names) {
      const deployment = `${revision}-deployment`;
      const history = await eventually(`Deployment ${deployment}`, () =>
        writeHistory(admin, `${PATHS.deployments(NS)}/${deployment}`),
      );
      const others = history.managers.filter((m) => m !== 'kube-controller-manager');
      expect({ deployment, generation: history.generation, managers: others }).toEqual({
        deployment,
        generation: 1,
        managers: ['knative-serving-controller'],
      });
    }
  }

  /** Waits for the data change to be rolled out everywhere and checks what each controller made of it. */
  async function expectRollout(n: number): Promise<void> {
    const sets = await rollouts('ReplicaSets', replicaSets, n);
    expect(sets.map((s) => s.revision)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // A new pod template, so a new pod-template-hash: the old ReplicaSet is the previous revision.
    expect(new Set(sets.map((s) => s.podTemplateHash)).size).toBe(n);
    expect((await rollouts('StatefulSet ControllerRevisions', stsRevisions, n)).at(-1)?.revision).toBe(n);
    expect((await rollouts('DaemonSet ControllerRevisions', dsRevisions, n)).at(-1)?.revision).toBe(n);
    const revs = await rollouts('Revisions', revisions, n);
    const names = Array.from({ length: n }, (_, i) => `${ksvc}-${String(i + 1).padStart(5, '0')}`);
    expect(revs.map((r) => r.name)).toEqual(names);
    await expectRevisionDeploymentsUntouched(names);
    // The function did write the workloads it restarted (the positive control of the managedFields check).
    for (const [collection, name] of [
      [PATHS.deployments(NS), deploy],
      [PATHS.ksvcs(NS), ksvc],
    ] as const) {
      expect((await writeHistory(admin, `${collection}/${name}`)).managers).toContain(FUNCTION_MANAGER);
    }
  }

  beforeAll(async () => {
    const create = (collection: string, body: unknown) => kubeRequest(admin, 'POST', collection, body);
    await create(PATHS.deployments(NS), appsWorkload('Deployment', deploy, { labels, optIn: true }));
    await create(PATHS.statefulsets(NS), appsWorkload('StatefulSet', sts, { labels, optIn: true }));
    await create(PATHS.daemonsets(NS), appsWorkload('DaemonSet', ds, { labels, optIn: true }));
    await create(
      PATHS.ksvcs(NS),
      knativeService(ksvc, {
        labels,
        optIn: true,
        // Copied to every Revision's Deployment: those are opted in and tied too, and must never be patched.
        templateMeta: { annotations: { [OPT_IN]: 'true' } },
      }),
    );
    await rollouts('ReplicaSets', replicaSets, 1);
    await rollouts('StatefulSet ControllerRevisions', stsRevisions, 1);
    await rollouts('DaemonSet ControllerRevisions', dsRevisions, 1);
    await rollouts('Revisions', revisions, 1);
    await eventually(`Deployment ${ksvc}-00001-deployment`, () =>
      readWorkload(admin, PATHS.deployments(NS), `${ksvc}-00001-deployment`),
    );

    adapter = await startApiServerSourceAdapter({
      binary: process.env.TEST_ASSET_APISERVER_ADAPTER ?? 'apiserver_receive_adapter',
      kubeconfig: sourceKubeconfig,
      namespace: NS,
      name: 'config-restarter-source',
      sink: fn.url,
      mode,
      // Configured like the ApiServerSource of knative/ (its selector on the watch label).
      resources: (await shippedSource('knative')).resources,
      logFile: path.join(dir, `adapter-${mode}.log`),
    });
    await adapter.waitUntilWatching();
    // Created while watched: the `add` records the content and restarts nothing.
    await create(PATHS.configmaps(NS), optedInConfigMap(cm, labels, { MESSAGE: 'one' }));
    for (const [collection, name] of [
      [PATHS.deployments(NS), deploy],
      [PATHS.statefulsets(NS), sts],
      [PATHS.daemonsets(NS), ds],
      [PATHS.ksvcs(NS), ksvc],
    ] as const) {
      await eventually(`the add to be recorded on ${name}`, async () =>
        (await readWorkload(admin, collection, name)).annotations[HASHES] ? true : undefined,
      );
    }
    await settle(() => fn.eventsHandled());
  });

  afterAll(async () => {
    await adapter?.stop();
  });

  it('the add rolled nothing out', async () => {
    expect(await counts()).toEqual([1, 1, 1, 1]);
  });

  it('a data change rolls a new ReplicaSet, ControllerRevisions and Revision -00002; Knative keeps its Deployments to itself', async () => {
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { MESSAGE: 'two' } });
    await expectRollout(2);
    const [previous, current] = await replicaSets();
    expect(Date.parse(current?.createdAt ?? '')).toBeGreaterThanOrEqual(
      Date.parse(previous?.createdAt ?? ''),
    );
    await settle(() => fn.eventsHandled());
    expect(await counts()).toEqual([2, 2, 2, 2]);
  });

  it('duplicate, metadata-only and forged events create no ReplicaSet and no Revision', async () => {
    const before = await counts();
    const generation = (await readWorkload(admin, PATHS.deployments(NS), deploy)).generation;
    const { body: current } = await kubeRequest<EventObject>(admin, 'GET', `${PATHS.configmaps(NS)}/${cm}`);
    const object: EventObject = { ...current, apiVersion: 'v1', kind: 'ConfigMap' };
    const send = (wire: { headers: Record<string, string>; body: string }) =>
      fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });

    // A redelivery of the change already rolled out, twice with one id, as a retrying sender makes them.
    const duplicate = apiServerSourceRequest({ action: 'update', mode, object, id: `dup-${app}` });
    expect((await send(duplicate)).status).toBe(200);
    expect((await send(duplicate)).status).toBe(200);
    // Labels and annotations only: the content hash stays the same.
    const handled = await fn.eventsHandled();
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, {
      metadata: { labels: { note: 'relabelled' }, annotations: { owner: 'team-a' } },
    });
    await eventually('the metadata-only update to arrive', async () =>
      (await fn.eventsHandled()) > handled ? true : undefined,
    );
    // Claims content the API server does not hold: the function reads the ConfigMap itself.
    const forged = apiServerSourceRequest({
      action: 'update',
      mode,
      object: {
        ...object,
        data: { MESSAGE: 'forged' },
        metadata: { ...object.metadata, resourceVersion: '1' },
      },
    });
    expect((await send(forged)).status).toBe(200);
    await settle(() => fn.eventsHandled());

    expect(await counts()).toEqual(before);
    expect((await readWorkload(admin, PATHS.deployments(NS), deploy)).generation).toBe(generation);
  });

  it('a second data change rolls a third ReplicaSet and Revision -00003', async () => {
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { MESSAGE: 'three' } });
    await expectRollout(3);
  });
});
