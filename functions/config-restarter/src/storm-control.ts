/**
 * Storm control, the step of a decision between "restart" and the patch: the minimum time between two
 * restarts of a workload (`MIN_RESTART_INTERVAL`, the `minRestartInterval` annotation). A restart inside the
 * interval is deferred and kept pending on the workload (`pendingRestart`); the first event after it is due
 * carries it out, or drops it when the content is back to what was rolled out. Pure.
 */
import type { AnnotationKeys } from './annotations.js';
import { recordEntries, type ConfigOutcome } from './config-outcome.js';
import type { DecisionSettings } from './decision-types.js';
import { formatDuration } from './duration.js';
import { formatPendingRestart, hashRecordAnnotation } from './records.js';
import type { WorkloadSummary } from './workload-summary.js';

/** The per-config outcomes once restarts deferred earlier are accounted for. */
export interface Owed {
  outcomes: ConfigOutcome[];
  /** Pending entries whose content is back to what was rolled out: owed nothing any more. */
  resolved: ConfigOutcome[];
  /** Record keys still pending after this decision (before any new deferral). */
  pending: Set<string>;
}

/**
 * Applies the workload's pending restart to `outcomes`: a restart deferred earlier is owed even where a
 * first contact would only record; an entry whose content is back to what was rolled out is dropped.
 */
export function carryPending(workload: WorkloadSummary, outcomes: readonly ConfigOutcome[]): Owed {
  const before = new Set(workload.pending?.records ?? []);
  const carried = outcomes.map((outcome) =>
    before.has(outcome.key) && (outcome.action === 'record' || outcome.action === 'restart')
      ? {
          ...outcome,
          action: 'restart' as const,
          reason: `${outcome.reason}; restart pending since ${workload.pending?.since || 'earlier'}`,
        }
      : outcome,
  );
  const resolved = carried.filter((o) => before.has(o.key) && o.recorded === o.hash);
  const pending = new Set([...before].filter((key) => !resolved.some((o) => o.key === key)));
  return { outcomes: carried, resolved, pending };
}

/**
 * The pending-restart annotation after a decision: `remaining` with `since` and `due`, removed (`null`)
 * when nothing remains of an earlier one, or left alone.
 */
export function pendingAnnotation(
  keys: AnnotationKeys,
  workload: WorkloadSummary,
  remaining: ReadonlySet<string>,
  since: string,
  due: string,
): Record<string, string | null> {
  if (remaining.size > 0) {
    return { [keys.pendingRestart]: formatPendingRestart({ records: [...remaining], since, due }) };
  }
  return workload.pending ? { [keys.pendingRestart]: null } : {};
}

/** What storm control makes of a restart inside the interval. */
export type Hold =
  /** Deferred already, with the same records and due time: nothing new to write. */
  | { action: 'skip'; reason: string }
  /** Deferred now: the pending restart (and any record-only entries) to write. */
  | { action: 'defer'; reason: string; annotations: Record<string, string | null> };

/** The minimum interval in force for a workload, and a note when its annotation was unreadable. */
function restartInterval(
  settings: DecisionSettings,
  workload: WorkloadSummary,
  keys: AnnotationKeys,
): { ms: number; note: string } {
  const ms = workload.minRestartIntervalMs ?? settings.minRestartIntervalMs ?? 0;
  const note = workload.badMinRestartInterval
    ? ` (annotation ${keys.minRestartInterval} "${workload.badMinRestartInterval}" is not a duration such as 30s or 5m; the default applies)`
    : '';
  return { ms, note };
}

/** When the interval since the last restart ends, if it has not ended at `now`. */
function dueTime(workload: WorkloadSummary, intervalMs: number, now: Date): string | undefined {
  const last = workload.lastRestart ? Date.parse(workload.lastRestart) : NaN;
  if (intervalMs <= 0 || !Number.isFinite(last) || now.getTime() >= last + intervalMs) return undefined;
  return new Date(last + intervalMs).toISOString();
}

/** True when the workload already owes exactly these records, due at the same time. */
function alreadyPending(workload: WorkloadSummary, records: ReadonlySet<string>, due: string): boolean {
  const pending = workload.pending;
  return (
    pending !== undefined &&
    pending.due === due &&
    [...records].sort().join('\n') === pending.records.join('\n')
  );
}

/**
 * The storm-control step of a decision that would restart: undefined when the restart may go ahead,
 * otherwise the deferral (or the skip of one already pending).
 */
export function holdRestart(
  settings: DecisionSettings,
  keys: AnnotationKeys,
  workload: WorkloadSummary,
  owed: Owed,
  now: Date,
): Hold | undefined {
  const interval = restartInterval(settings, workload, keys);
  const due = dueTime(workload, interval.ms, now);
  if (due === undefined) return undefined;
  const pending = new Set(owed.pending);
  for (const o of owed.outcomes) if (o.action === 'restart') pending.add(o.key);
  const reasons = owed.outcomes.map((outcome) => outcome.reason);
  const deferred =
    `restart deferred until ${due}: minRestartInterval ${formatDuration(interval.ms)}${interval.note} ` +
    `after the restart at ${workload.lastRestart}; kept pending in ${keys.pendingRestart} and carried ` +
    'out by the first resync after that';
  const recordOnly = owed.outcomes.filter((o) => o.action === 'record');
  if (recordOnly.length === 0 && alreadyPending(workload, pending, due)) {
    return { action: 'skip', reason: [...reasons, `${deferred} (already pending)`].join('; ') };
  }
  return {
    action: 'defer',
    reason: [...reasons, deferred].join('; '),
    annotations: {
      ...pendingAnnotation(keys, workload, pending, workload.pending?.since || now.toISOString(), due),
      ...hashRecordAnnotation(keys.configHashes, workload.records, recordEntries(recordOnly)),
    },
  };
}
