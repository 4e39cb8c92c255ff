/**
 * `npm run bench`: prints speed and memory figures of config-restarter.
 *
 *   decide     the pure core: decisions for one changed ConfigMap over N workloads
 *   http       the express app in-process on a real socket, API stubbed in memory: events/s and latency
 *   follow     the added cost per event of following outcomes: events about a followed workload (the
 *              workloads' ApiServerSource) next to config events, same app, same stub: p50, CPU, memory
 *   cluster    (with --cluster) the built function as its own process, fed by the real ApiServerSource adapter,
 *              on the local control plane: edit -> restart latency at several namespace sizes, the API floor,
 *              memory, CPU per edit, cold start and a burst. See BENCHMARKS.md.
 *
 * Figures depend on the machine; compare runs on the same machine.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../functions/config-restarter/src/config.js';
import { planRestarts } from '../functions/config-restarter/src/decide.js';
import type { ConfigChange } from '../functions/config-restarter/src/decision-types.js';
import { summarizeWorkload } from '../functions/config-restarter/src/workload-summary.js';
import { silentLogger } from '../functions/config-restarter/src/log.js';
import { createRuntime } from '../functions/config-restarter/src/runtime.js';
import { WORKLOAD_KINDS } from '../functions/config-restarter/src/workload-kinds.js';
import { contentHash } from '../functions/config-restarter/src/hash.js';
import { formatRolloutRecord } from '../functions/config-restarter/src/rollout.js';
import type { ClusterClient } from '../functions/config-restarter/src/kube.js';
import type { ConfigObject, KubeObject } from '../functions/config-restarter/src/model.js';
import { REPO_ROOT } from '../cluster/util.js';
import { apiServerSourceRequest } from '../cluster/apiserver-event.js';
import { renderReport } from './lib/bench-report.js';
import { runClusterBench } from './lib/cluster-bench.js';
import { mb, percentile } from './lib/stats.js';

const USAGE = `usage: npm run bench -- [--cluster] [options]

  in-process (always):
    --workloads <n>        workloads of the decide benchmark (default 2000)
    --requests <n>         events of the http benchmark (default 2000)
  --cluster                also run the cluster benchmark (see BENCHMARKS.md), with:
    --sizes <n,n,...>      numbers of untied Deployments, ascending (default 10,2000,10000)
    --edits <n>            spaced edits measured per size (default 40)
    --warmup <n>           warm-up edits per size, reported apart (default 3)
    --cold-starts <n>      cold starts measured at the first size (default 3)
    --burst <n>            edits of the burst, 0 for none (default 200)
    --burst-configmaps <n> ConfigMaps the burst spreads over (default 10)
    --burst-at <n>         size at which the burst runs (default: the first size)
    --noise <s>            seconds of each noise run (an unrelated ConfigMap written once a second, with the
                           shipped source and without its selector), 0 for none (default 60)
    --dir <dir>            cluster directory (default .cluster/bench; started fresh, stopped at the end)
    --out <file>           also write the report (Markdown) to this file`;

const { values } = parseArgs({
  options: {
    cluster: { type: 'boolean', default: false },
    workloads: { type: 'string', default: '2000' },
    requests: { type: 'string', default: '2000' },
    sizes: { type: 'string', default: '10,2000,10000' },
    edits: { type: 'string', default: '40' },
    warmup: { type: 'string', default: '3' },
    'cold-starts': { type: 'string', default: '3' },
    burst: { type: 'string', default: '200' },
    'burst-configmaps': { type: 'string', default: '10' },
    'burst-at': { type: 'string' },
    noise: { type: 'string', default: '60' },
    dir: { type: 'string', default: path.join(REPO_ROOT, '.cluster', 'bench') },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

/** A whole number >= `min` from a flag, or exit 2 naming the flag. */
function count(flag: string, value: string, min = 0): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${flag} must be an integer >= ${min}, got "${value}"\n\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

const N = count('workloads', values.workloads, 1);
const REQUESTS = count('requests', values.requests, 1);
const SIZES = values.sizes.split(',').map((v) => count('sizes', v.trim(), 1));
if (SIZES.some((n, i) => i > 0 && n <= SIZES[i - 1]!)) {
  console.error(`--sizes must be ascending, got "${values.sizes}"`);
  process.exit(2);
}
const labels = { app: 'bench', env: 'test' };
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

/** An opted-in Deployment as the API server would return it. */
function workload(
  name: string,
  labels: Record<string, string>,
  podSpec?: Record<string, unknown>,
): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: 'helloworld',
      labels,
      annotations: { 'rolling.restart.controller/restartOnTrigger': 'true' },
    },
    spec: { template: { metadata: { labels }, spec: podSpec ?? { containers: [{}] } } },
  };
}

/** An opted-in ConfigMap. */
function configMap(name: string, data: Record<string, string>, labels: Record<string, string>): ConfigObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace: 'helloworld',
      labels,
      annotations: { 'rolling.restart.controller/triggerRestart': 'true' },
    },
    data,
  };
}

function benchDecide(): void {
  const deployment = WORKLOAD_KINDS[0]!;
  const workloads = Array.from({ length: N }, (_, i) =>
    summarizeWorkload(
      settings,
      deployment,
      workload(`w-${i}`, i % 10 === 0 ? labels : { app: `other-${i}`, env: 'test' }, {
        containers: [{ envFrom: [{ configMapRef: { name: `cm-${i % 50}` } }] }],
        volumes: [{ configMap: { name: `vol-${i}` } }],
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
    const object = workload(`w-${i}`, i < 20 ? labels : { app: 'x', env: 'y' });
    object.metadata!.annotations!['rolling.restart.controller/configHashes'] = '{"configmap/cm":"HASH"}';
    return object;
  });
  const cm = configMap('cm', { MESSAGE: 'x' }, labels);
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
    createEvent: () => Promise.reject(new Error('no Event expected in the steady state')),
  };
  // Built as main builds it (the default settings, own namespace helloworld), over the in-memory API.
  const runtime = createRuntime(
    loadConfig({}),
    { client: cluster, ownNamespace: 'helloworld' },
    silentLogger,
  );
  runtime.start();
  const server = runtime.app.listen(0, '127.0.0.1');
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
  console.log(
    `http     ${REQUESTS} duplicate events (200 workloads, 20 tied, concurrency ${concurrency}): ${(REQUESTS / seconds).toFixed(0)} events/s, ` +
      `p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, bench process rss ${mb(process.memoryUsage().rss)}`,
  );
  await new Promise((resolve) => server.close(resolve));
  runtime.stop();
}

/** A Deployment restarted by the function whose rollout is still progressing, as the API server holds it. */
function progressingDeployment(name: string, tied = true): KubeObject {
  const restartedAt = '2026-01-01T00:00:00.000Z';
  const object = workload(name, tied ? labels : { app: 'x', env: 'y' });
  const spec = object.spec as { template: { metadata: { annotations?: Record<string, string> } } };
  spec.template.metadata.annotations = { 'rolling.restart.controller/restartTimestamp': restartedAt };
  const template = summarizeWorkload(settings, WORKLOAD_KINDS[0]!, object).template!;
  object.metadata!.annotations!['rolling.restart.controller/rollout'] = formatRolloutRecord({
    state: 'progressing',
    restartedAt,
    changedAt: restartedAt,
    configs: { 'configmap/cm': 'sha256:0' },
    template,
  });
  object.metadata!.generation = 2;
  object.status = { observedGeneration: 2, replicas: 3, updatedReplicas: 1, availableReplicas: 2 };
  return object;
}

/** p50, p99 and CPU (user + system) per event of `REQUESTS` events at concurrency 8. */
async function measureEvents(
  url: string,
  wire: { headers: Record<string, string>; body: string },
  expected: number,
): Promise<{ p50: number; p99: number; cpuMs: number }> {
  for (let i = 0; i < 50; i++) await post(url, wire);
  const latencies: number[] = [];
  let next = 0;
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next++ < REQUESTS) {
        const t = process.hrtime.bigint();
        const status = await post(url, wire);
        if (status !== expected) throw new Error(`unexpected ${status}`);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuMs: (used.user + used.system) / 1000 / REQUESTS,
  };
}

/** Heap bytes per index summary of an opted-in Deployment, with and without a rollout record (needs --expose-gc). */
function summaryBytes(withRecord: boolean): number | undefined {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return undefined;
  const count = 5000;
  const objects = Array.from({ length: count }, (_, i) =>
    withRecord ? progressingDeployment(`s-${i}`) : workload(`s-${i}`, labels),
  );
  gc();
  const before = process.memoryUsage().heapUsed;
  const kept = objects.map((object) => summarizeWorkload(settings, WORKLOAD_KINDS[0]!, object));
  gc();
  const bytes = (process.memoryUsage().heapUsed - before) / count;
  return kept.length === count ? bytes : undefined;
}

async function benchFollow(): Promise<void> {
  // As in the http figure: 200 workloads, 20 tied to the ConfigMap; here every one has a rollout in progress.
  const deployments = Array.from({ length: 200 }, (_, i) => progressingDeployment(`w-${i}`, i < 20));
  const cm = configMap('cm', { MESSAGE: 'x' }, labels);
  const hash = contentHash('ConfigMap', cm);
  for (const object of deployments)
    object.metadata!.annotations!['rolling.restart.controller/configHashes'] = `{"configmap/cm":"${hash}"}`;
  const cluster: ClusterClient = {
    getConfig: () => Promise.resolve(cm),
    listConfigs: () => Promise.resolve([cm]),
    serves: () => Promise.resolve(true),
    listWorkloads: (kind, _namespace, options) =>
      Promise.resolve({
        items: (kind.kind === 'Deployment' ? deployments : []).map((object) => options.map(object)),
        resourceVersion: '1',
      }),
    watchWorkloads: () => ({ ended: new Promise(() => undefined), stop: () => undefined }),
    getWorkload: (_kind, _namespace, name) =>
      Promise.resolve(deployments.find((o) => o.metadata?.name === name)),
    patchWorkload: () => Promise.reject(new Error('no patch expected while the rollouts progress')),
    createEvent: () => Promise.reject(new Error('no Event expected while the rollouts progress')),
  };
  const runtime = createRuntime(
    loadConfig({}),
    { client: cluster, ownNamespace: 'helloworld' },
    silentLogger,
  );
  runtime.start();
  const server = runtime.app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const meta = (kind: string, apiVersion: string, name: string) => ({
    apiVersion,
    kind,
    metadata: { name, namespace: 'helloworld' },
  });
  const rss = process.memoryUsage().rss;
  const config = await measureEvents(
    url,
    apiServerSourceRequest({ action: 'update', mode: 'Reference', object: meta('ConfigMap', 'v1', 'cm') }),
    200,
  );
  const followed = await measureEvents(
    url,
    apiServerSourceRequest({
      action: 'update',
      mode: 'Reference',
      object: meta('Deployment', 'apps/v1', 'w-7'),
    }),
    202,
  );
  const [plain, recorded] = [summaryBytes(false), summaryBytes(true)];
  const heap =
    plain === undefined || recorded === undefined
      ? 'index bytes per workload: run with --expose-gc'
      : `index summary ${plain.toFixed(0)} B per workload, ${recorded.toFixed(0)} B with a rollout record (+${(recorded - plain).toFixed(0)} B)`;
  console.log(
    `follow   ${REQUESTS} events about a Deployment whose rollout progresses (GET + judge, 202; 200 workloads, 20 tied), concurrency 8: ` +
      `p50 ${followed.p50.toFixed(2)} ms, p99 ${followed.p99.toFixed(2)} ms, CPU ${followed.cpuMs.toFixed(3)} ms per event; ` +
      `config events, same run: p50 ${config.p50.toFixed(2)} ms, p99 ${config.p99.toFixed(2)} ms, CPU ${config.cpuMs.toFixed(3)} ms per event; ` +
      `bench process rss ${mb(rss)} before, ${mb(process.memoryUsage().rss)} after; ${heap}`,
  );
  await new Promise((resolve) => server.close(resolve));
  runtime.stop();
}

async function benchCluster(): Promise<void> {
  const options = {
    sizes: SIZES,
    edits: count('edits', values.edits, 1),
    warmup: count('warmup', values.warmup),
    coldStarts: count('cold-starts', values['cold-starts']),
    burstEdits: count('burst', values.burst),
    burstConfigMaps: count('burst-configmaps', values['burst-configmaps'], 1),
    burstAt: values['burst-at'] === undefined ? SIZES[0]! : count('burst-at', values['burst-at'], 1),
    noiseSeconds: count('noise', values.noise),
    dir: path.resolve(values.dir),
    log: (line: string) => process.stderr.write(`[bench] ${line}\n`),
  };
  if (!SIZES.includes(options.burstAt)) {
    console.error(`--burst-at must be one of --sizes (${SIZES.join(', ')}), got ${options.burstAt}`);
    process.exit(2);
  }
  const report = renderReport(await runClusterBench(options), options);
  console.log(`\ncluster\n\n${report}`);
  if (values.out) writeFileSync(values.out, `${report}\n`);
}

console.log(`node ${process.version}, ${process.arch}`);
benchDecide();
await benchHttp();
await benchFollow();
if (values.cluster) await benchCluster();
else console.log('cluster  skipped (add --cluster: npm run bench -- --cluster; see BENCHMARKS.md)');
process.exit(0);
