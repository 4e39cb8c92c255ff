/**
 * `npm run bench`: prints speed and memory figures of config-restarter.
 *
 *   decide     the pure core: decisions for one changed ConfigMap over N workloads
 *   http       the express app in-process on a real socket, API stubbed in memory: events/s and latency
 *   cluster    (with --cluster) the built function against the local kube-apiserver: one update event
 *              in a namespace of N Deployments, M of them tied, list + patches over the real API
 *
 * Figures depend on the machine; compare runs on the same machine.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createApp } from '../functions/config-restarter/src/app.js';
import {
  planRestarts,
  summarizeWorkload,
  type ConfigChange,
} from '../functions/config-restarter/src/decide.js';
import { WorkloadIndex } from '../functions/config-restarter/src/workload-index.js';
import { silentLogger } from '../functions/config-restarter/src/log.js';
import { createMetrics } from '../functions/config-restarter/src/metrics.js';
import { createRestarter } from '../functions/config-restarter/src/restarter.js';
import { WORKLOAD_KINDS } from '../functions/config-restarter/src/workload-kinds.js';
import { contentHash } from '../functions/config-restarter/src/hash.js';
import type { ClusterClient } from '../functions/config-restarter/src/kube.js';
import { configMap, workload } from '../test/unit/config-restarter/fake-cluster.js';
import { apiServerSourceRequest } from './lib/apiserver-event.js';

const { values } = parseArgs({
  options: {
    cluster: { type: 'boolean', default: false },
    workloads: { type: 'string', default: '2000' },
    requests: { type: 'string', default: '2000' },
  },
});
const N = Number(values.workloads);
const REQUESTS = Number(values.requests);
const labels = { app: 'bench', env: 'test' };
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app', 'env'] };

const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

/** POSTs with node:http and a keep-alive agent (lighter than fetch, so the client disturbs less). */
function post(url: string, wire: { headers: Record<string, string>; body: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: wire.headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(wire.body);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

function benchDecide(): void {
  const deployment = WORKLOAD_KINDS[0]!;
  const workloads = Array.from({ length: N }, (_, i) =>
    summarizeWorkload(
      settings,
      deployment,
      workload('Deployment', `w-${i}`, {
        labels: i % 10 === 0 ? labels : { app: `other-${i}`, env: 'test' },
        podSpec: {
          containers: [{ envFrom: [{ configMapRef: { name: `cm-${i % 50}` } }] }],
          volumes: [{ configMap: { name: `vol-${i}` } }],
        },
      }),
    ),
  );
  const change: ConfigChange = {
    ref: { kind: 'ConfigMap', namespace: 'helloworld', name: 'cm-7' },
    hash: 'sha256:x',
    labels,
    trigger: 'update',
  };
  const rounds = 50;
  planRestarts(settings, [change], workloads, new Date());
  const start = process.hrtime.bigint();
  let decisions = 0;
  for (let i = 0; i < rounds; i++) decisions = planRestarts(settings, [change], workloads, new Date()).length;
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / rounds;
  console.log(
    `decide   ${N} workloads, ${decisions} tied: ${ms.toFixed(2)} ms per event (${((ms * 1000) / N).toFixed(2)} µs per workload), heap in use ${mb(process.memoryUsage().heapUsed)}`,
  );
}

async function benchHttp(): Promise<void> {
  // A read-only in-memory API: every event after the first is a duplicate (the steady state), so this
  // measures decoding, reading, deciding and answering, not a stub's bookkeeping.
  const objects = Array.from({ length: 200 }, (_, i) => {
    const object = workload('Deployment', `w-${i}`, { labels: i < 20 ? labels : { app: 'x', env: 'y' } });
    object.metadata!.annotations!['rolling.restart.controller/configHashes'] = '{"configmap/cm":"HASH"}';
    return object;
  });
  const cm = configMap('cm', { MESSAGE: 'x' }, { labels });
  const hash = contentHash('ConfigMap', cm);
  for (const object of objects)
    object.metadata!.annotations!['rolling.restart.controller/configHashes'] = `{"configmap/cm":"${hash}"}`;
  const cluster: ClusterClient = {
    getConfig: () => Promise.resolve(cm),
    listConfigs: () => Promise.resolve([cm]),
    serves: () => Promise.resolve(true),
    listWorkloads: (kind, _namespace, options) =>
      Promise.resolve({
        items: (kind.kind === 'Deployment' ? objects : []).map((object) => options.map(object)),
        resourceVersion: '1',
      }),
    watchWorkloads: () => ({ ended: new Promise(() => undefined), stop: () => undefined }),
    getWorkload: (_kind, _namespace, name) => Promise.resolve(objects.find((o) => o.metadata?.name === name)),
    patchWorkload: () => Promise.reject(new Error('no patch expected in the steady state')),
  };
  const metrics = createMetrics();
  const index = new WorkloadIndex({
    client: cluster,
    kinds: WORKLOAD_KINDS,
    namespaces: ['helloworld'],
    matchLabels: settings.matchLabels,
    summarize: (kind, object) => summarizeWorkload(settings, kind, object),
    logger: silentLogger,
  });
  index.start();
  const restarter = createRestarter({
    index,
    client: cluster,
    logger: silentLogger,
    metrics,
    settings: {
      ...settings,
      dryRun: false,
      configKinds: ['ConfigMap'],
      patchConcurrency: 4,
      scope: { all: false, namespaces: ['helloworld'] },
      syncTimeoutMs: 10_000,
    },
  });
  const app = createApp({ restarter, logger: silentLogger, metrics, isReady: () => true });
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const wire = apiServerSourceRequest({
    action: 'update',
    mode: 'Reference',
    object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm', namespace: 'helloworld' } },
  });
  // Warm up the JIT.
  for (let i = 0; i < 50; i++)
    await fetch(url, { method: 'POST', headers: wire.headers, body: wire.body }).then((r) => r.text());
  const latencies: number[] = [];
  const concurrency = 8;
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < REQUESTS) {
        const t = process.hrtime.bigint();
        const status = await post(url, wire);
        if (status !== 200) throw new Error(`unexpected ${status}`);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  latencies.sort((a, b) => a - b);
  console.log(
    `http     ${REQUESTS} duplicate events (200 workloads, 20 tied, concurrency ${concurrency}): ${(REQUESTS / seconds).toFixed(0)} events/s, ` +
      `p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, bench process rss ${mb(process.memoryUsage().rss)}`,
  );
  await new Promise((resolve) => server.close(resolve));
}

async function benchCluster(): Promise<void> {
  const { defaultClusterDir, startCluster } = await import('../test/cluster/control-plane.js');
  const { kubeRequest, readKubeconfig, writeServiceAccountKubeconfig } =
    await import('../test/cluster/kube.js');
  const { applyKustomization, appsWorkload, optedInConfigMap } =
    await import('../test/integration/kube-helpers.js');
  const { startFunction } = await import('../test/integration/function-process.js');
  const cluster = await startCluster({ dir: defaultClusterDir(), log: () => undefined });
  const admin = readKubeconfig(cluster.kubeconfig);
  await applyKustomization(cluster.kubeconfig, 'knative');
  const ns = 'helloworld';
  const total = Math.min(N, 500);
  const tied = Math.max(1, Math.floor(total / 10));
  const existing = await kubeRequest<{ items: unknown[] }>(
    admin,
    'GET',
    `/apis/apps/v1/namespaces/${ns}/deployments?labelSelector=bench%3Dtrue`,
  );
  for (let i = existing.body.items.length; i < total; i++) {
    const body = appsWorkload('Deployment', `bench-${i}`, {
      labels: i < tied ? labels : { app: 'bench-other', env: 'test' },
      optIn: true,
    });
    (body.metadata as { labels: Record<string, string> }).labels.bench = 'true';
    await kubeRequest(admin, 'POST', `/apis/apps/v1/namespaces/${ns}/deployments`, body);
  }
  await kubeRequest(
    admin,
    'POST',
    `/api/v1/namespaces/${ns}/configmaps`,
    optedInConfigMap('bench-config', labels, { V: '0' }),
    { allowStatus: [409] },
  );
  const dir = path.join(defaultClusterDir(), 'bench');
  const kubeconfig = path.join(dir, 'config-restarter.kubeconfig');
  await writeServiceAccountKubeconfig(cluster.kubeconfig, kubeconfig, ns, 'config-restarter');
  const fn = await startFunction({
    kubeconfig,
    logFile: path.join(dir, 'config-restarter.log'),
    env: { LOG_LEVEL: 'warn' },
  });
  const wire = apiServerSourceRequest({
    action: 'update',
    mode: 'Reference',
    object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'bench-config', namespace: ns } },
  });
  const rssOf = async (): Promise<number> =>
    Number(
      (await (await fetch(`${fn.url}/metrics`)).text()).match(/^process_resident_memory_bytes (\d+)/m)?.[1] ??
        0,
    );
  const idleRss = await rssOf();
  const timings: number[] = [];
  const duplicates: number[] = [];
  for (let round = 0; round < 5; round++) {
    await kubeRequest(
      admin,
      'PATCH',
      `/api/v1/namespaces/${ns}/configmaps/bench-config`,
      { data: { V: `${Date.now()}` } },
      { contentType: 'application/merge-patch+json' },
    );
    let t = process.hrtime.bigint();
    const res = await fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });
    const body = (await res.json()) as { restarted?: number };
    timings.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (body.restarted !== tied)
      throw new Error(`expected ${tied} restarts, got ${JSON.stringify(body).slice(0, 300)}`);
    t = process.hrtime.bigint();
    await (await fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body })).text();
    duplicates.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const busyRss = await rssOf();
  await fn.stop();
  timings.sort((a, b) => a - b);
  duplicates.sort((a, b) => a - b);
  console.log(
    `cluster  update event, ${total} Deployments in the namespace, ${tied} tied and restarted: median ${percentile(timings, 50).toFixed(0)} ms ` +
      `(duplicate delivery: ${percentile(duplicates, 50).toFixed(0)} ms), function rss ${mb(idleRss)} idle, ${mb(busyRss)} after`,
  );
}

console.log(`node ${process.version}, ${process.arch}`);
benchDecide();
await benchHttp();
if (values.cluster) await benchCluster();
else
  console.log(
    'cluster  skipped (add --cluster to measure against the local kube-apiserver: npm run bench -- --cluster)',
  );
process.exit(0);
