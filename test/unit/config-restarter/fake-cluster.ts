/**
 * An in-memory stand-in for the one module that talks to the API server (`ClusterClient`), for unit
 * tests only: it keeps resourceVersions, answers 409 on stale preconditions, applies merge patches,
 * and can be told to fail. The integration suite runs the real module against a real API server.
 */
import {
  KubeApiError,
  type ClusterClient,
  type ListOptions,
  type ListResult,
  type WatchEventType,
  type WatchHandle,
  type WatchOptions,
} from '../../../functions/config-restarter/src/kube.js';
import { CONFIG_KIND_SPECS } from '../../../functions/config-restarter/src/config-kinds.js';
import type { DecisionSettings, MergePatch } from '../../../functions/config-restarter/src/decision-types.js';
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import type { TokenReviewer } from '../../../functions/config-restarter/src/auth.js';
import { loadConfig, type Config, type ConfigKind } from '../../../functions/config-restarter/src/config.js';
import { silentLogger, type Logger } from '../../../functions/config-restarter/src/log.js';
import type { Metrics } from '../../../functions/config-restarter/src/metrics.js';
import type { Restarter } from '../../../functions/config-restarter/src/restarter.js';
import {
  createRuntime,
  type Runtime,
  type RuntimeOptions,
} from '../../../functions/config-restarter/src/runtime.js';
import { WorkloadIndex } from '../../../functions/config-restarter/src/workload-index.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import type { ConfigObject, KubeObject } from '../../../functions/config-restarter/src/model.js';
import type { WorkloadKind } from '../../../functions/config-restarter/src/workload-kinds.js';

/** Why a watch ended, as the real client reports it. */
type WatchEnd = Awaited<WatchHandle['ended']>;

type Verb = 'get' | 'list' | 'patch' | 'watch' | 'create';

interface Watcher {
  resource: string;
  namespace: string | undefined;
  options: WatchOptions;
  end: (end: WatchEnd) => void;
}

/** A failure to inject: the next matching call throws it. */
export interface InjectedFailure {
  verb: Verb;
  resource?: string;
  status: number;
  times?: number;
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete (base as Record<string, unknown>)[key];
    else (base as Record<string, unknown>)[key] = mergePatch((base as Record<string, unknown>)[key], value);
  }
  return base;
}

export class FakeCluster implements ClusterClient {
  private revision = 100;
  readonly objects = new Map<string, KubeObject>();
  readonly calls: {
    verb: Verb;
    resource: string;
    namespace?: string;
    name?: string;
    dryRun?: boolean;
    labelSelector?: string;
  }[] = [];
  readonly failures: InjectedFailure[] = [];
  /** Kubernetes Events created, in order. */
  readonly events: KubeObject[] = [];
  /** Called before a patch is applied: lets a test interleave a concurrent writer. */
  beforePatch?: (resource: string, namespace: string, name: string) => void;
  /** Resources (`plural.group`) discovery says are not served. */
  readonly unserved = new Set<string>();
  /** Every change, for watches that start from an older resourceVersion. */
  private readonly history: { resource: string; type: WatchEventType; object: KubeObject }[] = [];
  private readonly watchers = new Set<Watcher>();
  /** While true, changes are not sent to watches (a lagging watch); {@link resumeWatches} sends them. */
  pauseWatches = false;
  private readonly pending: { resource: string; type: WatchEventType; object: KubeObject }[] = [];

  private notify(resource: string, type: WatchEventType, object: KubeObject): void {
    const event = { resource, type, object: structuredClone(object) };
    this.history.push(event);
    if (this.pauseWatches) {
      this.pending.push(event);
      return;
    }
    this.deliver(event);
  }

  private deliver(event: { resource: string; type: WatchEventType; object: KubeObject }): void {
    for (const watcher of this.watchers) {
      const namespace = event.object.metadata?.namespace;
      if (watcher.resource !== event.resource) continue;
      if (watcher.namespace !== undefined && watcher.namespace !== namespace) continue;
      watcher.options.onEvent(event.type, structuredClone(event.object));
    }
  }

  /** Sends the changes held back while {@link pauseWatches} was true. */
  resumeWatches(): void {
    this.pauseWatches = false;
    for (const event of this.pending.splice(0)) this.deliver(event);
  }

  /** Ends every watch as the API server does when a watch's resourceVersion is too old (410 Gone). */
  expireWatches(): void {
    for (const watcher of [...this.watchers]) watcher.end({ reason: 'expired' });
  }

  /** Deletes an object, as an admin would. */
  remove(resource: string, namespace: string, name: string): void {
    const object = this.read(resource, namespace, name);
    if (!object) return;
    this.objects.delete(this.key(resource, namespace, name));
    this.notify(resource, 'DELETED', {
      ...object,
      metadata: { ...object.metadata, resourceVersion: String(++this.revision) },
    });
  }

  private key(resource: string, namespace: string, name: string): string {
    return `${resource}/${namespace}/${name}`;
  }

  private fail(verb: Verb, resource: string, namespace?: string, name?: string): void {
    const index = this.failures.findIndex((f) => f.verb === verb && (!f.resource || f.resource === resource));
    if (index < 0) return;
    const failure = this.failures[index]!;
    if (failure.times === undefined || --failure.times <= 0) this.failures.splice(index, 1);
    throw new KubeApiError(
      failure.status,
      verb,
      resource,
      namespace,
      name,
      `injected HTTP ${failure.status}`,
    );
  }

  /** Creates or replaces an object (as an admin would), bumping its resourceVersion. */
  put(resource: string, object: KubeObject): KubeObject {
    const meta = object.metadata!;
    const stored = structuredClone(object);
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.revision), generation: 1 };
    const previous = this.objects.get(this.key(resource, meta.namespace!, meta.name!));
    if (previous) {
      stored.metadata.generation = (previous.metadata?.generation ?? 1) + 1;
      stored.metadata.uid = previous.metadata?.uid;
    }
    stored.metadata.uid ??= `uid-${meta.name}`;
    this.objects.set(this.key(resource, meta.namespace!, meta.name!), stored);
    this.notify(resource, previous ? 'MODIFIED' : 'ADDED', stored);
    return stored;
  }

  read(resource: string, namespace: string, name: string): KubeObject | undefined {
    return this.objects.get(this.key(resource, namespace, name));
  }

  private configResource(kind: string): string {
    return CONFIG_KIND_SPECS[kind as ConfigKind].plural;
  }

  getConfig(ref: { kind: string; namespace: string; name: string }): Promise<ConfigObject | undefined> {
    const resource = this.configResource(ref.kind);
    this.calls.push({ verb: 'get', resource, namespace: ref.namespace, name: ref.name });
    this.fail('get', resource, ref.namespace, ref.name);
    const object: ConfigObject | undefined = structuredClone(this.read(resource, ref.namespace, ref.name));
    return Promise.resolve(object);
  }

  listConfigs(kind: string, namespace: string | undefined): Promise<ConfigObject[]> {
    const resource = this.configResource(kind);
    this.calls.push({ verb: 'list', resource, namespace });
    this.fail('list', resource, namespace);
    return Promise.resolve(this.list(resource, namespace) as ConfigObject[]);
  }

  private list(resource: string, namespace: string | undefined): KubeObject[] {
    return [...this.objects.entries()]
      .filter(([key]) => key.startsWith(namespace ? `${resource}/${namespace}/` : `${resource}/`))
      .map(([, object]) => structuredClone(object));
  }

  serves(kind: WorkloadKind): Promise<boolean> {
    return Promise.resolve(!this.unserved.has(`${kind.plural}.${kind.group}`));
  }

  listWorkloads<T>(
    kind: WorkloadKind,
    namespace: string | undefined,
    options: ListOptions<T>,
  ): Promise<ListResult<T>> {
    const resource = `${kind.plural}.${kind.group}`;
    const labelSelector = options.labelSelector;
    this.calls.push({ verb: 'list', resource, namespace, labelSelector });
    this.fail('list', resource, namespace);
    const items = this.list(resource, namespace)
      .filter((object) => this.selects(labelSelector, object))
      .map((object) => options.map(object));
    return Promise.resolve({ items, resourceVersion: String(this.revision) });
  }

  /** Equality terms only (`a=b,c=d`): enough for the tests. */
  private selects(labelSelector: string | undefined, object: KubeObject): boolean {
    const terms = (labelSelector ?? '')
      .split(',')
      .filter(Boolean)
      .map((term) => term.split('='));
    return terms.every(([key, value]) => object.metadata?.labels?.[key!] === value);
  }

  watchWorkloads(kind: WorkloadKind, namespace: string | undefined, options: WatchOptions): WatchHandle {
    const resource = `${kind.plural}.${kind.group}`;
    this.calls.push({ verb: 'watch', resource, namespace });
    let end: (value: WatchEnd) => void = () => undefined;
    const ended = new Promise<WatchEnd>((resolve) => {
      end = resolve;
    });
    const selected: WatchOptions = {
      ...options,
      onEvent: (type, object) => {
        if (this.selects(options.labelSelector, object)) options.onEvent(type, object);
      },
    };
    const watcher: Watcher = {
      resource,
      namespace,
      options: selected,
      end: (value) => {
        this.watchers.delete(watcher);
        end(value);
      },
    };
    // Replay what happened after the list the watch starts from.
    const since = Number(options.resourceVersion || '0');
    for (const event of this.history) {
      if (event.resource !== resource || Number(event.object.metadata?.resourceVersion) <= since) continue;
      if (namespace !== undefined && event.object.metadata?.namespace !== namespace) continue;
      selected.onEvent(event.type, structuredClone(event.object));
    }
    this.watchers.add(watcher);
    return { ended, stop: () => watcher.end({ reason: 'closed' }) };
  }

  getWorkload(kind: WorkloadKind, namespace: string, name: string): Promise<KubeObject | undefined> {
    const resource = `${kind.plural}.${kind.group}`;
    this.calls.push({ verb: 'get', resource, namespace, name });
    this.fail('get', resource, namespace, name);
    return Promise.resolve(structuredClone(this.read(resource, namespace, name)));
  }

  patchWorkload(
    kind: WorkloadKind,
    namespace: string,
    name: string,
    patch: MergePatch,
    options: { dryRun: boolean; signal?: AbortSignal | undefined },
  ): Promise<KubeObject> {
    const resource = `${kind.plural}.${kind.group}`;
    this.calls.push({ verb: 'patch', resource, namespace, name, dryRun: options.dryRun });
    this.beforePatch?.(resource, namespace, name);
    this.fail('patch', resource, namespace, name);
    const current = this.read(resource, namespace, name);
    if (!current) throw new KubeApiError(404, 'patch', resource, namespace, name, 'not found');
    const wanted = patch.metadata.resourceVersion;
    if (wanted && wanted !== current.metadata?.resourceVersion) {
      throw new KubeApiError(409, 'patch', resource, namespace, name, 'the object has been modified');
    }
    const { resourceVersion: _rv, ...metadataPatch } = patch.metadata;
    const next = mergePatch(current, { ...patch, metadata: metadataPatch }) as KubeObject;
    if (options.dryRun) return Promise.resolve(next);
    const templateChanged = JSON.stringify(next.spec) !== JSON.stringify(current.spec);
    next.metadata = {
      ...next.metadata,
      resourceVersion: String(++this.revision),
      generation: (current.metadata?.generation ?? 1) + (templateChanged ? 1 : 0),
    };
    this.objects.set(this.key(resource, namespace, name), next);
    this.notify(resource, 'MODIFIED', next);
    return Promise.resolve(structuredClone(next));
  }

  createEvent(event: KubeObject & { metadata: { namespace: string } }): Promise<void> {
    const { namespace, name } = event.metadata;
    this.calls.push({ verb: 'create', resource: 'events', namespace, name });
    this.fail('create', 'events', namespace, name);
    this.events.push(structuredClone(event));
    return Promise.resolve();
  }

  /** Sets a workload's status, as its controller would (a status write: resourceVersion moves, not generation). */
  setStatus(resource: string, namespace: string, name: string, status: Record<string, unknown>): void {
    const current = this.read(resource, namespace, name);
    if (!current) throw new Error(`no ${resource} ${namespace}/${name}`);
    const next = {
      ...current,
      status,
      metadata: { ...current.metadata, resourceVersion: String(++this.revision) },
    };
    this.objects.set(this.key(resource, namespace, name), next);
    this.notify(resource, 'MODIFIED', next);
  }
}

/** A workload manifest for tests. */
export function workload(
  kind: 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'Service' | 'CronJob' | 'Rollout',
  name: string,
  options: {
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    podSpec?: Record<string, unknown>;
    templateAnnotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string }[];
    optIn?: boolean;
    /** A Rollout that takes its template from a Deployment. */
    workloadRef?: string;
  } = {},
): KubeObject {
  const template = {
    metadata: {
      labels: options.labels ?? {},
      ...(options.templateAnnotations ? { annotations: options.templateAnnotations } : {}),
    },
    spec: options.podSpec ?? { containers: [{}] },
  };
  const spec =
    kind === 'CronJob'
      ? { schedule: '*/5 * * * *', jobTemplate: { spec: { template } } }
      : kind === 'Rollout' && options.workloadRef
        ? { workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: options.workloadRef } }
        : { template };
  return {
    apiVersion: API_VERSION[kind],
    kind,
    metadata: {
      name,
      namespace: options.namespace ?? 'helloworld',
      labels: options.labels ?? {},
      annotations: {
        ...(options.optIn === false ? {} : { 'rolling.restart.controller/restartOnTrigger': 'true' }),
        ...options.annotations,
      },
      ...(options.ownerReferences ? { ownerReferences: options.ownerReferences } : {}),
    },
    spec,
  };
}

const API_VERSION: Record<string, string> = {
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  Service: 'serving.knative.dev/v1',
  CronJob: 'batch/v1',
  Rollout: 'argoproj.io/v1alpha1',
};

/** Resource name (`plural.group`) of a workload kind name. */
export const RESOURCE: Record<string, string> = {
  Deployment: 'deployments.apps',
  StatefulSet: 'statefulsets.apps',
  DaemonSet: 'daemonsets.apps',
  Service: 'services.serving.knative.dev',
  CronJob: 'cronjobs.batch',
  Rollout: 'rollouts.argoproj.io',
};

/** A ConfigMap manifest for tests. */
export function configMap(
  name: string,
  data: Record<string, string>,
  options: { namespace?: string; labels?: Record<string, string>; optIn?: boolean } = {},
): ConfigObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace: options.namespace ?? 'helloworld',
      labels: options.labels ?? {},
      annotations: options.optIn === false ? {} : { 'rolling.restart.controller/triggerRestart': 'true' },
    },
    data,
  };
}

/** A started warm index over a fake cluster, as the function builds it. */
export function startIndex(
  cluster: ClusterClient,
  settings: DecisionSettings & { namespaces?: string[] | undefined; labelSelector?: string },
): WorkloadIndex {
  const index = new WorkloadIndex({
    client: cluster,
    kinds: WORKLOAD_KINDS,
    namespaces: 'namespaces' in settings ? settings.namespaces : ['helloworld'],
    labelSelector: settings.labelSelector,
    matchLabels: settings.matchLabels,
    summarize: (kind, object) => summarizeWorkload(settings, kind, object),
    logger: silentLogger,
    backoffMs: { initial: 5, max: 20 },
  });
  index.start();
  return index;
}

/** Runtimes started by {@link startRestarter}; {@link stopStarted} stops them (call it in `afterEach`). */
const started: Runtime[] = [];

/** Stops every runtime {@link startRestarter} started. */
export function stopStarted(): void {
  for (const runtime of started.splice(0)) runtime.stop();
}

/**
 * The function's settings as the unit tests run it: `loadConfig`'s defaults (ConfigMaps, `MATCH_LABELS`
 * app,env, 4 patches at a time, the own namespace `helloworld`) with a 1 s API deadline, and `overrides`.
 */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ API_TIMEOUT_MS: '1000' }), ...overrides };
}

/**
 * The function over `cluster`, built by the composition root as `main` builds it, with its warm index
 * synced. `startupCalls` are the index's own lists and watches; `cluster.calls` then holds only what
 * events cause.
 */
export async function startRestarter(
  cluster: FakeCluster,
  overrides: Partial<Config> = {},
  options: RuntimeOptions & { logger?: Logger; reviewTokens?: TokenReviewer } = {},
): Promise<{
  runtime: Runtime;
  restarter: Restarter;
  index: WorkloadIndex;
  metrics: Metrics;
  startupCalls: FakeCluster['calls'];
}> {
  const { logger = silentLogger, reviewTokens, ...tuning } = options;
  const runtime = createRuntime(
    testConfig(overrides),
    { client: cluster, ownNamespace: 'helloworld', reviewTokens },
    logger,
    { indexBackoffMs: { initial: 5, max: 20 }, ...tuning },
  );
  started.push(runtime);
  runtime.start();
  await runtime.index.whenSynced(undefined, AbortSignal.timeout(5_000));
  const startupCalls = cluster.calls.splice(0);
  const { restarter, index, metrics } = runtime;
  return { runtime, restarter, index, metrics, startupCalls };
}
