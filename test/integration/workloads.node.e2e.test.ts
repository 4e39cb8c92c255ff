/**
 * What a user sees on the node after a ConfigMap edit, with the built function running as its own ServiceAccount
 * (the project's RBAC from knative/): the Deployment's rollout completes, the StatefulSet's and DaemonSet's pods are
 * replaced, the next Job of a CronJob runs with the new template, and a Knative Service gets a new Revision while the
 * pods of its old Revision are never restarted by the function. Duplicate, metadata-only and forged events then
 * leave every pod as it was (same pod UIDs).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { apiServerSourceRequest, type EventObject } from '../../cluster/apiserver-event.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { buildImages, importImages, type BuiltImage } from '../../cluster/images.js';
import { kubeRequest } from '../../cluster/kube.js';
import {
  appsWorkload,
  applyKustomizationIn,
  deleteNamespace,
  eventually,
  knativeService,
  optedInConfigMap,
  PATHS,
} from '../../cluster/objects.js';
import { REPO_ROOT, sleep } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, testNode, uniqueName } from './cluster-env.js';

const target = adminTarget();
const node = testNode();
const ns = uniqueName('users');
const RESTART = 'rolling.restart.controller/restartTimestamp';
const labels = { app: 'shop', env: 'test' };
const CM = 'shop-config';

interface Condition {
  type: string;
  status: string;
}
interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  status: { phase?: string; conditions?: Condition[] };
}
interface Template {
  metadata?: { annotations?: Record<string, string> };
}

let helloworld: BuiltImage;
let fn: FunctionProcess;

const ready = (conditions: Condition[] | undefined): boolean =>
  conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function get<T>(objectPath: string): Promise<T> {
  return (await kubeRequest<T>(target, 'GET', objectPath)).body;
}

async function pods(selector: string): Promise<Pod[]> {
  const { items } = await get<{ items: Pod[] }>(
    `/api/v1/namespaces/${ns}/pods?labelSelector=${encodeURIComponent(selector)}`,
  );
  return items;
}

/** `count` pods Running and Ready, none terminating and none in `old`: the workload's pods were (re)placed. */
async function freshPods(selector: string, count: number, old: Pod[] = []): Promise<Pod[] | undefined> {
  const all = await pods(selector);
  const fresh = all.filter(
    (p) =>
      p.status.phase === 'Running' &&
      ready(p.status.conditions) &&
      !p.metadata.deletionTimestamp &&
      !old.some((o) => o.metadata.uid === p.metadata.uid),
  );
  return all.length === count && fresh.length === count ? fresh : undefined;
}

const uids = (list: Pod[]): string[] => list.map((p) => p.metadata.uid).sort();

/** A pod spec running helloworld, Ready once it answers. */
function helloworldPod(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    terminationGracePeriodSeconds: 2,
    containers: [
      {
        name: 'main',
        image: helloworld.ref,
        env: [{ name: 'ENV_MESSAGE', value: 'hello' }],
        readinessProbe: { httpGet: { path: '/health/readiness', port: 8080 }, periodSeconds: 1 },
      },
    ],
    ...extra,
  };
}

/** Sends an ApiServerSource update event about `object` to the function; returns status and parsed body. */
async function send(
  object: EventObject,
  id?: string,
): Promise<{ status: number; body: { restarted?: number; result?: string } }> {
  const wire = apiServerSourceRequest({ action: 'update', mode: 'Reference', object, id });
  const res = await fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });
  return { status: res.status, body: (await res.json()) as { restarted?: number; result?: string } };
}

const SELECTORS = {
  deployment: 'workload-name=shop-deploy',
  statefulset: 'workload-name=shop-sts',
  daemonset: 'workload-name=shop-ds',
  revision1: 'serving.knative.dev/revision=shop-ksvc-00001',
} as const;
const COUNTS = { deployment: 2, statefulset: 2, daemonset: 1, revision1: 1 } as const;
type Group = keyof typeof SELECTORS;

async function allPods(): Promise<Record<Group, Pod[]>> {
  const entries = await Promise.all(
    (Object.keys(SELECTORS) as Group[]).map(async (g) => [g, await pods(SELECTORS[g])] as const),
  );
  return Object.fromEntries(entries) as Record<Group, Pod[]>;
}

let before: Record<Group, Pod[]>;
let configMap: EventObject;

beforeAll(async () => {
  const images = await buildImages(['helloworld'], { log: () => undefined });
  helloworld = images.helloworld;
  await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
  // The project's plumbing (ServiceAccounts, Roles, sources) in a namespace of this test.
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
  const create = (collection: string, body: unknown): Promise<unknown> =>
    kubeRequest(target, 'POST', collection, body);
  configMap = (
    await kubeRequest<EventObject>(
      target,
      'POST',
      PATHS.configmaps(ns),
      optedInConfigMap(CM, labels, { MESSAGE: 'one' }),
    )
  ).body;
  const podSpec = helloworldPod();
  const deploy = appsWorkload('Deployment', 'shop-deploy', { labels, optIn: true, podSpec }) as {
    spec: Record<string, unknown>;
  };
  await create(PATHS.deployments(ns), { ...deploy, spec: { ...deploy.spec, replicas: 2 } });
  const sts = appsWorkload('StatefulSet', 'shop-sts', { labels, optIn: true, podSpec }) as {
    spec: Record<string, unknown>;
  };
  await create(PATHS.statefulsets(ns), {
    ...sts,
    spec: { ...sts.spec, replicas: 2, podManagementPolicy: 'Parallel' },
  });
  await create(PATHS.daemonsets(ns), appsWorkload('DaemonSet', 'shop-ds', { labels, optIn: true, podSpec }));
  await create(PATHS.cronjobs(ns), {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: {
      name: 'shop-report',
      labels,
      annotations: { 'rolling.restart.controller/restartOnTrigger': 'true' },
    },
    spec: {
      // Never due during the test: its next Job is made by hand, as `kubectl create job --from=cronjob/...` does.
      schedule: '0 0 1 1 *',
      jobTemplate: {
        spec: {
          backoffLimit: 0,
          template: {
            spec: helloworldPod({
              restartPolicy: 'Never',
              containers: [
                { name: 'main', image: helloworld.ref, command: ['node', '-e', 'process.exit(0)'] },
              ],
            }),
          },
        },
      },
    },
  });
  await create(
    PATHS.ksvcs(ns),
    knativeService('shop-ksvc', {
      labels,
      optIn: true,
      podSpec: { containers: [{ image: helloworld.ref, env: [{ name: 'ENV_MESSAGE', value: 'hello' }] }] },
      templateMeta: { annotations: { 'autoscaling.knative.dev/min-scale': '1' } },
    }),
  );
  for (const group of Object.keys(SELECTORS) as Group[]) {
    await eventually(`${group} pods Ready`, () => freshPods(SELECTORS[group], COUNTS[group]), 180_000);
  }
  before = await allPods();

  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: ns,
    logFile: path.join(dir, 'config-restarter.log'),
  });
}, 480_000);

afterAll(async () => {
  await fn?.stop();
  await deleteNamespace(target, ns);
});

describe('on the node, after a ConfigMap edit', () => {
  let after: Record<Group, Pod[]>;

  beforeAll(async () => {
    configMap = (
      await kubeRequest<EventObject>(
        target,
        'PATCH',
        `${PATHS.configmaps(ns)}/${CM}`,
        { data: { MESSAGE: 'two' } },
        { contentType: 'application/merge-patch+json' },
      )
    ).body;
    const reply = await send(configMap);
    expect(reply.status).toBe(200);
    // Deployment, StatefulSet, DaemonSet, CronJob and the Knative Service; never the Revision's Deployment.
    expect(reply.body.restarted).toBe(5);
    after = {
      deployment: await eventually(
        'the Deployment rollout',
        () => freshPods(SELECTORS.deployment, 2, before.deployment),
        180_000,
      ),
      statefulset: await eventually(
        'the StatefulSet pods replaced',
        () => freshPods(SELECTORS.statefulset, 2, before.statefulset),
        180_000,
      ),
      daemonset: await eventually(
        'the DaemonSet pod replaced',
        () => freshPods(SELECTORS.daemonset, 1, before.daemonset),
        180_000,
      ),
      revision1: await pods(SELECTORS.revision1),
    };
  }, 600_000);

  it('completes the Deployment rollout: every replica updated and available, the old ReplicaSet at zero', async () => {
    const status = await eventually('the Deployment status', async () => {
      const { status } = await get<{
        status: { replicas?: number; updatedReplicas?: number; availableReplicas?: number };
      }>(`${PATHS.deployments(ns)}/shop-deploy`);
      return status.replicas === 2 && status.updatedReplicas === 2 && status.availableReplicas === 2
        ? status
        : undefined;
    });
    expect(status).toMatchObject({ updatedReplicas: 2, availableReplicas: 2 });
    const { items } = await get<{ items: { spec: { replicas?: number } }[] }>(
      `${PATHS.replicasets(ns)}?labelSelector=${encodeURIComponent(SELECTORS.deployment)}`,
    );
    expect(items.map((rs) => rs.spec.replicas).sort()).toEqual([0, 2]);
  });

  it('replaces the StatefulSet and DaemonSet pods with new, Running and Ready ones', () => {
    expect(after.statefulset).toHaveLength(2);
    expect(after.daemonset).toHaveLength(1);
    for (const group of ['statefulset', 'daemonset'] as const) {
      for (const pod of after[group]) expect(uids(before[group])).not.toContain(pod.metadata.uid);
    }
  });

  it("runs the CronJob's next Job with the new template", async () => {
    const { spec } = await get<{ spec: { jobTemplate: { spec: { template: Template } } } }>(
      `${PATHS.cronjobs(ns)}/shop-report`,
    );
    const stamp = spec.jobTemplate.spec.template.metadata?.annotations?.[RESTART];
    expect(stamp).toBeDefined();
    await promisify(execFile)('kubectl', [
      '--kubeconfig',
      adminKubeconfigPath(),
      '-n',
      ns,
      'create',
      'job',
      'shop-report-next',
      '--from=cronjob/shop-report',
    ]);
    const job = await get<{ spec: { template: Template } }>(
      `/apis/batch/v1/namespaces/${ns}/jobs/shop-report-next`,
    );
    expect(job.spec.template.metadata?.annotations?.[RESTART]).toBe(stamp);
    const done = await eventually(
      'the Job pod Succeeded',
      async () => (await pods('job-name=shop-report-next')).find((p) => p.status.phase === 'Succeeded'),
      120_000,
    );
    expect(done.status.phase).toBe('Succeeded');
  }, 180_000);

  it("gives the Knative Service a new Revision and never restarts the old Revision's pods itself", async () => {
    const revision2 = await eventually(
      'Revision shop-ksvc-00002 Ready',
      async () => {
        const { body } = await kubeRequest<{ status?: { conditions?: Condition[] } }>(
          target,
          'GET',
          `${PATHS.revisions(ns)}/shop-ksvc-00002`,
          undefined,
          { allowStatus: [404] },
        );
        return ready(body.status?.conditions) ? body : undefined;
      },
      180_000,
    );
    expect(revision2).toBeDefined();
    // The Revision's Deployment keeps its template (no restart annotation) and its single ReplicaSet.
    const revisionDeployment = await get<{ spec: { template: Template } }>(
      `${PATHS.deployments(ns)}/shop-ksvc-00001-deployment`,
    );
    expect(revisionDeployment.spec.template.metadata?.annotations?.[RESTART]).toBeUndefined();
    const { items } = await get<{ items: unknown[] }>(
      `${PATHS.replicasets(ns)}?labelSelector=${encodeURIComponent(SELECTORS.revision1)}`,
    );
    expect(items).toHaveLength(1);
    // Any pod of -00001 still there is one of the pods it had before.
    for (const pod of await pods(SELECTORS.revision1)) {
      expect(uids(before.revision1)).toContain(pod.metadata.uid);
    }
  }, 240_000);

  describe('events that must change nothing', () => {
    /** Sends, waits past any reaction, and expects every pod of every workload unchanged. */
    async function expectUntouched(event: () => Promise<{ status: number }>): Promise<void> {
      const settled = await allPodsSettled();
      const reply = await event();
      expect(reply.status).toBeLessThan(500);
      await sleep(5_000);
      const now = await allPods();
      for (const group of ['deployment', 'statefulset', 'daemonset'] as const) {
        expect({ group, uids: uids(now[group]) }).toEqual({ group, uids: uids(settled[group]) });
      }
    }

    /** The pods once the rollouts above have finished (no pod terminating). */
    async function allPodsSettled(): Promise<Record<Group, Pod[]>> {
      await eventually(
        'no pod terminating',
        async () => ((await pods('')).some((p) => p.metadata.deletionTimestamp) ? undefined : true),
        120_000,
      );
      return allPods();
    }

    it('a duplicate (the same event again)', async () => {
      const wire = apiServerSourceRequest({ action: 'update', mode: 'Reference', object: configMap });
      const again = () => fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });
      await (await again()).text();
      await expectUntouched(async () => {
        const res = await again();
        await res.text();
        return res;
      });
    }, 180_000);

    it('a metadata-only edit', async () => {
      await expectUntouched(async () => {
        const { body } = await kubeRequest<EventObject>(
          target,
          'PATCH',
          `${PATHS.configmaps(ns)}/${CM}`,
          { metadata: { annotations: { 'example.com/owner': 'team-a' } } },
          { contentType: 'application/merge-patch+json' },
        );
        const reply = await send(body);
        expect(reply.body.restarted ?? 0).toBe(0);
        return reply;
      });
    }, 180_000);

    it('a forged event naming a ConfigMap that does not exist', async () => {
      await expectUntouched(async () => {
        const reply = await send({
          ...configMap,
          metadata: { ...configMap.metadata, name: 'shop-config-forged' },
        });
        expect(reply.body.restarted ?? 0).toBe(0);
        return reply;
      });
    }, 180_000);
  });
});
