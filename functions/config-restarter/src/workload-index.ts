/**
 * The warm index: a compact, watch-fed view of the workloads of the watched namespaces, so an event is
 * decided from memory instead of listing every workload again. Each entry is a {@link WorkloadSummary}
 * (a few fields, not the object), found by the config objects it references and by its `MATCH_LABELS`
 * values. The API server stays the truth: patches carry the entry's resourceVersion as a precondition and
 * a conflict refreshes the entry (see settle.ts).
 *
 * One shard per (workload kind, namespace) - or per kind for all namespaces - keeps its part of the index
 * by list and watch (index-shard.ts).
 */
import { CONFIG_KIND_LIST } from './config-kinds.js';
import {
  createShard,
  runShard,
  type RelistReason,
  type Shard,
  type ShardHost,
  type ShardOptions,
  type ShardState,
} from './index-shard.js';
import type { ConfigRef, KubeObject } from './model.js';
import { configKey } from './records.js';
import { qualifiedKind, type WorkloadKind } from './workload-kinds.js';
import { labelTuple, type WorkloadSummary } from './workload-summary.js';

/** An index entry: the summary and when this process observed it (see {@link WorkloadIndex.tick}). */
export interface Observed {
  summary: WorkloadSummary;
  observedAt: number;
}

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

/** Told of every entry the index puts or removes (window-timers.ts follows the settle windows). */
export interface IndexFollower {
  observed(summary: WorkloadSummary): void;
  removed(summary: WorkloadSummary): void;
}

/** Options of {@link WorkloadIndex}. */
export interface WorkloadIndexOptions extends ShardOptions {
  kinds: readonly WorkloadKind[];
  /** The namespaces to follow; undefined = all namespaces (one cluster-wide shard per kind). */
  namespaces: readonly string[] | undefined;
  /** Label keys that tie workloads to config objects (`MATCH_LABELS`). */
  matchLabels: readonly string[];
  summarize(kind: WorkloadKind, object: KubeObject): WorkloadSummary;
  /** Called on every list (metrics). */
  onRelist?: (reason: RelistReason) => void;
}

function entryId(kind: WorkloadKind, namespace: string, name: string): string {
  return `${qualifiedKind(kind)}\u0000${namespace}\u0000${name}`;
}

/** True when `incoming` is an older resourceVersion than `current` (only decidable for numbers). */
function isOlder(incoming: string, current: string): boolean {
  return /^\d+$/.test(incoming) && /^\d+$/.test(current) && BigInt(incoming) < BigInt(current);
}

/** The `byReference` keys of a workload: one per config object its pod template references. */
function referenceKeys(summary: WorkloadSummary): string[] {
  return CONFIG_KIND_LIST.flatMap((spec) =>
    summary.references[spec.kind].map(
      (name) => `${summary.namespace}\u0000${configKey({ kind: spec.kind, name })}`,
    ),
  );
}

/** True when `shard` holds the workloads of `kind` in `namespace`. */
function holds(shard: Shard, kind: WorkloadKind, namespace: string): boolean {
  return shard.kind === kind && (shard.namespace === undefined || shard.namespace === namespace);
}

/** The watch-fed index of workloads. */
export class WorkloadIndex implements ShardHost {
  private readonly entries = new Map<string, Observed>();
  /** `namespace\0configmap/name` -> ids of the workloads whose pod template references it. */
  private readonly byReference = new Map<string, Set<string>>();
  /** `namespace\0labelTuple` -> ids of the workloads carrying those `MATCH_LABELS` values. */
  private readonly byLabels = new Map<string, Set<string>>();
  private readonly shards: Shard[];
  private readonly followers: IndexFollower[] = [];
  private readonly lifetime = new AbortController();
  private clock = 0;
  private lastRelist: Date | undefined;
  private started = false;

  constructor(private readonly options: WorkloadIndexOptions) {
    const namespaces = options.namespaces ?? [undefined];
    this.shards = options.kinds.flatMap((kind) =>
      namespaces.map((namespace) => createShard(kind, namespace)),
    );
  }

  /** A new observation time: later than every observation and read so far in this process. */
  tick(): number {
    return ++this.clock;
  }

  /** Tells `follower` of every entry put or removed from now on, and of those held already. */
  follow(follower: IndexFollower): void {
    this.followers.push(follower);
    for (const { summary } of this.entries.values()) follower.observed(summary);
  }

  /** Starts listing and watching; idempotent. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const shard of this.shards) void runShard(shard, this, this.options, this.lifetime.signal);
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
    if (current && this.holdsNewer(id, summary.resourceVersion)) return current;
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

  /** True when the entry `id` holds a newer resourceVersion than `resourceVersion`. */
  private holdsNewer(id: string, resourceVersion: string | undefined): boolean {
    const current = this.entries.get(id);
    return (
      current !== undefined && !!resourceVersion && isOlder(resourceVersion, current.summary.resourceVersion)
    );
  }

  private covers(kind: WorkloadKind, namespace: string): boolean {
    return this.shards.some((shard) => holds(shard, kind, namespace));
  }

  private put(id: string, observed: Observed): void {
    const previous = this.entries.get(id);
    if (previous) this.unlink(id, previous.summary);
    this.entries.set(id, observed);
    const { summary } = observed;
    for (const key of referenceKeys(summary)) this.link(this.byReference, key, id);
    if (summary.labelTuple !== undefined) {
      this.link(this.byLabels, `${summary.namespace}\u0000${summary.labelTuple}`, id);
    }
    for (const shard of this.shards) if (holds(shard, summary.kind, summary.namespace)) shard.ids.add(id);
    for (const follower of this.followers) follower.observed(summary);
  }

  private remove(id: string): void {
    const previous = this.entries.get(id);
    if (!previous) return;
    this.unlink(id, previous.summary);
    this.entries.delete(id);
    for (const shard of this.shards) shard.ids.delete(id);
    for (const follower of this.followers) follower.removed(previous.summary);
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
    for (const key of referenceKeys(summary)) drop(this.byReference, key);
    if (summary.labelTuple !== undefined)
      drop(this.byLabels, `${summary.namespace}\u0000${summary.labelTuple}`);
  }

  /** Applies one watch event of `shard` (see {@link ShardHost}). */
  apply(shard: Shard, type: string, object: KubeObject): void {
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
    if (this.holdsNewer(id, resourceVersion)) return;
    this.put(id, { summary: this.options.summarize(shard.kind, object), observedAt: this.tick() });
  }

  /** Drops every entry of `shard` (see {@link ShardHost}). */
  clear(shard: Shard): void {
    for (const id of [...shard.ids]) this.remove(id);
  }

  /** Replaces a shard's entries with a fresh list (see {@link ShardHost}). */
  async relist(shard: Shard, reason: RelistReason): Promise<void> {
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
      if (!this.holdsNewer(id, observed.summary.resourceVersion)) this.put(id, observed);
    }
    for (const id of [...shard.ids]) if (!fresh.has(id)) this.remove(id);
    shard.resourceVersion = resourceVersion;
    this.lastRelist = new Date();
  }
}
