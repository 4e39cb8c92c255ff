/**
 * On a real kube-apiserver, the built config-restarter (its own ServiceAccount, bound by the project's
 * manifests plus the argo-rollouts component) with CronJobs and Argo Rollouts, per-key ties, the minimum
 * restart interval and restarts on delete. Events are sent in the ApiServerSource wire format; every
 * assertion reads what the API server holds afterwards.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { kubeRequest, writeServiceAccountKubeconfig, type KubeTarget } from '../../cluster/kube.js';
import { REPO_ROOT, sleep } from '../../cluster/util.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import { parseHashRecord } from '../../functions/config-restarter/src/records.js';
import {
  apiServerSourceRequest,
  pingSourceRequest,
  type ApiServerAction,
} from '../../cluster/apiserver-event.js';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import {
  applyKustomization,
  appsWorkload,
  eventually,
  mergePatch,
  optedInConfigMap,
  PATHS,
} from '../../cluster/objects.js';

jest.setTimeout(180_000);

const NS = 'helloworld';
const PREFIX = 'rolling.restart.controller';
const RESTART = `${PREFIX}/restartTimestamp`;
const HASHES = `${PREFIX}/configHashes`;
const PENDING = `${PREFIX}/pendingRestart`;
const OPT_IN = { [`${PREFIX}/restartOnTrigger`]: 'true' };

let admin: KubeTarget;
let fn: FunctionProcess;
let dir: string;
let fnKubeconfig: string;

interface Reply {
  status: number;
  body: {
    result?: string;
    reason?: string;
    decisions?: { workload: { kind: string; name: string }; action: string; reason: string }[];
  };
}

async function post(target: FunctionProcess, wire: { headers: Record<string, string>; body: string }) {
  const res = await fetch(target.url, { method: 'POST', headers: wire.headers, body: wire.body });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as Reply['body'] };
}

/** Sends the event the ApiServerSource sends for a ConfigMap (Reference mode). */
const configEvent = (name: string, action: ApiServerAction, target = fn): Promise<Reply> =>
  post(
    target,
    apiServerSourceRequest({
      action,
      mode: 'Reference',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NS } },
    }),
  );

const actions = (reply: Reply): Record<string, string> =>
  Object.fromEntries((reply.body.decisions ?? []).map((d) => [d.workload.name, d.action]));

interface Stored {
  metadata: { generation: number; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
}

/**
 * A workload as far as the function could have written it: metadata (labels, annotations, generation) and spec.
 * Left out is what kube-controller-manager writes on its own at any time: status, the Deployment revision
 * annotation, and so resourceVersion and managedFields.
 */
async function read(collection: string, name: string): Promise<Stored> {
  const { body } = await kubeRequest<
    Stored & { status?: unknown; metadata: { resourceVersion?: string; managedFields?: unknown } }
  >(admin, 'GET', `${collection}/${name}`);
  const { status: _status, ...object } = body;
  const { resourceVersion: _rv, managedFields: _mf, ...metadata } = object.metadata;
  const { 'deployment.kubernetes.io/revision': _revision, ...annotations } = metadata.annotations ?? {};
  return { ...object, metadata: { ...metadata, annotations } };
}

function at(object: unknown, keys: string[]): unknown {
  return keys.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], object);
}

async function configMapHash(name: string): Promise<string> {
  const { body } = await kubeRequest<{ data?: Record<string, string> }>(
    admin,
    'GET',
    `${PATHS.configmaps(NS)}/${name}`,
  );
  return contentHash('ConfigMap', body);
}

const create = (collection: string, body: unknown) => kubeRequest(admin, 'POST', collection, body);

/** Workloads in the function's warm index (from its readiness answer). */
async function indexed(): Promise<number> {
  const res = await fetch(`${fn.url}/health/readiness`);
  return ((await res.json()) as { index?: { workloads?: number } }).index?.workloads ?? 0;
}

/**
 * Creates workloads and waits until the function's watch-fed index holds them, as it would long before a
 * human edits a ConfigMap (an event racing a workload's creation is what the resync is for).
 */
async function createWorkloads(items: [collection: string, body: unknown][]): Promise<void> {
  const before = await indexed();
  for (const [collection, body] of items) await create(collection, body);
  await eventually(`${items.length} new workload(s) in the index`, async () =>
    (await indexed()) >= before + items.length ? true : undefined,
  );
}

beforeAll(async () => {
  admin = adminTarget();
  dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), 'beyond');
  // The base plumbing and RBAC plus the Argo Rollouts component.
  await applyKustomization(adminKubeconfigPath(), 'knative/argo-rollouts');
  fnKubeconfig = path.join(dir, 'config-restarter.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), fnKubeconfig, NS, 'config-restarter');
  fn = await startFunction({
    kubeconfig: fnKubeconfig,
    logFile: path.join(dir, 'config-restarter.log'),
    env: { RESTART_ON_DELETE: 'true' },
  });
});

afterAll(async () => {
  expect(await fn?.stop()).toBe(0);
});

describe('CronJobs and Argo Rollouts', () => {
  const labels = { app: 'it-kinds', env: 'test' };
  const cm = 'it-kinds-config';
  const podSpec = { containers: [{ name: 'main', image: 'registry.example/app:1' }] };

  beforeAll(async () => {
    await create(PATHS.configmaps(NS), optedInConfigMap(cm, labels, { MESSAGE: 'one' }));
    await createWorkloads([
      [
        PATHS.cronjobs(NS),
        {
          apiVersion: 'batch/v1',
          kind: 'CronJob',
          metadata: { name: 'it-kinds-cron', labels, annotations: OPT_IN },
          spec: {
            schedule: '*/5 * * * *',
            jobTemplate: { spec: { template: { spec: { ...podSpec, restartPolicy: 'OnFailure' } } } },
          },
        },
      ],
      [
        PATHS.rollouts(NS),
        {
          apiVersion: 'argoproj.io/v1alpha1',
          kind: 'Rollout',
          metadata: { name: 'it-kinds-rollout', labels, annotations: OPT_IN },
          spec: {
            selector: { matchLabels: { rollout: 'it-kinds-rollout' } },
            template: { metadata: { labels: { rollout: 'it-kinds-rollout' } }, spec: podSpec },
            strategy: { canary: { steps: [{ setWeight: 20 }, { pause: {} }] } },
          },
        },
      ],
      // A Rollout that takes its pod template from a Deployment (which is neither opted in nor labelled).
      [
        PATHS.deployments(NS),
        appsWorkload('Deployment', 'it-kinds-web', { labels: { app: 'it-kinds-web' }, optIn: false }),
      ],
      [
        PATHS.rollouts(NS),
        {
          apiVersion: 'argoproj.io/v1alpha1',
          kind: 'Rollout',
          metadata: { name: 'it-kinds-ref', labels, annotations: OPT_IN },
          spec: {
            workloadRef: {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              name: 'it-kinds-web',
              scaleDown: 'onsuccess',
            },
            strategy: { canary: { steps: [{ setWeight: 50 }] } },
          },
        },
      ],
    ]);
    const added = await configEvent(cm, 'add');
    expect(added.status).toBe(200);
    expect(actions(added)).toEqual({
      'it-kinds-cron': 'record',
      'it-kinds-rollout': 'record',
      'it-kinds-ref': 'record',
    });
  });

  it('a change restarts the CronJob through its job template and both Rollouts, each its own way', async () => {
    const before = {
      cron: await read(PATHS.cronjobs(NS), 'it-kinds-cron'),
      rollout: await read(PATHS.rollouts(NS), 'it-kinds-rollout'),
      ref: await read(PATHS.rollouts(NS), 'it-kinds-ref'),
      web: await read(PATHS.deployments(NS), 'it-kinds-web'),
    };
    const changedAt = Date.now();
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { MESSAGE: 'two' } });
    const reply = await configEvent(cm, 'update');
    expect(reply.status).toBe(200);
    expect(actions(reply)).toEqual({
      'it-kinds-cron': 'restart',
      'it-kinds-rollout': 'restart',
      'it-kinds-ref': 'restart',
    });
    const reasons = Object.fromEntries(reply.body.decisions!.map((d) => [d.workload.name, d.reason]));
    expect(reasons['it-kinds-cron']).toContain('running Jobs are left alone');
    expect(reasons['it-kinds-ref']).toContain('spec.restartAt');
    const hash = await configMapHash(cm);

    const cron = await read(PATHS.cronjobs(NS), 'it-kinds-cron');
    const restartedAt = at(cron, [
      'spec',
      'jobTemplate',
      'spec',
      'template',
      'metadata',
      'annotations',
      RESTART,
    ]);
    expect(Date.parse(restartedAt as string)).toBeGreaterThanOrEqual(changedAt - 1000);
    expect(cron.metadata.generation).toBe(before.cron.metadata.generation + 1);
    expect(parseHashRecord(cron.metadata.annotations?.[HASHES])[`configmap/${cm}`]).toBe(hash);

    const rollout = await read(PATHS.rollouts(NS), 'it-kinds-rollout');
    expect(at(rollout, ['spec', 'template', 'metadata', 'annotations', RESTART])).toBeDefined();
    expect(at(rollout, ['spec', 'restartAt'])).toBeUndefined();
    expect(rollout.metadata.generation).toBe(before.rollout.metadata.generation + 1);

    const ref = await read(PATHS.rollouts(NS), 'it-kinds-ref');
    expect(at(ref, ['spec', 'restartAt'])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Date.parse(at(ref, ['spec', 'restartAt']) as string)).toBeGreaterThanOrEqual(changedAt - 1000);
    expect(at(ref, ['spec', 'template'])).toBeUndefined();
    expect(ref.metadata.generation).toBe(before.ref.metadata.generation + 1);
    // The Deployment behind the workloadRef is Argo's to roll: untouched.
    expect(await read(PATHS.deployments(NS), 'it-kinds-web')).toEqual(before.web);

    const duplicate = await configEvent(cm, 'update');
    expect(Object.values(actions(duplicate))).toEqual(['skip', 'skip', 'skip']);
    expect((await read(PATHS.cronjobs(NS), 'it-kinds-cron')).metadata.generation).toBe(
      cron.metadata.generation,
    );
  });
});

describe('per-key ties', () => {
  const cm = 'it-keys-config';
  const unrelated = { app: 'it-keys-unrelated' };
  const workloads: [name: string, podSpec: Record<string, unknown>, uses: 'A' | 'all'][] = [
    [
      'it-keys-env',
      {
        containers: [
          {
            name: 'main',
            image: 'registry.example/app:1',
            env: [{ name: 'A', valueFrom: { configMapKeyRef: { name: cm, key: 'A' } } }],
          },
        ],
      },
      'A',
    ],
    [
      'it-keys-items',
      { volumes: [{ name: 'c', configMap: { name: cm, items: [{ key: 'A', path: 'a' }] } }] },
      'A',
    ],
    [
      'it-keys-envfrom',
      {
        containers: [
          { name: 'main', image: 'registry.example/app:1', envFrom: [{ configMapRef: { name: cm } }] },
        ],
      },
      'all',
    ],
    ['it-keys-volume', { volumes: [{ name: 'c', configMap: { name: cm } }] }, 'all'],
  ];
  const generations = async (): Promise<Record<string, number>> =>
    Object.fromEntries(
      await Promise.all(
        workloads.map(async ([name]): Promise<[string, number]> => [
          name,
          (await read(PATHS.statefulsets(NS), name)).metadata.generation,
        ]),
      ),
    );

  beforeAll(async () => {
    await create(PATHS.configmaps(NS), optedInConfigMap(cm, { app: 'it-keys' }, { A: '1', B: '1' }));
    await createWorkloads(
      workloads.map(([name, podSpec]) => [
        PATHS.statefulsets(NS),
        appsWorkload('StatefulSet', name, { labels: unrelated, optIn: true, podSpec }),
      ]),
    );
    expect(Object.values(actions(await configEvent(cm, 'add')))).toEqual([
      'record',
      'record',
      'record',
      'record',
    ]);
  });

  it('editing key B leaves the workloads that use only key A alone; the others roll', async () => {
    const before = await generations();
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { B: '2' } });
    const reply = await configEvent(cm, 'update');
    expect(actions(reply)).toEqual({
      'it-keys-env': 'skip',
      'it-keys-items': 'skip',
      'it-keys-envfrom': 'restart',
      'it-keys-volume': 'restart',
    });
    const after = await generations();
    for (const [name, , uses] of workloads)
      expect(after[name]).toBe(before[name]! + (uses === 'all' ? 1 : 0));
    const record = parseHashRecord(
      (await read(PATHS.statefulsets(NS), 'it-keys-env')).metadata.annotations?.[HASHES],
    );
    expect(Object.keys(record)).toEqual([`configmap/${cm}#A`]);
  });

  it('editing key A rolls every one of them', async () => {
    const before = await generations();
    await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { A: '2' } });
    const reply = await configEvent(cm, 'update');
    expect(Object.values(actions(reply))).toEqual(['restart', 'restart', 'restart', 'restart']);
    const after = await generations();
    for (const [name] of workloads) expect(after[name]).toBe(before[name]! + 1);
  });
});

describe('minimum restart interval', () => {
  const cm = 'it-storm-config';
  const name = 'it-storm-sts';

  it('5 edits in 10 s with a 30 s interval: 1 restart now, 1 after the interval, the final content recorded', async () => {
    const labels = { app: 'it-storm', env: 'test' };
    await create(PATHS.configmaps(NS), optedInConfigMap(cm, labels, { MESSAGE: 'v0' }));
    await createWorkloads([
      [
        PATHS.statefulsets(NS),
        appsWorkload('StatefulSet', name, {
          labels,
          optIn: true,
          extraMeta: { annotations: { ...OPT_IN, [`${PREFIX}/minRestartInterval`]: '30s' } },
        }),
      ],
    ]);
    expect(actions(await configEvent(cm, 'add'))).toEqual({ [name]: 'record' });
    const base = (await read(PATHS.statefulsets(NS), name)).metadata.generation;

    const seen: string[] = [];
    const burstStart = Date.now();
    for (let i = 1; i <= 5; i++) {
      await mergePatch(admin, `${PATHS.configmaps(NS)}/${cm}`, { data: { MESSAGE: `v${i}` } });
      seen.push(actions(await configEvent(cm, 'update'))[name]!);
      if (i < 5) await sleep(2000);
    }
    expect(Date.now() - burstStart).toBeLessThan(12_000);
    expect(seen[0]).toBe('restart');
    expect(seen.slice(1).every((action) => action === 'defer' || action === 'skip')).toBe(true);
    const during = await read(PATHS.statefulsets(NS), name);
    expect(during.metadata.generation).toBe(base + 1);
    const pending = JSON.parse(during.metadata.annotations![PENDING]!) as { records: string[]; due: string };
    expect(pending.records).toEqual([`configmap/${cm}`]);
    const restartedAt = Date.parse(
      at(during, ['spec', 'template', 'metadata', 'annotations', RESTART]) as string,
    );
    expect(Date.parse(pending.due)).toBe(restartedAt + 30_000);

    // A resync inside the interval restarts nothing.
    expect(actions(await post(fn, pingSourceRequest()))[name]).toBe('skip');
    expect((await read(PATHS.statefulsets(NS), name)).metadata.generation).toBe(base + 1);

    await sleep(Math.max(0, Date.parse(pending.due) - Date.now() + 500));
    const resync = await post(fn, pingSourceRequest());
    expect(resync.status).toBe(200);
    expect(actions(resync)[name]).toBe('restart');
    const after = await read(PATHS.statefulsets(NS), name);
    expect(after.metadata.generation).toBe(base + 2);
    expect(after.metadata.annotations?.[PENDING]).toBeUndefined();
    expect(parseHashRecord(after.metadata.annotations?.[HASHES])[`configmap/${cm}`]).toBe(
      await configMapHash(cm),
    );

    // Nothing more is owed.
    await post(fn, pingSourceRequest());
    expect((await read(PATHS.statefulsets(NS), name)).metadata.generation).toBe(base + 2);
  });
});

describe('restart on delete', () => {
  const cm = 'it-delete-config';
  const kept = 'it-delete-kept';
  const volume = (name: string) => ({ volumes: [{ name: 'c', configMap: { name, optional: true } }] });

  beforeAll(async () => {
    const labels = { app: 'it-delete', env: 'test' };
    await create(PATHS.configmaps(NS), optedInConfigMap(cm, labels, { A: '1' }));
    await create(PATHS.configmaps(NS), optedInConfigMap(kept, labels, { A: '1' }));
    await createWorkloads([
      [
        PATHS.statefulsets(NS),
        appsWorkload('StatefulSet', 'it-delete-ref', {
          labels: { app: 'x' },
          optIn: true,
          podSpec: volume(cm),
        }),
      ],
      [PATHS.statefulsets(NS), appsWorkload('StatefulSet', 'it-delete-labels', { labels, optIn: true })],
      [
        PATHS.statefulsets(NS),
        appsWorkload('StatefulSet', 'it-delete-kept-ref', {
          labels: { app: 'x' },
          optIn: true,
          podSpec: volume(kept),
        }),
      ],
    ]);
    expect(actions(await configEvent(cm, 'add'))).toEqual({
      'it-delete-labels': 'record',
      'it-delete-ref': 'record',
    });
    expect(actions(await configEvent(kept, 'add'))).toEqual({
      'it-delete-labels': 'record',
      'it-delete-kept-ref': 'record',
    });
  });

  it('a forged delete of a ConfigMap that still exists restarts nothing', async () => {
    const before = await read(PATHS.statefulsets(NS), 'it-delete-kept-ref');
    const reply = await configEvent(kept, 'delete');
    expect(reply.status).toBe(202);
    expect(reply.body).toMatchObject({
      result: 'ignored',
      reason: expect.stringContaining('still exists') as string,
    });
    expect(await read(PATHS.statefulsets(NS), 'it-delete-kept-ref')).toEqual(before);
  });

  it('a deleted ConfigMap restarts the workloads that reference it, once, also when the event comes twice', async () => {
    const before = {
      ref: await read(PATHS.statefulsets(NS), 'it-delete-ref'),
      labels: await read(PATHS.statefulsets(NS), 'it-delete-labels'),
    };
    await kubeRequest(admin, 'DELETE', `${PATHS.configmaps(NS)}/${cm}`);
    const first = await configEvent(cm, 'delete');
    expect(first.status).toBe(200);
    expect(actions(first)).toEqual({ 'it-delete-ref': 'restart' });
    expect(first.body.decisions![0]!.reason).toContain('RESTART_ON_DELETE');
    const second = await configEvent(cm, 'delete');
    expect(actions(second)).toEqual({ 'it-delete-ref': 'skip' });

    const ref = await read(PATHS.statefulsets(NS), 'it-delete-ref');
    expect(ref.metadata.generation).toBe(before.ref.metadata.generation + 1);
    expect(parseHashRecord(ref.metadata.annotations?.[HASHES])[`configmap/${cm}`]).toBe('deleted');
    // Tied only by labels, which went with the object.
    expect(await read(PATHS.statefulsets(NS), 'it-delete-labels')).toEqual(before.labels);
  });

  it('without RESTART_ON_DELETE a delete restarts nothing; the same delete with it restarts', async () => {
    const gone = 'it-delete-default';
    await create(PATHS.configmaps(NS), optedInConfigMap(gone, { app: 'it-delete-default' }, { A: '1' }));
    await createWorkloads([
      [
        PATHS.statefulsets(NS),
        appsWorkload('StatefulSet', 'it-delete-default-ref', {
          labels: { app: 'x' },
          optIn: true,
          podSpec: volume(gone),
        }),
      ],
    ]);
    expect(actions(await configEvent(gone, 'add'))).toEqual({ 'it-delete-default-ref': 'record' });
    await kubeRequest(admin, 'DELETE', `${PATHS.configmaps(NS)}/${gone}`);
    const before = await read(PATHS.statefulsets(NS), 'it-delete-default-ref');
    const other = await startFunction({
      kubeconfig: fnKubeconfig,
      logFile: path.join(dir, 'config-restarter-default.log'),
    });
    try {
      const reply = await configEvent(gone, 'delete', other);
      expect(reply.status).toBe(202);
      expect(reply.body.reason).toContain('RESTART_ON_DELETE is off');
      expect(await read(PATHS.statefulsets(NS), 'it-delete-default-ref')).toEqual(before);
    } finally {
      expect(await other.stop()).toBe(0);
    }
    expect(actions(await configEvent(gone, 'delete'))).toEqual({ 'it-delete-default-ref': 'restart' });
    expect((await read(PATHS.statefulsets(NS), 'it-delete-default-ref')).metadata.generation).toBe(
      before.metadata.generation + 1,
    );
  });
});
