/**
 * Health-gated, ordered restarts, pure: `<prefix>/restartOrder` (an integer) on workloads tied to the same
 * change. A workload of group N+1 restarts only once every workload of the lower groups is done with that
 * content: its rollout record for it says `rolled-out` (or it had nothing to roll out). While one of them is
 * still restarting or rolling out, the restart is `defer`red and nothing is written, so the next event about the
 * change (the outcome of the lower group, see rollout-follow.ts, or a resync) decides again. When one of them
 * `failed` (or was superseded, or is held itself) the restart is `hold`: a `held` rollout record on the workload,
 * until the next change of the config object or an operator's re-trigger (README "Ordered restarts").
 * Everything is derived from the workloads' own records: any instance decides the same.
 */
import type { AnnotationKeys } from './annotations.js';
import type { ConfigChange, Decision, DecisionAction } from './decision-types.js';
import { describeRef } from './model.js';
import { configOfRecordKey } from './records.js';
import { formatRolloutRecord, type RolloutRecord } from './rollout.js';
import type { WorkloadSummary } from './workload-summary.js';

/** A workload of a lower group, as this event left it. */
export interface Sibling {
  summary: WorkloadSummary;
  /** Its decision in this event. */
  action: DecisionAction;
}

type SiblingState = { state: 'done' } | { state: 'waiting' | 'held'; why: string };

/** Whether a record key names one of the changed config objects. */
function aboutChanges(key: string, changes: readonly ConfigChange[]): boolean {
  const config = configOfRecordKey(key);
  return !!config && changes.some((c) => c.ref.kind === config.kind && c.ref.name === config.name);
}

const HELD_STATES: readonly string[] = ['failed', 'superseded', 'held'];

/** A lower-group workload that restarted, deferred or held in this event is not done, whatever its record says. */
const BY_ACTION: Partial<Record<DecisionAction, SiblingState>> = {
  restart: { state: 'waiting', why: 'restarted now' },
  defer: { state: 'waiting', why: 'restart deferred' },
  hold: { state: 'held', why: 'held' },
};

/** Where a lower-group workload stands with the content of `changes`. */
function siblingState({ summary, action }: Sibling, changes: readonly ConfigChange[]): SiblingState {
  const byAction = BY_ACTION[action];
  if (byAction) return byAction;
  const record = summary.rollout;
  const keys = Object.keys(record?.configs ?? {}).filter((key) => aboutChanges(key, changes));
  if (!record || keys.length === 0) return { state: 'done' };
  // A record about content the workload no longer holds (recorded later without a restart) says nothing.
  const current =
    record.state === 'held' || keys.every((key) => summary.records[key] === record.configs[key]);
  if (!current || record.state === 'rolled-out') return { state: 'done' };
  if (HELD_STATES.includes(record.state)) return { state: 'held', why: record.state };
  return { state: 'waiting', why: 'rolling out' };
}

/** The workloads of lower groups that are not done, by state. */
function blockers(
  earlier: readonly Sibling[],
  changes: readonly ConfigChange[],
): { waiting: string[]; held: string[] } {
  const found = { waiting: [] as string[], held: [] as string[] };
  for (const sibling of earlier) {
    const state = siblingState(sibling, changes);
    if (state.state === 'done') continue;
    const { kind, namespace, name } = sibling.summary;
    const label = `${kind.kind} ${namespace}/${name} (group ${sibling.summary.order}: ${state.why})`;
    found[state.state].push(label);
  }
  return found;
}

/** What the hold writes: a `held` rollout record naming the content it holds back. */
function heldRecord(
  decision: Decision,
  changes: readonly ConfigChange[],
  reason: string,
  now: Date,
): RolloutRecord {
  const configs: Record<string, string> = {};
  for (const [key, hash] of Object.entries(decision.rolled ?? {}))
    if (aboutChanges(key, changes)) configs[key] = hash;
  const stamp = now.toISOString();
  return {
    state: 'held',
    restartedAt: '',
    changedAt: stamp,
    configs,
    template: '',
    finishedAt: stamp,
    message: reason,
  };
}

/** Already held for exactly this content: nothing new to write or report. */
function alreadyHeld(workload: WorkloadSummary, decision: Decision): boolean {
  const record = workload.rollout;
  const rolled = Object.entries(decision.rolled ?? {});
  return (
    record?.state === 'held' &&
    rolled.length > 0 &&
    rolled.every(([key, hash]) => record.configs[key] === hash)
  );
}

/**
 * The decision that replaces a `restart` or `record` of an ordered workload while a lower group is not done
 * with the same change: `defer` (nothing written) while one is restarting or rolling out, `hold` (the held
 * record written; `skip` when already held for that content) once one failed. Undefined: it may go ahead.
 */
export function orderGate(
  keys: AnnotationKeys,
  workload: WorkloadSummary,
  decision: Decision,
  earlier: readonly Sibling[],
  changes: readonly ConfigChange[],
  now: Date,
): Decision | undefined {
  if (workload.order === undefined || (decision.action !== 'restart' && decision.action !== 'record'))
    return undefined;
  const { waiting, held } = blockers(earlier, changes);
  if (waiting.length === 0 && held.length === 0) return undefined;
  const base = { workload: decision.workload, configs: decision.configs };
  const group = `restartOrder ${workload.order}`;
  if (held.length === 0) {
    return {
      ...base,
      action: 'defer',
      reason: `${group}: waits for ${waiting.join(', ')}; ${decision.reason}`,
    };
  }
  const reason = `${group}: held, ${held.join(', ')} did not roll out; restarts on the next change of ${changes.map((c) => describeRef(c.ref)).join(', ')} or a re-trigger`;
  if (decision.action === 'record' || alreadyHeld(workload, decision))
    return { ...base, action: 'skip', reason };
  const record = heldRecord(decision, changes, reason, now);
  return {
    ...base,
    action: 'hold',
    reason,
    patch: {
      metadata: {
        resourceVersion: workload.resourceVersion || undefined,
        annotations: { [keys.rollout]: formatRolloutRecord(record) },
      },
    },
  };
}

/**
 * The order in which an event settles its workloads: those without `restartOrder` first (all at once), then one
 * group per order value, ascending.
 */
export function orderGroups<T extends { summary: Pick<WorkloadSummary, 'order'> }>(
  entries: readonly T[],
): T[][] {
  const unordered = entries.filter((e) => e.summary.order === undefined);
  const orders = [
    ...new Set(entries.flatMap((e) => (e.summary.order === undefined ? [] : [e.summary.order]))),
  ].sort((a, b) => a - b);
  const groups = orders.map((order) => entries.filter((e) => e.summary.order === order));
  return unordered.length > 0 ? [unordered, ...groups] : groups;
}
