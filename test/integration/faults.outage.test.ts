/**
 * Fault suite, outage: a burst of 20 ConfigMap changes (each tied to its own Deployment) is delivered the way
 * the ApiServerSource adapter delivers (6 attempts, exponential backoff, retrying 404/413/425/429/502/503/504
 * and network errors) while kube-apiserver is frozen (SIGSTOP) for 15 s, then killed and restarted on the same
 * port, certificates and etcd data. Every answer during the outage must be 503 + Retry-After within
 * API_TIMEOUT_MS + 1 s, the function stays up, and after recovery (redelivery of what the sender dropped, then
 * a resync) each of the 20 Deployments restarted exactly once for the change.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { apiServerFaults, type ApiServerFaults } from '../../cluster/faults.js';
import { kubeRequest, type KubeTarget } from '../../cluster/kube.js';
import { REPO_ROOT, sleep } from '../../cluster/util.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { applyKustomizationIn, appsWorkload, PATHS, readWorkload } from '../../cluster/objects.js';

jest.setTimeout(300_000);

const COUNT = 20;
const API_TIMEOUT_MS = 2_000;
const DEADLINE_MS = API_TIMEOUT_MS + 1_000;
const FREEZE_MS = 15_000;
/** The adapter's policy (knative.dev/eventing pkg/adapter/v2): these statuses and network errors are retried. */
const RETRIED = new Set([404, 413, 425, 429, 502, 503, 504]);
const MAX_ATTEMPTS = 6;
const RESTART = 'rolling.restart.controller/restartTimestamp';
const HASHES = 'rolling.restart.controller/configHashes';

interface Attempt {
  event: string;
  sentAt: number;
  ms: number;
  /** HTTP status; 0 when no answer came (connection error). */
  status: number;
  retryAfter: string | null;
}

let admin: KubeTarget;
let ns: string;
let fn: FunctionProcess;
let faults: ApiServerFaults;
const attempts: Attempt[] = [];

const cmName = (i: number): string => `burst-${String(i).padStart(2, '0')}`;

/** A Reference-mode update as the adapter sends it; a retry resends the same id. */
function updateEvent(i: number): { id: string; headers: Record<string, string>; body: string } {
  const name = cmName(i);
  const id = `0b1d0b1d-0000-4000-8000-${String(i).padStart(12, '0')}`;
  return {
    id,
    headers: {
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.apiserver.ref.update',
      'ce-source': admin.server,
      'ce-subject': `/apis/v1/namespaces/${ns}/configmaps/${name}`,
      'ce-id': id,
      'ce-kind': 'ConfigMap',
      'ce-apiversion': 'v1',
      'ce-name': name,
      'ce-namespace': ns,
      'content-type': 'application/json',
      'kn-namespace': ns,
    },
    body: JSON.stringify({ kind: 'ConfigMap', namespace: ns, name, apiVersion: 'v1' }),
  };
}

function resyncEvent(id: string): { id: string; headers: Record<string, string>; body: string } {
  return {
    id,
    headers: {
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.sources.ping',
      'ce-source': `/apis/v1/namespaces/${ns}/pingsources/config-restarter-resync`,
      'ce-id': id,
      'content-type': 'application/json',
    },
    body: '{"reason":"resync"}',
  };
}

/** One attempt, recorded. */
async function attempt(event: {
  id: string;
  headers: Record<string, string>;
  body: string;
}): Promise<number> {
  const sentAt = Date.now();
  let status = 0;
  let retryAfter: string | null = null;
  try {
    const res = await fetch(fn.url, {
      method: 'POST',
      headers: event.headers,
      body: event.body,
      signal: AbortSignal.timeout(120_000),
    });
    status = res.status;
    retryAfter = res.headers.get('retry-after');
    await res.text();
  } catch {
    status = 0;
  }
  attempts.push({ event: event.id, sentAt, ms: Date.now() - sentAt, status, retryAfter });
  return status;
}

/** Delivers like the adapter: up to 6 attempts, 100 ms doubling backoff. True when acknowledged. */
async function deliver(event: {
  id: string;
  headers: Record<string, string>;
  body: string;
}): Promise<boolean> {
  for (let n = 1; n <= MAX_ATTEMPTS; n++) {
    const status = await attempt(event);
    if (status === 200 || status === 202) return true;
    if (status !== 0 && !RETRIED.has(status)) return false;
    if (n < MAX_ATTEMPTS) await sleep(100 * 2 ** (n - 1));
  }
  return false;
}

const percentile = (values: number[], p: number): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};

beforeAll(async () => {
  admin = adminTarget();
  ns = uniqueName('faults');
  faults = apiServerFaults(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'));
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: ns } });
  for (let i = 0; i < COUNT; i++) {
    await kubeRequest(admin, 'POST', PATHS.configmaps(ns), {
      metadata: { name: cmName(i), annotations: { 'rolling.restart.controller/triggerRestart': 'true' } },
      data: { VERSION: 'one' },
    });
    await kubeRequest(
      admin,
      'POST',
      PATHS.deployments(ns),
      appsWorkload('Deployment', cmName(i), {
        labels: { app: cmName(i) },
        optIn: true,
        podSpec: { volumes: [{ name: 'config', configMap: { name: cmName(i) } }] },
      }),
    );
  }
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), 'faults');
  // The function runs as its ServiceAccount in `ns`, with the project's RBAC applied there.
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: ns,
    logFile: path.join(dir, 'config-restarter-outage.log'),
    env: { WATCH_NAMESPACES: ns, API_TIMEOUT_MS: String(API_TIMEOUT_MS), LOG_LEVEL: 'info' },
  });
  // First contact: the resync records the current hashes and restarts nothing (generation 1 -> 2).
  expect(await attempt(resyncEvent('resync-before'))).toBe(200);
});

afterAll(async () => {
  // Never leave the shared cluster frozen or down for the next test file.
  try {
    faults.thaw();
  } catch {
    // already gone
  }
  if (!(await faults.ready(5_000))) await faults.restart();
  expect(await fn?.stop()).toBe(0);
});

it('answers 503 within the deadline during the outage, stays up, and restarts each Deployment once after recovery', async () => {
  for (let i = 0; i < COUNT; i++) {
    const { generation, annotations } = await readWorkload(admin, PATHS.deployments(ns), cmName(i));
    expect({ i, generation, recorded: HASHES in annotations }).toEqual({ i, generation: 2, recorded: true });
    await kubeRequest(
      admin,
      'PATCH',
      `${PATHS.configmaps(ns)}/${cmName(i)}`,
      { data: { VERSION: 'two' } },
      { contentType: 'application/merge-patch+json' },
    );
  }

  // The burst: four senders, like Broker fan-out, each delivering its share one event after the other.
  const acknowledged = new Set<string>();
  let freezeAt = Number.POSITIVE_INFINITY;
  let readyAt = Number.POSITIVE_INFINITY;
  let onSecondAck: () => void = () => undefined;
  const secondAck = new Promise<void>((resolve) => (onSecondAck = resolve));
  const queue = Array.from({ length: COUNT }, (_, i) => updateEvent(i));
  const pending = [...queue];
  const senders = Array.from({ length: 4 }, async () => {
    for (let event = pending.shift(); event; event = pending.shift()) {
      if (await deliver(event)) acknowledged.add(event.id);
      if (acknowledged.size >= 2) onSecondAck();
      await sleep(50);
    }
  });

  // Liveness during the outage: the process stays up and answers at once.
  const liveness: { ms: number; status: number }[] = [];
  let probing = true;
  const prober = (async () => {
    while (probing) {
      const started = Date.now();
      const status = await fetch(`${fn.url}/health/liveness`, { signal: AbortSignal.timeout(5_000) })
        .then((r) => r.status)
        .catch(() => 0);
      if (started >= freezeAt) liveness.push({ ms: Date.now() - started, status });
      await sleep(500);
    }
  })();

  await Promise.race([secondAck, Promise.all(senders)]);
  faults.freeze();
  freezeAt = Date.now();
  await sleep(FREEZE_MS);
  await faults.kill();
  const killAt = Date.now();
  const restartMs = await faults.restart();
  readyAt = Date.now();
  await Promise.all(senders);
  probing = false;
  await prober;

  // Recovery: what the sender dropped is delivered again (same ids), then the resync catches anything else.
  const dropped = queue.filter((e) => !acknowledged.has(e.id));
  for (const event of dropped) {
    for (let n = 0; n < 10 && !acknowledged.has(event.id); n++) {
      if (await deliver(event)) acknowledged.add(event.id);
      else await sleep(1_000);
    }
  }
  expect(await attempt(resyncEvent('resync-after'))).toBe(200);

  const during = attempts.filter((a) => a.sentAt >= freezeAt && a.sentAt < readyAt);
  const overall = attempts.filter((a) => a.event !== 'resync-before');
  const statusCounts = (list: Attempt[]): Record<string, number> =>
    list.reduce<Record<string, number>>((acc, a) => ({ ...acc, [a.status]: (acc[a.status] ?? 0) + 1 }), {});
  const frozen = during.filter((a) => a.sentAt < killAt);
  const down = during.filter((a) => a.sentAt >= killAt);
  const figure = (list: Attempt[]): string =>
    list.length === 0
      ? 'none'
      : `${list.length} answers, p50 ${percentile(
          list.map((a) => a.ms),
          50,
        )} ms, p95 ${percentile(
          list.map((a) => a.ms),
          95,
        )} ms, max ${Math.max(...list.map((a) => a.ms))} ms, statuses ${JSON.stringify(statusCounts(list))}`;

  const states = await Promise.all(
    Array.from({ length: COUNT }, (_, i) => readWorkload(admin, PATHS.deployments(ns), cmName(i))),
  );
  const hashes = await Promise.all(
    Array.from({ length: COUNT }, async (_, i) => {
      const { body } = await kubeRequest<{ data?: Record<string, string> }>(
        admin,
        'GET',
        `${PATHS.configmaps(ns)}/${cmName(i)}`,
      );
      return contentHash('ConfigMap', body);
    }),
  );
  const recordOf = (annotations: Record<string, string>, i: number): string | undefined =>
    (JSON.parse(annotations[HASHES] ?? '{}') as Record<string, string>)[`configmap/${cmName(i)}`];
  const restarted = states.filter(
    (s, i) =>
      s.generation === 3 && RESTART in s.templateAnnotations && recordOf(s.annotations, i) === hashes[i],
  ).length;
  const lost = states.filter((s) => !(RESTART in s.templateAnnotations)).length;
  const duplicates = states.filter((s) => s.generation > 3).length;

  process.stdout.write(
    [
      `outage (API_TIMEOUT_MS=${API_TIMEOUT_MS}, deadline ${DEADLINE_MS} ms, ${COUNT} Deployments):`,
      `  kube-apiserver frozen ${FREEZE_MS / 1000} s, killed, ready again ${(restartMs / 1000).toFixed(1)} s after restart`,
      `  answers while frozen: ${figure(frozen)}`,
      `  answers while down/restarting: ${figure(down)}`,
      `  all event answers: ${figure(overall)}`,
      `  liveness during the outage: ${liveness.length} probes, max ${Math.max(0, ...liveness.map((l) => l.ms))} ms, statuses ${JSON.stringify(liveness.reduce<Record<string, number>>((acc, l) => ({ ...acc, [l.status]: (acc[l.status] ?? 0) + 1 }), {}))}`,
      `  events acknowledged before the freeze: ${attempts.filter((a) => a.sentAt < freezeAt && (a.status === 200 || a.status === 202)).length - 1}; dropped by the sender's 6 attempts: ${dropped.length}; redelivered after recovery`,
      `  after redelivery and resync: restarted once ${restarted}/${COUNT}, lost ${lost}, duplicates ${duplicates}`,
      '',
    ].join('\n'),
  );

  expect(during.length).toBeGreaterThan(10);
  expect(frozen.length).toBeGreaterThan(0);
  // Frozen: nothing can be answered from the API server, so every answer is a 503 to retry.
  expect(frozen.filter((a) => a.status !== 503 || a.retryAfter === null)).toEqual([]);
  // Killed and restarting: 503 until it serves again (it serves before /readyz says so), then handled.
  expect(
    down.filter((a) => !(a.status === 503 && a.retryAfter !== null) && a.status !== 200 && a.status !== 202),
  ).toEqual([]);
  expect(overall.filter((a) => a.ms > DEADLINE_MS)).toEqual([]);
  expect(liveness.length).toBeGreaterThan(10);
  expect(liveness.filter((l) => l.status !== 200)).toEqual([]);
  expect({ restarted, lost, duplicates }).toEqual({ restarted: COUNT, lost: 0, duplicates: 0 });
  expect((await fetch(`${fn.url}/health/readiness`)).status).toBe(200);
});
