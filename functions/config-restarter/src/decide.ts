/**
 * The decision, pure: given the current state of changed config objects and the summary of one workload
 * of their namespace, decide whether to restart it, only record, defer or skip it, with a reason. No I/O
 * here; settle.ts applies the patch a decision carries. The steps: ties (ties.ts), what each tied change
 * means (config-outcome.ts), restarts owed, the settle window (settle-window.ts) and the minimum interval
 * (storm-control.ts), then the patch.
 */
import { annotationKeys, type AnnotationKeys } from './annotations.js';
import { recordEntries, outcomeFor, type ConfigOutcome } from './config-outcome.js';
import type { ConfigChange, Decision, DecisionSettings, MergePatch } from './decision-types.js';
import { describeRef } from './model.js';
import { hashRecordAnnotation } from './records.js';
import { formatRolloutRecord, type RolloutRecord } from './rollout.js';
import { carryWindow, closeWindow, holdForWindow, windowGaps, type WindowClose } from './settle-window.js';
import { carryPending, holdRestart, pendingAnnotation, type Owed } from './storm-control.js';
import { tiesOf } from './ties.js';
import { restartPatch } from './workload-kinds.js';
import { workloadRef, type WorkloadSummary } from './workload-summary.js';

/** What the steps of one decision share. */
interface Context {
  keys: AnnotationKeys;
  workload: WorkloadSummary;
  /** The parts every decision about this workload carries. */
  about: Pick<Decision, 'workload' | 'configs'>;
  /** How this decision closes the workload's ended settle window, if it has one. */
  close: WindowClose | undefined;
}

/** Why the workload cannot be restarted at all, or undefined. */
function barrier(workload: WorkloadSummary, keys: AnnotationKeys): string | undefined {
  // Why a workload can never be patched says more than a missing opt-in (e.g. a Deployment Knative owns).
  if (workload.unpatchable) return workload.unpatchable;
  if (!workload.optedIn) return `not opted in: metadata annotation ${keys.restartOnTrigger} is not "true"`;
  if (!workload.hasTemplate) return `has no ${workload.kind.templatePath.join('.')} to restart`;
  return undefined;
}

/** A merge patch of the workload with the resourceVersion precondition. */
function patchOf(
  workload: WorkloadSummary,
  annotations: Record<string, string | null>,
  extra: Record<string, unknown> = {},
): MergePatch {
  // Precondition: the API server answers 409 if the workload changed since it was read.
  return { metadata: { resourceVersion: workload.resourceVersion || undefined, annotations }, ...extra };
}

/** The rollout record a restart writes (kinds whose rollouts are followed), and its annotation. */
function rolloutOf(
  { keys, workload }: Context,
  rolled: readonly ConfigOutcome[],
  configs: Record<string, string>,
  now: Date,
): { record?: RolloutRecord; annotations: Record<string, string> } {
  if (workload.template === undefined) return { annotations: {} };
  const restartedAt = now.toISOString();
  let changedAt = '';
  // RFC 3339 in UTC with seconds (managedFields) sorts as text: the latest write is the largest string.
  for (const o of rolled)
    if ((o.change.lastWrite?.time ?? '') > changedAt) changedAt = o.change.lastWrite!.time;
  const record: RolloutRecord = {
    state: 'progressing',
    restartedAt,
    changedAt: changedAt || restartedAt,
    configs,
    template: workload.template,
    previous: workload.lastRestart ?? '',
  };
  return { record, annotations: { [keys.rollout]: formatRolloutRecord(record) } };
}

/** Restart now: the pod template (or restart field), the new records, what stays pending. */
function restartDecision(context: Context, owed: Owed, now: Date): Decision {
  const { keys, workload, about, close } = context;
  const rolled = owed.outcomes.filter((o) => o.action !== 'skip');
  const configs = Object.fromEntries(rolled.map((o) => [o.key, o.hash]));
  const rollout = rolloutOf(context, rolled, configs, now);
  const remaining = new Set([...owed.pending].filter((key) => !owed.outcomes.some((o) => o.key === key)));
  const note = workload.restart.note ? `; ${workload.restart.note}` : '';
  const annotations = {
    ...hashRecordAnnotation(keys.configHashes, workload.records, recordEntries(rolled)),
    ...pendingAnnotation(
      keys,
      workload,
      remaining,
      workload.pending?.since ?? '',
      workload.pending?.due ?? '',
    ),
    ...close?.annotations,
    ...rollout.annotations,
  };
  return {
    ...about,
    action: 'restart',
    reason: [...owed.outcomes.map((o) => o.reason), ...(close ? [close.reason] : [])].join('; ') + note,
    ...(close ? { window: close.window } : {}),
    rolled: configs,
    ...(rollout.record ? { rollout: rollout.record } : {}),
    patch: patchOf(
      workload,
      annotations,
      restartPatch(workload.kind, workload.restart, keys.restartTimestamp, now),
    ),
  };
}

/** What a record-only decision drops or closes besides recording. */
function recordNotes(owed: Owed, close: WindowClose | undefined): string[] {
  const notes: string[] = [];
  if (owed.resolved.length > 0) {
    const keys = owed.resolved.map((o) => o.key).join(', ');
    notes.push(`pending restart dropped for ${keys}: content is back to what was rolled out`);
  }
  if (close) notes.push(`${close.reason}: nothing to roll out, content is what was rolled out`);
  return notes;
}

/**
 * Record only (first contact), drop pending restarts that are owed nothing, or close an ended settle window
 * with nothing to roll out; undefined when none of these.
 */
function recordDecision({ keys, workload, about, close }: Context, owed: Owed): Decision | undefined {
  const recordOnly = owed.outcomes.filter((o) => o.action === 'record');
  if (recordOnly.length === 0 && owed.resolved.length === 0 && !close) return undefined;
  const annotations = {
    ...pendingAnnotation(
      keys,
      workload,
      owed.pending,
      workload.pending?.since ?? '',
      workload.pending?.due ?? '',
    ),
    ...hashRecordAnnotation(keys.configHashes, workload.records, recordEntries(recordOnly)),
    ...close?.annotations,
  };
  return {
    ...about,
    action: 'record',
    reason: [...owed.outcomes.map((o) => o.reason), ...recordNotes(owed, close)].join('; '),
    ...(close ? { window: close.window } : {}),
    patch: patchOf(workload, annotations),
  };
}

/** Nothing to do; `upToDate` when every record already holds the current content. */
function skipDecision({ about }: Context, owed: Owed): Decision {
  const upToDate = owed.outcomes.every((o) => o.recorded === o.hash);
  return {
    ...about,
    action: 'skip',
    reason: owed.outcomes.map((o) => o.reason).join('; '),
    ...(upToDate ? { upToDate: true as const } : {}),
  };
}

/** A restart, unless the settle window or storm control holds it (deferred, or already pending). */
function restartOrHold(settings: DecisionSettings, context: Context, owed: Owed, now: Date): Decision {
  const { keys, workload, about, close } = context;
  const settle = holdForWindow(settings, keys, workload, owed, now);
  const hold = settle ?? holdRestart(settings, keys, workload, owed, now);
  if (!hold) return restartDecision(context, owed, now);
  if (hold.action === 'skip') return { ...about, action: 'skip', reason: hold.reason };
  // Storm control holds a restart whose window has ended: the window closes into the pending restart.
  const closing = settle ? undefined : close;
  return {
    ...about,
    action: 'defer',
    reason: closing ? `${hold.reason}; ${closing.reason}` : hold.reason,
    ...(settle?.window ? { window: settle.window } : closing ? { window: closing.window } : {}),
    patch: patchOf(workload, { ...hold.annotations, ...closing?.annotations }),
  };
}

/**
 * An ended settle window on a workload none of the changes is tied to any more (its config objects were
 * deleted, opted out or are no longer referenced): closed without a restart.
 */
function closeUntied(keys: AnnotationKeys, workload: WorkloadSummary, now: Date): Decision | undefined {
  const close = closeWindow(keys, workload, now);
  if (!close || workload.unpatchable || !workload.optedIn) return undefined;
  return {
    workload: workloadRef(workload),
    action: 'record',
    reason: `${close.reason}: none of them is tied to it any more, nothing to roll out`,
    configs: windowGaps(workload, [], now).map(describeRef),
    window: close.window,
    patch: patchOf(workload, close.annotations),
  };
}

/**
 * Decides what to do with one workload for a set of config changes in its namespace.
 * Returns undefined when the workload is tied to none of them.
 * @param now - the restart time written to the pod template
 */
export function decideForWorkload(
  settings: DecisionSettings,
  workload: WorkloadSummary,
  changes: readonly ConfigChange[],
  now: Date,
): Decision | undefined {
  const ties = tiesOf(settings, workload, changes);
  if (ties.length === 0) {
    return workload.window
      ? closeUntied(annotationKeys(settings.annotationPrefix), workload, now)
      : undefined;
  }
  const keys = annotationKeys(settings.annotationPrefix);
  const context: Context = {
    keys,
    workload,
    about: { workload: workloadRef(workload), configs: ties.map(({ change }) => describeRef(change.ref)) },
    close: closeWindow(keys, workload, now),
  };
  const refusal = barrier(workload, keys);
  if (refusal) return { ...context.about, action: 'skip', reason: refusal };
  const owed = carryPending(
    workload,
    carryWindow(
      workload,
      ties.map(({ change, tie }) => outcomeFor(change, tie, workload.records)),
    ),
  );
  if (owed.outcomes.some((o) => o.action === 'restart')) return restartOrHold(settings, context, owed, now);
  return recordDecision(context, owed) ?? skipDecision(context, owed);
}

/** Decides for every workload tied to any of the changes. Untied workloads are left out. */
export function planRestarts(
  settings: DecisionSettings,
  changes: readonly ConfigChange[],
  workloads: readonly WorkloadSummary[],
  now: Date,
): { workload: WorkloadSummary; decision: Decision }[] {
  return workloads.flatMap((workload) => {
    const decision = decideForWorkload(settings, workload, changes, now);
    return decision ? [{ workload, decision }] : [];
  });
}
