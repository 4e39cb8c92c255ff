/**
 * Settling every workload of one event: at most `patchConcurrency` at a time and one event per workload at a
 * time (the lock), workloads without `restartOrder` all at once, then one `restartOrder` group after another,
 * each gated by what the lower groups came to (restart-order.ts), every restart by the namespace's limit of
 * rollouts in progress (rollout-limit.ts).
 */
import { annotationKeys } from './annotations.js';
import { mapLimit, type KeyedMutex } from './concurrency.js';
import type { Decision } from './decision-types.js';
import type { EventRun } from './event-run.js';
import { orderGate, orderGroups, type Sibling } from './restart-order.js';
import { limitGate } from './rollout-limit.js';
import type { Settled, Settler, TimedChange } from './settle.js';
import type { Observed, WorkloadIndex } from './workload-index.js';
import { qualifiedKind } from './workload-kinds.js';
import type { WorkloadSummary } from './workload-summary.js';

/** What settling an event's workloads needs. */
export interface SettleAllDeps {
  settler: Settler;
  index: Pick<WorkloadIndex, 'get'>;
  lock: KeyedMutex;
  annotationPrefix: string;
  patchConcurrency: number;
  /** `MAX_CONCURRENT_ROLLOUTS` (0 = unlimited). */
  maxConcurrentRollouts: number;
  /** Rollouts progressing in a namespace, as the index sees them (updated by every patch of this process). */
  inProgress(namespace: string): number;
  now(): Date;
}

/** Settles `entries` for `changes`; the results come in the order of the returned entries. */
export async function settleEntries(
  deps: SettleAllDeps,
  entries: readonly Observed[],
  changes: TimedChange[],
  run: EventRun,
): Promise<{ entries: Observed[]; results: Settled[] }> {
  const keys = annotationKeys(deps.annotationPrefix);
  const configChanges = changes.map((timed) => timed.change);
  const earlier: Sibling[] = [];
  const settled: { entries: Observed[]; results: Settled[] } = { entries: [], results: [] };
  // With a limit, one workload at a time: each restart counts before the next is decided.
  const limit = deps.maxConcurrentRollouts > 0 ? 1 : deps.patchConcurrency;
  for (const group of orderGroups(entries)) {
    const below = [...earlier];
    const ordered = group[0]?.summary.order !== undefined;
    const gate = (decision: Decision, workload: WorkloadSummary): Decision | undefined => {
      const now = deps.now();
      const waiting = ordered ? orderGate(keys, workload, decision, below, configChanges, now) : undefined;
      const inProgress = deps.maxConcurrentRollouts > 0 ? deps.inProgress(workload.namespace) : 0;
      return waiting ?? limitGate(keys, workload, decision, inProgress, deps.maxConcurrentRollouts, now);
    };
    const results = await mapLimit(group, limit, (start) => settleOne(deps, start, changes, run, gate));
    for (const [i, result] of results.entries()) {
      const { kind, namespace, name, order } = group[i]!.summary;
      const summary = deps.index.get(kind, namespace, name)?.summary ?? group[i]!.summary;
      if (order !== undefined) earlier.push({ summary, action: result.decision.action });
    }
    settled.entries.push(...group);
    settled.results.push(...results);
  }
  return settled;
}

function settleOne(
  deps: SettleAllDeps,
  start: Observed,
  changes: TimedChange[],
  run: EventRun,
  gate: Parameters<Settler['settle']>[3],
): Promise<Settled> {
  const { kind, namespace, name } = start.summary;
  return deps.lock.run(`${qualifiedKind(kind)}/${namespace}/${name}`, () => {
    // The index may hold a newer observation than the one this event started from.
    const latest = deps.index.get(kind, namespace, name);
    return deps.settler.settle(
      latest && latest.observedAt > start.observedAt ? latest : start,
      changes,
      run,
      gate,
    );
  });
}

/** The index entries tied to any of `changes`, in a stable order. */
export function tiedEntries(index: Pick<WorkloadIndex, 'tied'>, changes: readonly TimedChange[]): Observed[] {
  const byId = new Map<string, Observed>();
  for (const { change } of changes) {
    for (const entry of index.tied(change.ref, change.labels)) {
      const { kind, namespace, name } = entry.summary;
      byId.set(`${qualifiedKind(kind)}/${namespace}/${name}`, entry);
    }
  }
  return [...byId.values()].sort((a, b) =>
    `${a.summary.kind.kind}/${a.summary.name}`.localeCompare(`${b.summary.kind.kind}/${b.summary.name}`),
  );
}
