/**
 * The warm index: a compact, watch-fed view of the workloads of the watched namespaces, so an event is
 * decided from memory instead of listing every workload again. Each entry is a {@link WorkloadSummary}
 * (a few fields, not the object), found by the config objects it references and by its `MATCH_LABELS`
 * values. The API server stays the truth: patches carry the entry's resourceVersion as a precondition and
 * a conflict refreshes the entry (see settle.ts).
 *
 * One shard per (workload kind, namespace) - or per kind for all namespaces - runs list, then watch from
 * the list's resourceVersion; a watch the server closes is resumed from the last version seen, an expired
 * one (410 Gone) relists. Kinds the API server does not serve (discovery) are checked again later.
 */
import { CONFIG_KIND_LIST } from './config-kinds.js';
import { KubeApiError, type ClusterClient, type WatchEnd } from './kube.js';
import type { Logger } from './log.js';
import type { ConfigRef, KubeObject } from './model.js';
import { configKey } from './records.js';
import { qualifiedKind, type WorkloadKind } from './workload-kinds.js';
import { labelTuple, type WorkloadSummary } from './workload-summary.js';

/** An index entry: the summary and when this process observed it (see {@link WorkloadIndex.tick}). */
export interface Observed {
  summary: WorkloadSummary;
  observedAt: number;
}

/** Why a shard listed its workloads. */
export type RelistReason = 'initial' | 'expired' | 'failed';

/** State of the index, for readiness and metrics. */
export interface IndexState {
  /** Every shard has listed at least once (or found its kind not served). */
  synced: boolean;
  /** Workloads held. */
  workloads: number;
  /** Time of the latest list, ISO 8601. */
  lastRelist: string | undefined;
  shards: { kind: string; namespace: string; state: ShardState; workloads: number; error?: string }[];
}

/**
 * `pending`: not listed yet; `watching`: listed and following; `retrying`: the last call failed;
 * `unserved`: the API server does not serve the kind; `forbidden`: a kind whose RBAC comes from an
 * optional component was denied (left out, checked again later).
 */
export type ShardState = 'pending' | 'watching' | 'retrying' | 'unserved' | 'forbidden';

/** Options of {@link WorkloadIndex}. */
export interface WorkloadIndexOptions {
  client: ClusterClient;
  kinds: readonly WorkloadKind[];
  /** The namespaces to follow; undefined = all namespaces (one cluster-wide shard per kind). */
  namespaces: readonly string[] | undefined;
  /** Label selector applied by the API server (`WORKLOAD_SELECTOR`). */
  labelSelector?: string | undefined;
  /** Label keys that tie workloads to config objects (`MATCH_LABELS`). */
  matchLabels: readonly string[];
  summarize(kind: WorkloadKind, object: KubeObject): WorkloadSummary;
  logger: Logger;
  /** Server-side lifetime of one watch request. Default 300 s (with jitter). */
  watchTimeoutSeconds?: number;
  /** How soon a kind that is not served is looked up again. Default 60 s. */
  unservedRecheckMs?: number;
  /** Backoff after a failed list or watch: first and longest wait. Default 500 ms .. 30 s. */
  backoffMs?: { initial: number; max: number };
  /** Called on every list (metrics). */
  onRelist?: (reason: RelistReason) => void;
}

interface Shard {
  kind: WorkloadKind;
  /** undefined = all namespaces. */
  namespace: string | undefined;
  state: ShardState;
  ids: Set<string>;
  resourceVersion: string;
  lastError: KubeApiError | undefined;
  /** Listed at least once, or found its kind not served. */
  everSynced: boolean;
  /** Resolved once the shard listed at least once (or found its kind not served). */
  synced: Promise<void>;
  markSynced: () => void;
  /** Resolved at every failed attempt before the first sync, so waiting events can answer at once. */
  attempted: Promise<void>;
  markAttempted: () => void;
}

function entryId(kind: WorkloadKind, namespace: string, name: string): string {
  return `${qualifiedKind(kind)}\u0000${namespace}\u0000${name}`;
}

/** True when `incoming` is an older resourceVersion than `current` (only decidable for numbers). */
function isOlder(incoming: string, current: string): boolean {
  return /^\d+$/.test(incoming) && /^\d+$/.test(current) && BigInt(incoming) < BigInt(current);
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    timer.unref();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** The watch-fed index of workloads. */
export class WorkloadIndex {
  private readonly entries = new Map<string, Observed>();
  /** `namespace\0configmap/name` -> ids of the workloads whose pod template references it. */
  private readonly byReference = new Map<string, Set<string>>();
  /** `namespace\0labelTuple` -> ids of the workloads carrying those `MATCH_LABELS` values. */
  private readonly byLabels = new Map<string, Set<string>>();
  private readonly shards: Shard[];
  private readonly lifetime = new AbortController();
  private clock = 0;
  private lastRelist: Date | undefined;
  private started = false;

  constructor(private readonly options: WorkloadIndexOptions) {
    const namespaces = options.namespaces ?? [undefined];
    this.shards = options.kinds.flatMap((kind) =>
      namespaces.map((namespace): Shard => {
        const synced = deferred();
        const attempted = deferred();
        return {
          kind,
          namespace,
          state: 'pending',
          ids: new Set(),
          resourceVersion: '',
          lastError: undefined,
          everSynced: false,
          synced: synced.promise,
          markSynced: synced.resolve,
          attempted: attempted.promise,
          markAttempted: attempted.resolve,
        };
      }),
    );
  }

  /** A new observation time: later than every observation and read so far in this process. */
  tick(): number {
    return ++this.clock;
  }

  /** Starts listing and watching; idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const shard of this.shards) void this.run(shard);
  }

  /** Stops every watch. */
  stop(): void {
    this.lifetime.abort();
  }

  /**
   * Resolves once every shard covering `namespace` has listed. Rejects at once with the shard's error
   * when a shard that never listed has failed (so the event answers now; the shard keeps retrying), and
   * when `signal` aborts.
   */
  async whenSynced(namespace: string | undefined, signal: AbortSignal): Promise<void> {
    const shards = this.shards.filter(
      (shard) => namespace === undefined || shard.namespace === undefined || shard.namespace === namespace,
    );
    for (const shard of shards) {
      while (!shard.everSynced) {
        if (shard.lastError) throw shard.lastError;
        await new Promise<void>((resolve, reject) => {
          const onAbort = (): void =>
            reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
          if (signal.aborted) return onAbort();
          signal.addEventListener('abort', onAbort, { once: true });
          void Promise.race([shard.synced, shard.attempted]).then(() => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          });
        });
      }
    }
  }

  /** The workloads tied to a config object by reference or by `MATCH_LABELS` values. */
  tied(ref: ConfigRef, labels: Record<string, string> | undefined): Observed[] {
    const ids = new Set(this.byReference.get(`${ref.namespace}\u0000${configKey(ref)}`) ?? []);
    const tuple = labelTuple(this.options.matchLabels, labels);
    if (tuple !== undefined)
      for (const id of this.byLabels.get(`${ref.namespace}\u0000${tuple}`) ?? []) ids.add(id);
    return [...ids].flatMap((id) => {
      const entry = this.entries.get(id);
      return entry ? [entry] : [];
    });
  }

  /** The entry of one workload. */
  get(kind: WorkloadKind, namespace: string, name: string): Observed | undefined {
    return this.entries.get(entryId(kind, namespace, name));
  }

  /** Records a summary read by the restarter (a GET or a patch's answer), unless the index holds a newer one. */
  observe(summary: WorkloadSummary): Observed {
    const id = entryId(summary.kind, summary.namespace, summary.name);
    const current = this.entries.get(id);
    if (current && isOlder(summary.resourceVersion, current.summary.resourceVersion)) return current;
    const observed = { summary, observedAt: this.tick() };
    if (this.covers(summary.kind, summary.namespace)) this.put(id, observed);
    return observed;
  }

  /** Forgets a workload the restarter found deleted. */
  forget(kind: WorkloadKind, namespace: string, name: string): void {
    this.remove(entryId(kind, namespace, name));
  }

  /** State for readiness and metrics. */
  state(): IndexState {
    return {
      synced: this.shards.every((shard) => shard.everSynced),
      workloads: this.entries.size,
      lastRelist: this.lastRelist?.toISOString(),
      shards: this.shards.map((shard) => ({
        kind: qualifiedKind(shard.kind),
        namespace: shard.namespace ?? '*',
        state: shard.state,
        workloads: shard.ids.size,
        ...(shard.lastError && shard.state === 'retrying' ? { error: shard.lastError.message } : {}),
      })),
    };
  }

  private covers(kind: WorkloadKind, namespace: string): boolean {
    return this.shards.some(
      (shard) => shard.kind === kind && (shard.namespace === undefined || shard.namespace === namespace),
    );
  }

  private put(id: string, observed: Observed): void {
    const previous = this.entries.get(id);
    if (previous) this.unlink(id, previous.summary);
    this.entries.set(id, observed);
    const { summary } = observed;
    for (const spec of CONFIG_KIND_LIST) {
      for (const name of summary.references[spec.kind]) {
        this.link(this.byReference, `${summary.namespace}\u0000${configKey({ kind: spec.kind, name })}`, id);
      }
    }
    if (summary.labelTuple !== undefined) {
      this.link(this.byLabels, `${summary.namespace}\u0000${summary.labelTuple}`, id);
    }
    for (const shard of this.shards) {
      if (
        shard.kind === summary.kind &&
        (shard.namespace === undefined || shard.namespace === summary.namespace)
      ) {
        shard.ids.add(id);
      }
    }
  }

  private remove(id: string): void {
    const previous = this.entries.get(id);
    if (!previous) return;
    this.unlink(id, previous.summary);
    this.entries.delete(id);
    for (const shard of this.shards) shard.ids.delete(id);
  }

  private link(map: Map<string, Set<string>>, key: string, id: string): void {
    let ids = map.get(key);
    if (!ids) map.set(key, (ids = new Set()));
    ids.add(id);
  }

  private unlink(id: string, summary: WorkloadSummary): void {
    const drop = (map: Map<string, Set<string>>, key: string): void => {
      const ids = map.get(key);
      if (!ids) return;
      ids.delete(id);
      if (ids.size === 0) map.delete(key);
    };
    for (const spec of CONFIG_KIND_LIST) {
      for (const name of summary.references[spec.kind]) {
        drop(this.byReference, `${summary.namespace}\u0000${configKey({ kind: spec.kind, name })}`);
      }
    }
    if (summary.labelTuple !== undefined)
      drop(this.byLabels, `${summary.namespace}\u0000${summary.labelTuple}`);
  }

  /** Applies one watch event. */
  private apply(shard: Shard, type: string, object: KubeObject): void {
    const resourceVersion = object.metadata?.resourceVersion;
    if (resourceVersion) shard.resourceVersion = resourceVersion;
    if (type === 'BOOKMARK') return;
    const namespace = object.metadata?.namespace ?? '';
    const name = object.metadata?.name ?? '';
    const id = entryId(shard.kind, namespace, name);
    if (type === 'DELETED') {
      this.remove(id);
      return;
    }
    const current = this.entries.get(id);
    if (current && resourceVersion && isOlder(resourceVersion, current.summary.resourceVersion)) return;
    this.put(id, { summary: this.options.summarize(shard.kind, object), observedAt: this.tick() });
  }

  /** Replaces a shard's entries with a fresh list. */
  private async relist(shard: Shard, reason: RelistReason): Promise<void> {
    this.options.onRelist?.(reason);
    const { items, resourceVersion } = await this.options.client.listWorkloads(shard.kind, shard.namespace, {
      labelSelector: this.options.labelSelector,
      signal: this.lifetime.signal,
      map: (object) => ({ summary: this.options.summarize(shard.kind, object), observedAt: this.tick() }),
    });
    const fresh = new Set<string>();
    for (const observed of items) {
      const id = entryId(shard.kind, observed.summary.namespace, observed.summary.name);
      fresh.add(id);
      const current = this.entries.get(id);
      if (current && isOlder(observed.summary.resourceVersion, current.summary.resourceVersion)) continue;
      this.put(id, observed);
    }
    for (const id of [...shard.ids]) if (!fresh.has(id)) this.remove(id);
    shard.resourceVersion = resourceVersion;
    this.lastRelist = new Date();
  }

  /** One shard's life: discover, list, watch; relist on 410; back off on failures. */
  private async run(shard: Shard): Promise<void> {
    const { logger } = this.options;
    const signal = this.lifetime.signal;
    const backoff = this.options.backoffMs ?? { initial: 500, max: 30_000 };
    let wait = backoff.initial;
    let reason: RelistReason | undefined = 'initial';
    const failed = async (error: unknown, what: string): Promise<void> => {
      shard.lastError =
        error instanceof KubeApiError
          ? error
          : new KubeApiError(
              0,
              what,
              shard.kind.plural,
              shard.namespace,
              undefined,
              String((error as Error)?.message ?? error),
            );
      shard.state = 'retrying';
      shard.markAttempted();
      logger.warn('index: API call failed; retrying', {
        kind: shard.kind.kind,
        namespace: shard.namespace ?? '*',
        error: shard.lastError.message,
        retryInMs: wait,
      });
      await sleep(wait, signal);
      wait = Math.min(wait * 2, backoff.max);
    };
    while (!signal.aborted) {
      if (reason !== undefined) {
        try {
          if (!(await this.options.client.serves(shard.kind, { signal }))) {
            for (const id of [...shard.ids]) this.remove(id);
            if (shard.state !== 'unserved') {
              logger.info('index: kind not served by the API server', { kind: qualifiedKind(shard.kind) });
            }
            shard.state = 'unserved';
            shard.lastError = undefined;
            shard.everSynced = true;
            shard.markSynced();
            await sleep(this.options.unservedRecheckMs ?? 60_000, signal);
            continue;
          }
          await this.relist(shard, reason);
        } catch (error) {
          if (signal.aborted) return;
          if (error instanceof KubeApiError && error.forbidden && shard.kind.optionalAccess) {
            // Served but not granted: the optional component is not applied. Leave the kind out.
            for (const id of [...shard.ids]) this.remove(id);
            if (shard.state !== 'forbidden') {
              logger.warn('index: kind served but access denied; left out until granted', {
                kind: qualifiedKind(shard.kind),
                namespace: shard.namespace ?? '*',
                grantWith: shard.kind.optionalAccess,
                error: error.message,
              });
            }
            shard.state = 'forbidden';
            shard.lastError = undefined;
            shard.everSynced = true;
            shard.markSynced();
            await sleep(this.options.unservedRecheckMs ?? 60_000, signal);
            continue;
          }
          await failed(error, 'list');
          reason = shard.resourceVersion ? 'failed' : reason;
          continue;
        }
        shard.state = 'watching';
        shard.lastError = undefined;
        shard.everSynced = true;
        shard.markSynced();
        reason = undefined;
        wait = backoff.initial;
      }
      const timeout = this.options.watchTimeoutSeconds ?? 300;
      const handle = this.options.client.watchWorkloads(shard.kind, shard.namespace, {
        labelSelector: this.options.labelSelector,
        resourceVersion: shard.resourceVersion,
        // Jitter, so the shards of many instances do not all rewatch at once.
        timeoutSeconds: Math.round(timeout * (0.8 + Math.random() * 0.4)),
        onEvent: (type, object) => {
          this.apply(shard, type, object);
          wait = backoff.initial;
        },
      });
      const onStop = (): void => handle.stop();
      signal.addEventListener('abort', onStop, { once: true });
      const watchedSince = Date.now();
      const end: WatchEnd = await handle.ended;
      signal.removeEventListener('abort', onStop);
      if (signal.aborted) return;
      if (end.reason === 'expired') reason = 'expired';
      else if (end.reason === 'closed' && Date.now() - watchedSince < 1000) {
        // A server that closes watches at once must not be hammered.
        await sleep(wait, signal);
        wait = Math.min(wait * 2, backoff.max);
      } else if (end.reason === 'failed') {
        await failed(end.error, 'watch');
        // Resume from the last version; if that has expired meanwhile the next watch says so (410).
        if (shard.state === 'retrying') shard.state = 'watching';
      }
    }
  }
}
