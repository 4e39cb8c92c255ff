/**
 * Safe at any scale, on a real kube-apiserver: three instances of the built function (each with its own warm
 * index, all with the token of the function's ServiceAccount, bound by the project's own Role) share a burst of
 * 1,000 events about 5 ConfigMaps edited 3 times each, delivered out of order and many times over. Afterwards
 * every record points at the final content (nothing lost, nothing stale: a last resync restarts nothing) and no
 * workload restarted more often than its ConfigMaps were edited.
 */
import { jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { parseHashRecord } from '../../functions/config-restarter/src/records.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import { createKubeClient, type WatchHandle } from '../../functions/config-restarter/src/kube.js';
import { loadApiAccess } from '../../functions/config-restarter/src/kube-credentials.js';
import { WORKLOAD_KINDS } from '../../functions/config-restarter/src/workload-kinds.js';
import { apiServerSourceRequest, pingSourceRequest } from '../../cluster/apiserver-event.js';
import { kubeRequest, writeServiceAccountKubeconfig, type KubeTarget } from '../../cluster/kube.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { applyKustomization, appsWorkload, optedInConfigMap, PATHS } from '../../cluster/objects.js';

jest.setTimeout(240_000);

const NS = 'it-scale';
const CONFIGS = 5;
const EDITS = 3;
const EVENTS = 1000;
const INSTANCES = 3;
const RESTART = 'rolling.restart.controller/restartTimestamp';
const HASHES = 'rolling.restart.controller/configHashes';

let admin: KubeTarget;
let dir: string;
const instances: FunctionProcess[] = [];
let watches: WatchHandle[] = [];
/** Restarts seen per workload (`Kind/name`): each change of the template's restart timestamp. */
const restarts = new Map<string, number>();
const lastTimestamp = new Map<string, string>();
/** The ConfigMaps each tied workload depends on. */
const ties = new Map<string, string[]>();

const cmName = (i: number): string => `cm-${i}`;
const content = (i: number, round: number): Record<string, string> => ({ MESSAGE: `cm-${i} round ${round}` });

async function post(url: string, wire: { headers: Record<string, string>; body: string }): Promise<number> {
  const res = await fetch(url, { method: 'POST', headers: wire.headers, body: wire.body });
  await res.arrayBuffer();
  return res.status;
}

/** Runs `tasks` with at most `limit` in flight. */
async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

beforeAll(async () => {
  admin = adminTarget();
  dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), 'scale');
  // The function's ServiceAccount and Role come from the project's manifests; the Role is bound here too.
  await applyKustomization(adminKubeconfigPath(), 'knative');
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: NS } });
  const role = yaml.load(
    readFileSync(path.join(REPO_ROOT, 'knative/base/config-restarter-role.yaml'), 'utf8'),
  ) as {
    metadata: { namespace: string };
  };
  role.metadata.namespace = NS;
  await kubeRequest(admin, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, role);
  await kubeRequest(admin, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, {
    metadata: { name: 'config-restarter' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'config-restarter' },
    subjects: [{ kind: 'ServiceAccount', name: 'config-restarter', namespace: 'helloworld' }],
  });

  for (let i = 0; i < CONFIGS; i++) {
    const labels = { app: `scale-${i}`, env: 'test' };
    await kubeRequest(
      admin,
      'POST',
      PATHS.configmaps(NS),
      optedInConfigMap(cmName(i), labels, content(i, 0)),
    );
    for (const name of [`d-${i}-a`, `d-${i}-b`]) {
      await kubeRequest(
        admin,
        'POST',
        PATHS.deployments(NS),
        appsWorkload('Deployment', name, { labels, optIn: true }),
      );
      ties.set(`Deployment/${name}`, [cmName(i)]);
    }
    await kubeRequest(
      admin,
      'POST',
      PATHS.statefulsets(NS),
      appsWorkload('StatefulSet', `s-${i}`, {
        labels: {},
        optIn: true,
        podSpec: {
          containers: [
            {
              name: 'main',
              image: 'registry.example/app:1',
              envFrom: [{ configMapRef: { name: cmName(i) } }],
            },
          ],
        },
      }),
    );
    ties.set(`StatefulSet/s-${i}`, [cmName(i)]);
  }
  // Tied to two ConfigMaps at once: by labels to cm-0, by reference to cm-1.
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(NS),
    appsWorkload('Deployment', 'd-both', {
      labels: { app: 'scale-0', env: 'test' },
      optIn: true,
      podSpec: {
        containers: [
          { name: 'main', image: 'registry.example/app:1', envFrom: [{ configMapRef: { name: cmName(1) } }] },
        ],
      },
    }),
  );
  ties.set('Deployment/d-both', [cmName(0), cmName(1)]);
  for (let i = 0; i < 20; i++) {
    await kubeRequest(
      admin,
      'POST',
      PATHS.deployments(NS),
      appsWorkload('Deployment', `untied-${i}`, { labels: { app: 'other' }, optIn: true }),
    );
  }

  // An independent observer of restarts: a watch on what the API server holds.
  const observer = createKubeClient(await loadApiAccess({ KUBECONFIG: adminKubeconfigPath() }), {
    timeoutMs: 10_000,
  });
  for (const kind of WORKLOAD_KINDS.filter((k) => k.kind === 'Deployment' || k.kind === 'StatefulSet')) {
    const { resourceVersion } = await observer.listWorkloads(kind, NS, { map: () => null });
    watches.push(
      observer.watchWorkloads(kind, NS, {
        resourceVersion,
        timeoutSeconds: 600,
        onEvent: (type, object) => {
          if (type !== 'MODIFIED') return;
          const key = `${kind.kind}/${object.metadata?.name}`;
          const template = (
            object.spec as { template?: { metadata?: { annotations?: Record<string, string> } } }
          ).template;
          const stamp = template?.metadata?.annotations?.[RESTART];
          if (stamp && stamp !== lastTimestamp.get(key)) {
            lastTimestamp.set(key, stamp);
            restarts.set(key, (restarts.get(key) ?? 0) + 1);
          }
        },
      }),
    );
  }

  const kubeconfig = path.join(dir, 'config-restarter.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), kubeconfig, 'helloworld', 'config-restarter');
  for (let i = 0; i < INSTANCES; i++) {
    instances.push(
      await startFunction({
        kubeconfig,
        logFile: path.join(dir, `instance-${i}.log`),
        env: { WATCH_NAMESPACES: NS, LOG_LEVEL: 'warn' },
      }),
    );
  }
});

afterAll(async () => {
  for (const watch of watches) watch.stop();
  watches = [];
  await Promise.all(instances.map((instance) => instance.stop()));
});

async function finalHash(i: number): Promise<string> {
  const { body } = await kubeRequest<{ data?: Record<string, string> }>(
    admin,
    'GET',
    `${PATHS.configmaps(NS)}/${cmName(i)}`,
  );
  return contentHash('ConfigMap', body);
}

it('three instances share 1,000 events about 15 edits: nothing lost, nothing stale, no extra restart', async () => {
  // First contact: a resync records the current content on every tied workload, restarting nothing.
  expect(await post(instances[0]!.url, pingSourceRequest())).toBe(200);
  expect(restarts.size).toBe(0);

  const eventFor = (i: number) => () =>
    apiServerSourceRequest({
      action: 'update',
      mode: 'Reference',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: cmName(i), namespace: NS } },
    });
  const perEdit = Math.ceil(EVENTS / (CONFIGS * EDITS));
  const statuses: number[] = [];
  const started = Date.now();
  let sent = 0;
  const rounds: Promise<void>[] = [];
  for (let round = 1; round <= EDITS; round++) {
    for (let i = 0; i < CONFIGS; i++) {
      await kubeRequest(
        admin,
        'PATCH',
        `${PATHS.configmaps(NS)}/${cmName(i)}`,
        { data: content(i, round) },
        {
          contentType: 'application/merge-patch+json',
        },
      );
    }
    // The events of this round: duplicates, spread over the instances, still in flight when the next edits land.
    const tasks: (() => Promise<number>)[] = [];
    for (let i = 0; i < CONFIGS; i++) {
      for (let k = 0; k < perEdit && sent < EVENTS; k++, sent++) {
        const instance = instances[(sent + round) % INSTANCES]!;
        const wire = eventFor(i)();
        tasks.push(() => post(instance.url, wire));
      }
    }
    tasks.sort(() => Math.random() - 0.5);
    rounds.push(pool(tasks, 16).then((codes) => void statuses.push(...codes)));
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  await Promise.all(rounds);
  const seconds = (Date.now() - started) / 1000;
  expect(statuses).toHaveLength(EVENTS);
  expect(statuses.filter((code) => code !== 200)).toEqual([]);

  // Nothing stale: a last resync finds every record equal to the content and restarts nothing.
  const resync = await fetch(instances[1]!.url, { method: 'POST', ...pingSourceRequest() });
  const reply = (await resync.json()) as { decisions: { action: string }[] };
  expect(resync.status).toBe(200);
  expect(reply.decisions.filter((d) => d.action !== 'skip')).toEqual([]);

  // Nothing lost: every record holds the final content of each ConfigMap it depends on.
  const finals = await Promise.all(Array.from({ length: CONFIGS }, (_, i) => finalHash(i)));
  for (const [key, configs] of ties) {
    const [kind, name] = key.split('/') as [string, string];
    const collection = kind === 'Deployment' ? PATHS.deployments(NS) : PATHS.statefulsets(NS);
    const { body } = await kubeRequest<{ metadata: { annotations?: Record<string, string> } }>(
      admin,
      'GET',
      `${collection}/${name}`,
    );
    const record = parseHashRecord(body.metadata.annotations?.[HASHES]);
    for (const config of configs)
      expect([key, record[`configmap/${config}`]]).toEqual([key, finals[Number(config.slice(3))]]);
  }

  // Give the observer's watch a moment, then: at most one restart per edit of the workload's ConfigMaps.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (const [key, configs] of ties) {
    const count = restarts.get(key) ?? 0;
    expect([key, count >= 1 && count <= EDITS * configs.length]).toEqual([key, true]);
  }
  for (const key of restarts.keys()) expect(ties.has(key)).toBe(true);

  const total = [...restarts.values()].reduce((a, b) => a + b, 0);
  process.stderr.write(
    `[scale] ${EVENTS} events over ${INSTANCES} instances in ${seconds.toFixed(1)} s (${(EVENTS / seconds).toFixed(0)} events/s); ` +
      `${total} restarts of ${ties.size} tied workloads for ${CONFIGS * EDITS} edits (at most ${EDITS} per ConfigMap)\n`,
  );
});
