/**
 * The cluster part of `npm run bench -- --cluster`: the built function, run as its own process exactly as
 * deployed (`node functions/config-restarter/dist/index.js`, the settings of func.yaml, the token of its own
 * ServiceAccount bound by the project's RBAC manifests), fed by the real ApiServerSource adapter (Reference
 * mode), on the local control plane (etcd + kube-apiserver), in a namespace of N untied Deployments.
 *
 * Every latency is measured from outside the function: from the moment the admin's edit returns to the
 * moment a watch of the bench sees the tied Deployment's pod template change.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { Agent } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import {
  startApiServerSourceAdapter,
  type AdapterResource,
  type ApiServerSourceAdapter,
} from '../../cluster/adapter.js';
import { COMPONENTS, ensureBinary } from '../../cluster/binaries.js';
import { startCluster, stopCluster } from '../../cluster/control-plane.js';
import {
  keepAliveAgent,
  kubeRequest,
  readKubeconfig,
  writeServiceAccountKubeconfig,
  type KubeTarget,
} from '../../cluster/kube.js';
import { readCpuMs, readRssBytes, sampleRss } from '../../cluster/proc-stats.js';
import { REPO_ROOT, sleep, type Log } from '../../cluster/util.js';
import { watchCollection, type CollectionWatch, type WatchEvent } from '../../cluster/watch.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { applyKustomization, settle } from '../../cluster/objects.js';
import { shippedSource, type ShippedSource } from '../../cluster/shipped-source.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import { apiServerSourceRequest } from '../../cluster/apiserver-event.js';
import { mb, msBetween, percentile } from './stats.js';

/** Options of {@link runClusterBench}. */
export interface ClusterBenchOptions {
  /** Numbers of untied Deployments, measured in this order (ascending: each size adds to the previous). */
  sizes: number[];
  /** Spaced edits measured at each size. */
  edits: number;
  /** Spaced edits before the measured ones at each size (JIT, connections); reported, not counted. */
  warmup: number;
  /** Cold starts measured at the first size. */
  coldStarts: number;
  /** Edits of the burst (0: no burst). */
  burstEdits: number;
  /** ConfigMaps the burst edits, each tied to one Deployment. */
  burstConfigMaps: number;
  /** Size at which the burst runs. */
  burstAt: number;
  /** Seconds of each noise run (an unrelated ConfigMap written once a second); 0: no noise runs. */
  noiseSeconds: number;
  /** Cluster directory (started fresh, stopped at the end). */
  dir: string;
  log: Log;
}

/** Figures of one size. */
export interface SizeResult {
  n: number;
  createSeconds: number;
  floor: FloorResult;
  warmupMs: number[];
  latenciesMs: number[];
  idleRss: number;
  rssSamples: number[];
  cpuPerEditMs: number;
  seconds: number;
}

/** Figures of the cold starts. */
export interface ColdStartResult {
  /** Spawn -> first 2xx answer to the first event, per run. */
  answeredMs: number[];
  /** Spawn -> the restart visible to the watch, per run. */
  restartVisibleMs: number[];
  /** Non-2xx answers (or refused connections) before the first 2xx, summed over the runs. */
  earlyAnswers: Record<string, number>;
}

/** Figures of the burst. */
export interface BurstResult {
  n: number;
  edits: number;
  configMaps: number;
  /** First edit sent -> last edit answered. */
  editSeconds: number;
  /** Events the function counted (`config_restarter_events_total`) during the burst. */
  eventsHandled: number;
  /** First edit sent -> the function has counted every event (polled every 100 ms). */
  eventsSeconds: number;
  /** First edit sent -> the last restart seen by the watch. */
  restartsSeconds: number;
  /** Restarts seen per Deployment. */
  restartsPerDeployment: number[];
  editsPerConfigMap: number;
  /** Deployments whose hash record does not name the final content of their ConfigMap. */
  staleRecords: number;
}

/** Events delivered while an unrelated, unlabelled ConfigMap is written once a second. */
export interface NoiseResult {
  n: number;
  /** Seconds of each run. */
  seconds: number;
  /** The shipped source's selector (adapter form). */
  selector: string;
  /** The source without a selector: writes made, events the function counted. */
  unselected: { writes: number; events: number };
  /** The source as shipped. */
  selected: { writes: number; events: number };
}

/** Everything measured. */
export interface ClusterBenchResult {
  sizes: SizeResult[];
  coldStart?: ColdStartResult;
  burst?: BurstResult;
  noise?: NoiseResult;
  phases: { name: string; seconds: number }[];
  totalSeconds: number;
  machine: string;
}

const NS = 'helloworld';
const TIED = 'bench-tied';
const CONFIG = 'bench-config';
const FLOOR_ANNOTATION = 'bench.config-restarter/floor';
const UNTIED_PREFIX = 'untied-';
/** The unrelated ConfigMap of the noise runs: no label, no annotation, referenced by nothing. */
const NOISE = 'bench-noise';

/** The run settings of func.yaml (`run.envs`): the function runs as deployed. */
function deployedEnv(): Record<string, string> {
  const func = yaml.load(
    readFileSync(path.join(REPO_ROOT, 'functions', 'config-restarter', 'func.yaml'), 'utf8'),
  ) as { run?: { envs?: { name: string; value: string }[] } };
  return Object.fromEntries((func.run?.envs ?? []).map((e) => [e.name, e.value]));
}

/** Annotation keys under the deployed prefix. */
function keys(prefix: string) {
  return {
    optIn: `${prefix}/restartOnTrigger`,
    trigger: `${prefix}/triggerRestart`,
    watch: `${prefix}/watch`,
    restart: `${prefix}/restartTimestamp`,
    hashes: `${prefix}/configHashes`,
  };
}

type Keys = ReturnType<typeof keys>;

/** A minimal Deployment (it never runs: there is no kubelet). */
function deployment(name: string, labels: Record<string, string>, k: Keys): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels, annotations: { [k.optIn]: 'true' } },
    spec: {
      selector: { matchLabels: { workload: name } },
      template: {
        metadata: { labels: { workload: name } },
        spec: { containers: [{ name: 'main', image: 'registry.example/app:1' }] },
      },
    },
  };
}

/** An opted-in ConfigMap: the watch label the shipped source selects on, and the annotation. */
function configMap(name: string, labels: Record<string, string>, k: Keys): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, labels: { ...labels, [k.watch]: 'true' }, annotations: { [k.trigger]: 'true' } },
    data: { V: '0' },
  };
}

interface DeploymentJson {
  metadata: {
    name: string;
    resourceVersion?: string;
    generation?: number;
    annotations?: Record<string, string>;
  };
  spec?: { template?: { metadata?: { annotations?: Record<string, string> } } };
}

/**
 * Follows the Deployments of the namespace through a watch and records, per Deployment and per pod template
 * annotation key, when the annotation took a new value: for the restart annotation, a restart visible to any
 * watcher (e.g. the Deployment controller).
 */
class TemplateAnnotationTracker {
  private readonly values = new Map<string, Map<string, string | undefined>>();
  private readonly changes = new Map<string, bigint[]>();
  private readonly listeners = new Set<() => void>();
  private watch?: CollectionWatch;
  private failure?: Error;

  constructor(
    private readonly admin: KubeTarget,
    private readonly keys: string[],
  ) {}

  async start(): Promise<void> {
    const collection = `/apis/apps/v1/namespaces/${NS}/deployments`;
    const { body } = await kubeRequest<{ metadata: { resourceVersion: string }; items: DeploymentJson[] }>(
      this.admin,
      'GET',
      collection,
    );
    for (const item of body.items) this.values.set(item.metadata.name, this.valuesOf(item));
    this.watch = watchCollection<DeploymentJson>(
      this.admin,
      collection,
      body.metadata.resourceVersion,
      (event) => this.onEvent(event),
      (error) => {
        this.failure = error;
        this.notify();
      },
    );
  }

  stop(): void {
    this.watch?.stop();
  }

  private valuesOf(object: DeploymentJson): Map<string, string | undefined> {
    const annotations = object.spec?.template?.metadata?.annotations ?? {};
    return new Map(this.keys.map((key) => [key, annotations[key]]));
  }

  private onEvent(event: WatchEvent<DeploymentJson>): void {
    const name = event.object.metadata.name;
    if (event.type === 'DELETED') {
      this.values.delete(name);
      for (const key of this.keys) this.changes.delete(`${name}/${key}`);
      return;
    }
    const values = this.valuesOf(event.object);
    const previous = this.values.get(name);
    this.values.set(name, values);
    if (!previous) return;
    for (const [key, value] of values) {
      if (value === undefined || value === previous.get(key)) continue;
      const id = `${name}/${key}`;
      this.changes.set(id, [...(this.changes.get(id) ?? []), event.receivedAt]);
      this.notify();
    }
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Changes of annotation `key` of `name` seen so far. */
  count(name: string, key: string): number {
    return this.changes.get(`${name}/${key}`)?.length ?? 0;
  }

  /** Arrival times of the changes of annotation `key` of `name`. */
  times(name: string, key: string): bigint[] {
    return this.changes.get(`${name}/${key}`) ?? [];
  }

  /** Resolves with the arrival time of change number `index + 1` of annotation `key` of `name`. */
  waitForChange(name: string, key: string, index: number, timeoutMs = 60_000): Promise<bigint> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (this.failure) finish(() => reject(this.failure!));
        const at = this.changes.get(`${name}/${key}`)?.[index];
        if (at !== undefined) finish(() => resolve(at));
      };
      const timer = setTimeout(
        () =>
          finish(() => reject(new Error(`no change of ${key} on ${name} seen within ${timeoutMs / 1000} s`))),
        timeoutMs,
      );
      const finish = (complete: () => void): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
        complete();
      };
      this.listeners.add(check);
      check();
    });
  }
}

/** Everything a phase needs. */
interface Context {
  admin: KubeTarget;
  adminAgent: Agent;
  fnTarget: KubeTarget;
  fnAgent: Agent;
  fnKubeconfig: string;
  sourceKubeconfig: string;
  adapterBinary: string;
  /** The ApiServerSource of knative/ as the adapter's configuration. */
  source: ShippedSource;
  env: Record<string, string>;
  keys: Keys;
  tracker: TemplateAnnotationTracker;
  dir: string;
  log: Log;
  editSeq: number;
}

const paths = {
  configMap: (name: string) => `/api/v1/namespaces/${NS}/configmaps/${name}`,
  configMaps: () => `/api/v1/namespaces/${NS}/configmaps`,
  deployment: (name: string) => `/apis/apps/v1/namespaces/${NS}/deployments/${name}`,
  deployments: () => `/apis/apps/v1/namespaces/${NS}/deployments`,
};

/** The admin edits a ConfigMap's content; resolves when the API server has answered. */
async function editConfigMap(ctx: Context, name: string): Promise<bigint> {
  await kubeRequest(
    ctx.admin,
    'PATCH',
    paths.configMap(name),
    { data: { V: String(++ctx.editSeq) } },
    { contentType: 'application/merge-patch+json', agent: ctx.adminAgent },
  );
  return process.hrtime.bigint();
}

/** Runs `task` over `items` with at most `concurrency` in flight. */
async function pool<T>(items: T[], concurrency: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

/** Creates untied Deployments `untied-<from>` .. `untied-<to - 1>` (opted in, labels of no ConfigMap). */
async function createUntied(ctx: Context, from: number, to: number): Promise<void> {
  const indexes = Array.from({ length: to - from }, (_, i) => from + i);
  await pool(indexes, 24, async (i) => {
    const name = `${UNTIED_PREFIX}${String(i).padStart(5, '0')}`;
    await kubeRequest(
      ctx.admin,
      'POST',
      paths.deployments(),
      deployment(name, { app: `other-${i}`, env: 'bench' }, ctx.keys),
      { agent: ctx.adminAgent, timeoutMs: 60_000 },
    );
  });
}

/** The API floor, two ways. */
export interface FloorResult {
  /** GET + PATCH, until the PATCH's answer. */
  requestsMs: number[];
  /** GET + PATCH, until the bench's watch sees the patched pod template (what the edit latency ends on). */
  watchedMs: number[];
}

/**
 * The API floor: what the same requests cost the bench itself, as the function's ServiceAccount over a
 * keep-alive connection: GET the ConfigMap, then a merge PATCH of the Deployment's pod template and
 * metadata annotations with a resourceVersion precondition (the shape of the function's restart patch).
 * Rounds run back to back; each also waits until the watch has seen its patch.
 */
async function measureFloor(ctx: Context, rounds: number, warmup: number): Promise<FloorResult> {
  let { body } = await kubeRequest<DeploymentJson>(ctx.fnTarget, 'GET', paths.deployment(TIED), undefined, {
    agent: ctx.fnAgent,
  });
  const result: FloorResult = { requestsMs: [], watchedMs: [] };
  for (let i = 0; i < warmup + rounds; i++) {
    const stamp = `${i}-${new Date().toISOString()}`;
    const seen = ctx.tracker.count(TIED, FLOOR_ANNOTATION);
    const start = process.hrtime.bigint();
    await kubeRequest(ctx.fnTarget, 'GET', paths.configMap(CONFIG), undefined, { agent: ctx.fnAgent });
    ({ body } = await kubeRequest<DeploymentJson>(
      ctx.fnTarget,
      'PATCH',
      paths.deployment(TIED),
      {
        metadata: {
          resourceVersion: body.metadata.resourceVersion,
          annotations: { [FLOOR_ANNOTATION]: stamp },
        },
        spec: { template: { metadata: { annotations: { [FLOOR_ANNOTATION]: stamp } } } },
      },
      { contentType: 'application/merge-patch+json', agent: ctx.fnAgent },
    ));
    const answered = process.hrtime.bigint();
    const watched = await ctx.tracker.waitForChange(TIED, FLOOR_ANNOTATION, seen);
    if (i < warmup) continue;
    result.requestsMs.push(msBetween(start, answered));
    result.watchedMs.push(msBetween(start, watched));
  }
  return result;
}

/** POSTs one event on a new connection (as a first delivery would); resolves with the status. */
function postEvent(url: string, wire: { headers: Record<string, string>; body: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: wire.headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(wire.body);
  });
}

/**
 * Cold start: the ConfigMap is edited while no function runs, then a new function process is spawned and the
 * event of that edit is posted to it (retried every 5 ms while it is not listening or not answering 2xx),
 * as the first request a scaled-from-zero instance gets. Measures spawn -> first 2xx answer.
 */
async function measureColdStarts(ctx: Context, runs: number): Promise<ColdStartResult> {
  const result: ColdStartResult = { answeredMs: [], restartVisibleMs: [], earlyAnswers: {} };
  const wire = apiServerSourceRequest({
    action: 'update',
    mode: 'Reference',
    object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: CONFIG, namespace: NS } },
  });
  for (let run = 0; run < runs; run++) {
    await editConfigMap(ctx, CONFIG);
    const seen = ctx.tracker.count(TIED, ctx.keys.restart);
    const fn = await startFunction({
      kubeconfig: ctx.fnKubeconfig,
      logFile: path.join(ctx.dir, `config-restarter-cold-${run}.log`),
      env: ctx.env,
      waitUntilReady: false,
    });
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        let outcome: string;
        try {
          const status = await postEvent(fn.url, wire);
          if (status >= 200 && status < 300) break;
          outcome = `HTTP ${status}`;
        } catch (error) {
          outcome = (error as NodeJS.ErrnoException).code ?? 'error';
        }
        result.earlyAnswers[outcome] = (result.earlyAnswers[outcome] ?? 0) + 1;
        if (Date.now() > deadline)
          throw new Error(`cold start: no 2xx answer within 30 s (last: ${outcome})`);
        await sleep(5);
      }
      result.answeredMs.push(msBetween(fn.spawnedAt, process.hrtime.bigint()));
      const restartAt = await ctx.tracker.waitForChange(TIED, ctx.keys.restart, seen, 30_000);
      result.restartVisibleMs.push(msBetween(fn.spawnedAt, restartAt));
    } finally {
      await fn.stop();
    }
  }
  return result;
}

/**
 * Starts the function (waits for readiness) and the real adapter with the function as its sink, configured like
 * the shipped ApiServerSource (or with other `resources`).
 */
async function startPipeline(
  ctx: Context,
  label: string,
  resources: AdapterResource[] = ctx.source.resources,
): Promise<{ fn: FunctionProcess; adapter: ApiServerSourceAdapter }> {
  const fn = await startFunction({
    kubeconfig: ctx.fnKubeconfig,
    logFile: path.join(ctx.dir, `config-restarter-${label}.log`),
    env: ctx.env,
  });
  const adapter = await startApiServerSourceAdapter({
    binary: ctx.adapterBinary,
    kubeconfig: ctx.sourceKubeconfig,
    namespace: NS,
    name: ctx.source.name,
    sink: fn.url,
    mode: ctx.source.mode,
    resources,
    logFile: path.join(ctx.dir, `adapter-${label}.log`),
  });
  try {
    await adapter.waitUntilWatching();
  } catch (error) {
    await adapter.stop();
    await fn.stop();
    throw error;
  }
  return { fn, adapter };
}

/** Edits the tied ConfigMap `count` times, one at a time, each waiting for its restart; returns latencies. */
async function spacedEdits(ctx: Context, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const seen = ctx.tracker.count(TIED, ctx.keys.restart);
    const answered = await editConfigMap(ctx, CONFIG);
    const restarted = await ctx.tracker.waitForChange(TIED, ctx.keys.restart, seen);
    latencies.push(msBetween(answered, restarted));
    // Let the adapter get its answer and the function go idle before the next edit.
    await sleep(50);
  }
  return latencies;
}

const burstNames = (count: number): string[] => Array.from({ length: count }, (_, i) => `burst-${i}`);

/**
 * The burst: `edits` edits spread over `configMaps` ConfigMaps (each tied to one Deployment), sent as fast as
 * the admin can (one editor per ConfigMap, each edit after the previous answer), through the adapter.
 */
async function burst(
  ctx: Context,
  fn: FunctionProcess,
  n: number,
  edits: number,
  configMaps: number,
): Promise<BurstResult> {
  const names = burstNames(configMaps);
  for (const name of names) {
    const labels = { app: name, env: 'bench' };
    await kubeRequest(ctx.admin, 'POST', paths.deployments(), deployment(name, labels, ctx.keys), {
      agent: ctx.adminAgent,
    });
    await kubeRequest(ctx.admin, 'POST', paths.configMaps(), configMap(name, labels, ctx.keys), {
      agent: ctx.adminAgent,
    });
  }
  // The ConfigMaps' add events, and whatever they cause, are over before the burst starts.
  await settle(() => fn.eventsHandled(), 1_500);
  await sleep(500);
  const eventsBefore = await fn.eventsHandled();
  const restartsBefore = names.map((name) => ctx.tracker.count(name, ctx.keys.restart));
  const perConfigMap = Math.ceil(edits / configMaps);
  const start = process.hrtime.bigint();
  await Promise.all(
    names.map(async (name, i) => {
      const mine = Math.min(perConfigMap, edits - i * perConfigMap);
      for (let e = 0; e < mine; e++) await editConfigMap(ctx, name);
    }),
  );
  const editsDone = process.hrtime.bigint();
  // Every edit is one watch event for the adapter, so one CloudEvent for the function.
  let eventsAt = process.hrtime.bigint();
  let handled = eventsBefore;
  let lastProgress = Date.now();
  while (handled - eventsBefore < edits && Date.now() - lastProgress < 30_000) {
    await sleep(100);
    const now = await fn.eventsHandled();
    eventsAt = process.hrtime.bigint();
    if (now !== handled) [handled, lastProgress] = [now, Date.now()];
  }
  // Restarts still in flight after the last answer are waited for too.
  await sleep(2_000);
  const restartsPerDeployment = names.map(
    (name, i) => ctx.tracker.count(name, ctx.keys.restart) - restartsBefore[i]!,
  );
  const lastRestart = names
    .flatMap((name) => ctx.tracker.times(name, ctx.keys.restart))
    .reduce((a, b) => (b > a ? b : a), start);
  let staleRecords = 0;
  for (const name of names) {
    const { body: cm } = await kubeRequest<{ data?: Record<string, string> }>(
      ctx.admin,
      'GET',
      paths.configMap(name),
    );
    const { body: d } = await kubeRequest<DeploymentJson>(ctx.admin, 'GET', paths.deployment(name));
    const record = d.metadata.annotations?.[ctx.keys.hashes] ?? '';
    if (!record.includes(contentHash('ConfigMap', cm))) staleRecords++;
  }
  return {
    n,
    edits,
    configMaps,
    editSeconds: msBetween(start, editsDone) / 1000,
    eventsHandled: handled - eventsBefore,
    eventsSeconds: msBetween(start, eventsAt) / 1000,
    restartsSeconds: msBetween(start, lastRestart) / 1000,
    restartsPerDeployment,
    editsPerConfigMap: perConfigMap,
    staleRecords,
  };
}

/**
 * Writes the unrelated ConfigMap once a second for `seconds` while the pipeline runs, and counts the events the
 * function handled (`config_restarter_events_total`) once the adapter has delivered everything.
 */
async function noiseRun(
  ctx: Context,
  label: string,
  resources: AdapterResource[],
  seconds: number,
): Promise<{ writes: number; events: number }> {
  const { fn, adapter } = await startPipeline(ctx, label, resources);
  try {
    const before = await fn.eventsHandled();
    const start = Date.now();
    let writes = 0;
    while (writes < seconds) {
      await editConfigMap(ctx, NOISE);
      writes++;
      await sleep(Math.max(0, start + writes * 1000 - Date.now()));
    }
    const after = await settle(() => fn.eventsHandled(), 2_000);
    return { writes, events: after - before };
  } finally {
    await adapter.stop();
    await fn.stop();
  }
}

/**
 * Events delivered to the function while an unrelated, unlabelled ConfigMap is written once a second: with the
 * source as shipped (selector on the watch label) and with the same source without a selector (as before).
 */
async function measureNoise(ctx: Context, n: number, seconds: number): Promise<NoiseResult> {
  await kubeRequest(ctx.admin, 'POST', paths.configMaps(), {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: NOISE },
    data: { V: '0' },
  });
  try {
    const unselected = ctx.source.resources.map(({ selector: _selector, ...resource }) => resource);
    ctx.log(`N=${n}: noise, source without a selector, ${seconds} s`);
    const withoutSelector = await noiseRun(ctx, 'noise-unselected', unselected, seconds);
    ctx.log(`N=${n}: noise, source as shipped, ${seconds} s`);
    const withSelector = await noiseRun(ctx, 'noise-selected', ctx.source.resources, seconds);
    return {
      n,
      seconds,
      selector: ctx.source.resources.map((r) => `${r.resource}: ${r.selector ?? 'none'}`).join('; '),
      unselected: withoutSelector,
      selected: withSelector,
    };
  } finally {
    await kubeRequest(ctx.admin, 'DELETE', paths.configMap(NOISE), undefined, { allowStatus: [404] });
  }
}

/** Removes the burst's objects, so that the next sizes count only untied Deployments and the tied one. */
async function deleteBurstObjects(ctx: Context, configMaps: number): Promise<void> {
  for (const name of burstNames(configMaps)) {
    await kubeRequest(ctx.admin, 'DELETE', paths.configMap(name), undefined, { allowStatus: [404] });
    await kubeRequest(ctx.admin, 'DELETE', paths.deployment(name), undefined, { allowStatus: [404] });
  }
}

/** Measures one size: the floor, then the function fed by the adapter through spaced edits. */
async function measureSize(
  ctx: Context,
  n: number,
  createSeconds: number,
  options: ClusterBenchOptions,
): Promise<{ result: SizeResult; burst?: BurstResult }> {
  const start = Date.now();
  ctx.log(`N=${n}: API floor`);
  const floor = await measureFloor(ctx, options.edits, options.warmup);
  ctx.log(`N=${n}: starting the function and the adapter`);
  const { fn, adapter } = await startPipeline(ctx, `n${n}`);
  const runBurst = n === options.burstAt && options.burstEdits > 0;
  let burstResult: BurstResult | undefined;
  try {
    // Idle: started, ready, no event yet.
    await sleep(2_000);
    const idleRss = readRssBytes(fn.pid);
    const sampler = sampleRss(fn.pid);
    ctx.log(`N=${n}: ${options.warmup} + ${options.edits} spaced edits`);
    const warmupMs = await spacedEdits(ctx, options.warmup);
    const cpuBefore = readCpuMs(fn.pid);
    const latenciesMs = await spacedEdits(ctx, options.edits);
    const cpuPerEditMs = (readCpuMs(fn.pid) - cpuBefore) / options.edits;
    const rssSamples = sampler.stop();
    if (runBurst) {
      ctx.log(`N=${n}: burst of ${options.burstEdits} edits over ${options.burstConfigMaps} ConfigMaps`);
      burstResult = await burst(ctx, fn, n, options.burstEdits, options.burstConfigMaps);
    }
    const result: SizeResult = {
      n,
      createSeconds,
      floor,
      warmupMs,
      latenciesMs,
      idleRss,
      rssSamples,
      cpuPerEditMs,
      seconds: (Date.now() - start) / 1000,
    };
    return { result, burst: burstResult };
  } finally {
    await adapter.stop();
    await fn.stop();
    if (runBurst) await deleteBurstObjects(ctx, options.burstConfigMaps);
  }
}

function describeMachine(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';
  return (
    `${model}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB RAM, ${os.type()} ${os.release()}, ` +
    `Node ${process.version}, kube-apiserver ${COMPONENTS.kubeApiserver.version}, etcd ${COMPONENTS.etcd.version}, ` +
    `ApiServerSource adapter knative.dev/eventing ${COMPONENTS.apiserverAdapter.version}`
  );
}

/** Runs the whole cluster scenario; the control plane is started fresh in `options.dir` and stopped at the end. */
export async function runClusterBench(options: ClusterBenchOptions): Promise<ClusterBenchResult> {
  const runStart = Date.now();
  const phases: { name: string; seconds: number }[] = [];
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const start = Date.now();
    try {
      return await work();
    } finally {
      phases.push({ name, seconds: (Date.now() - start) / 1000 });
    }
  };
  const { log } = options;
  const quiet: Log = () => undefined;
  await stopCluster(options.dir, quiet);
  const adapterBinary = await ensureBinary('apiserverAdapter', log);
  const cluster = await timed('start etcd + kube-apiserver + CRDs', () =>
    // No controllers: with 10,000 Deployments they would create as many ReplicaSets and Pods, and the API
    // server's load would no longer be the function's.
    startCluster({ dir: options.dir, log, detached: false, controllers: false }),
  );
  try {
    const env = deployedEnv();
    const k = keys(env.ANNOTATION_PREFIX ?? 'rolling.restart.controller');
    const admin = readKubeconfig(cluster.kubeconfig);
    const fnKubeconfig = path.join(options.dir, 'config-restarter.kubeconfig');
    const sourceKubeconfig = path.join(options.dir, 'config-restarter-source.kubeconfig');
    await timed('apply knative/ (namespace, ServiceAccounts, RBAC, sources)', async () => {
      await applyKustomization(cluster.kubeconfig, 'knative');
      await writeServiceAccountKubeconfig(cluster.kubeconfig, fnKubeconfig, NS, 'config-restarter');
      await writeServiceAccountKubeconfig(
        cluster.kubeconfig,
        sourceKubeconfig,
        NS,
        'config-restarter-source',
      );
    });
    const fnTarget = readKubeconfig(fnKubeconfig);
    const ctx: Context = {
      admin,
      adminAgent: keepAliveAgent(admin, 32),
      fnTarget,
      fnAgent: keepAliveAgent(fnTarget, 4),
      fnKubeconfig,
      sourceKubeconfig,
      adapterBinary,
      source: await shippedSource('knative'),
      env,
      keys: k,
      tracker: new TemplateAnnotationTracker(admin, [k.restart, FLOOR_ANNOTATION]),
      dir: options.dir,
      log,
      editSeq: 0,
    };
    const labels = { app: TIED, env: 'bench' };
    await kubeRequest(admin, 'POST', paths.deployments(), deployment(TIED, labels, k));
    await kubeRequest(admin, 'POST', paths.configMaps(), configMap(CONFIG, labels, k));
    await ctx.tracker.start();
    const result: ClusterBenchResult = { sizes: [], phases, totalSeconds: 0, machine: describeMachine() };
    let created = 0;
    try {
      for (const n of options.sizes) {
        const createStart = Date.now();
        if (n > created) {
          log(`creating ${n - created} untied Deployments (N=${n})`);
          await timed(`create ${n - created} Deployments (N=${n})`, () => createUntied(ctx, created, n));
          created = n;
        }
        const createSeconds = (Date.now() - createStart) / 1000;
        if (n === options.sizes[0] && options.coldStarts > 0) {
          log(`N=${n}: ${options.coldStarts} cold starts`);
          result.coldStart = await timed(`cold starts (N=${n})`, () =>
            measureColdStarts(ctx, options.coldStarts),
          );
        }
        if (n === options.sizes[0] && options.noiseSeconds > 0) {
          result.noise = await timed(`noise (N=${n})`, () => measureNoise(ctx, n, options.noiseSeconds));
        }
        const measured = await timed(`measure N=${n}`, () => measureSize(ctx, n, createSeconds, options));
        result.sizes.push(measured.result);
        if (measured.burst) result.burst = measured.burst;
        log(
          `N=${n}: p50 ${percentile(measured.result.latenciesMs, 50).toFixed(1)} ms, ` +
            `floor p50 ${percentile(measured.result.floor.requestsMs, 50).toFixed(1)} ms, ` +
            `RSS idle ${mb(measured.result.idleRss)}`,
        );
      }
    } finally {
      ctx.tracker.stop();
      ctx.adminAgent.destroy();
      ctx.fnAgent.destroy();
    }
    result.totalSeconds = (Date.now() - runStart) / 1000;
    return result;
  } finally {
    await stopCluster(options.dir, quiet);
  }
}
