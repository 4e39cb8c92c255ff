/**
 * The outcome of a restart, pure: the rollout record the function keeps on the workload (`<prefix>/rollout`),
 * and the judgement of a freshly read workload object against it: still progressing, `rolled-out`, `failed`
 * (the kind's rule in workload-kinds.ts, or its deadline) or `superseded` (its pod template changed after the
 * restart, by another writer). rollout-follow.ts reads the object and writes the judgement back.
 */
import { createHash } from 'node:crypto';
import type { KubeObject, PodTemplateLike, WorkloadRef } from './model.js';
import { configOfRecordKey } from './records.js';
import { podTemplate, templateAnnotationsPatch, type WorkloadKind } from './workload-kinds.js';

/**
 * Where a followed rollout stands. `progressing` until one of the three outcomes is written; `held`: a restart
 * that an earlier `restartOrder` group's failure holds back (restart-order.ts), never started.
 */
export type RolloutState = 'progressing' | 'held' | RolloutOutcomeState;

/** The outcomes of a restart. */
export type RolloutOutcomeState = 'rolled-out' | 'failed' | 'superseded';

/** The rollout record on a workload's metadata: written with the restart, completed with the outcome. */
export interface RolloutRecord {
  state: RolloutState;
  /** The `restartTimestamp` the restart wrote on the pod template. */
  restartedAt: string;
  /** When the config objects were last written (their managedFields), else the restart time: "edit" time. */
  changedAt: string;
  /** What was rolled out: record key (`configmap/<name>`) -> content hash. */
  configs: Record<string, string>;
  /** Fingerprint of the pod template without `restartTimestamp`: another writer's change shows as a new one. */
  template: string;
  /** When the outcome was written. */
  finishedAt?: string;
  /** What the kind's controller said (its condition message, counts). */
  message?: string;
  /** The `restartTimestamp` before this restart (`''`: none), which `<prefix>/onFailure: revert` restores. */
  previous?: string;
  /** Set when a failed rollout's template was reverted (`<prefix>/onFailure: revert`). */
  reverted?: boolean;
}

const STATES: readonly string[] = ['progressing', 'held', 'rolled-out', 'failed', 'superseded'];

function strings(value: unknown): Record<string, string> {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).filter(
      (entry): entry is [string, string] => typeof entry[1] === 'string',
    ),
  );
}

/** Parses the rollout annotation; anything unreadable counts as no record. */
export function parseRolloutRecord(value: string | undefined): RolloutRecord | undefined {
  if (!value) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<RolloutRecord> | null;
    if (!parsed || typeof parsed !== 'object' || !STATES.includes(String(parsed.state))) return undefined;
    if (typeof parsed.restartedAt !== 'string' || typeof parsed.template !== 'string') return undefined;
    const optional = strings({
      finishedAt: parsed.finishedAt,
      message: parsed.message,
      previous: parsed.previous,
    });
    return {
      state: parsed.state!,
      restartedAt: parsed.restartedAt,
      changedAt: typeof parsed.changedAt === 'string' ? parsed.changedAt : parsed.restartedAt,
      configs: strings(parsed.configs),
      template: parsed.template,
      ...optional,
      ...(parsed.reverted === true ? { reverted: true } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Serialises a rollout record, fields in a fixed order. */
export function formatRolloutRecord(record: RolloutRecord): string {
  const { state, restartedAt, changedAt, configs, template, finishedAt, message, previous, reverted } =
    record;
  return JSON.stringify({
    state,
    restartedAt,
    changedAt,
    configs,
    template,
    finishedAt,
    message,
    previous,
    reverted,
  });
}

/** Fingerprint of a pod template without the function's own `restartTimestamp` annotation. */
export function templateFingerprint(template: PodTemplateLike | undefined, restartTimestamp: string): string {
  const annotations = { ...template?.metadata?.annotations };
  delete annotations[restartTimestamp];
  const stripped = { ...template, metadata: { ...template?.metadata, annotations } };
  // Plain JSON.stringify: the API server writes an object the same way every time (Go's encoding/json: fields
  // in declaration order, map keys sorted), so a watch event and a GET of the same template agree; it is the
  // cheapest text of it, which matters as every opted-in workload of the index is fingerprinted.
  return createHash('sha256').update(JSON.stringify(stripped)).digest('hex').slice(0, 16);
}

/** What a freshly read workload says about its rollout record. */
export type Judgement =
  | { verdict: 'none'; reason: string }
  | { verdict: 'progressing'; reason: string; record: RolloutRecord }
  | {
      verdict: 'ended';
      record: RolloutRecord & { state: RolloutOutcomeState };
      previous: RolloutRecord;
      /** With `<prefix>/onFailure: revert` on a failed rollout: the merge-patch fragment that reverts the template. */
      revert?: Record<string, unknown>;
    };

/** What a judgement needs: the kind, the object, the annotation keys it reads, the clock. */
export interface JudgeInput {
  kind: WorkloadKind;
  object: KubeObject;
  keys: { rollout: string; restartTimestamp: string; onFailure: string };
  now: Date;
}

function ended(previous: RolloutRecord, state: RolloutOutcomeState, message: string, now: Date): Judgement {
  return {
    verdict: 'ended',
    previous,
    record: { ...previous, state, finishedAt: now.toISOString(), message },
  };
}

/** Another writer changed the pod template after the restart (or restarted it with our annotation). */
function supersededBy(input: JudgeInput, record: RolloutRecord): string | undefined {
  const template = podTemplate(input.kind, input.object);
  const stamp = template?.metadata?.annotations?.[input.keys.restartTimestamp];
  if (stamp !== record.restartedAt)
    return `restartTimestamp is now ${String(stamp)}: a newer restart took over`;
  if (templateFingerprint(template, input.keys.restartTimestamp) !== record.template)
    return 'the pod template changed after the restart: a newer change took over';
  return undefined;
}

/** The state of the rollout recorded on `input.object`, and the outcome to write when it has ended. */
export function judgeRollout(input: JudgeInput): Judgement {
  const { kind, object, keys, now } = input;
  const rule = kind.rollout;
  if (!rule) return { verdict: 'none', reason: `rollouts of ${kind.kind} are not followed` };
  const record = parseRolloutRecord(object.metadata?.annotations?.[keys.rollout]);
  if (!record) return { verdict: 'none', reason: 'no restart to follow' };
  if (record.state !== 'progressing') return { verdict: 'none', reason: `outcome already ${record.state}` };
  const superseded = supersededBy(input, record);
  if (superseded) return ended(record, 'superseded', superseded, now);
  const status = rule.status(object);
  if (status.state !== 'progressing')
    return withRevert(input, ended(record, status.state, status.detail, now));
  const deadline = rule.deadlineSeconds;
  if (deadline && now.getTime() - Date.parse(record.restartedAt) > deadline * 1000) {
    return ended(
      record,
      'failed',
      `not rolled out within ${deadline}s of the restart: ${status.detail}`,
      now,
    );
  }
  return { verdict: 'progressing', reason: `rollout progressing: ${status.detail}`, record };
}

/** The kind can revert and the workload asks for it. */
function revertWanted({ kind, object, keys }: JudgeInput): boolean {
  return !!kind.rollout?.revert && object.metadata?.annotations?.[keys.onFailure]?.toLowerCase() === 'revert';
}

/**
 * A failed rollout of a kind that can revert (Knative Services) whose workload asks for it
 * (`<prefix>/onFailure: revert`): the template's `restartTimestamp` goes back to what it was before the restart, so
 * the failed Revision is no longer the latest (Knative makes one from the previous template); traffic is
 * never touched.
 */
function withRevert(input: JudgeInput, judgement: Judgement): Judgement {
  if (judgement.verdict !== 'ended' || judgement.record.state !== 'failed' || !revertWanted(input))
    return judgement;
  const previous = judgement.previous.previous || null;
  const revert = templateAnnotationsPatch(input.kind, { [input.keys.restartTimestamp]: previous } as Record<
    string,
    string
  >);
  const back = previous ? `back to ${previous}` : 'removed';
  const message = `${judgement.record.message ?? ''}; reverted (onFailure: revert): restartTimestamp ${back}, the failed Revision is no longer the latest`;
  return { ...judgement, record: { ...judgement.record, message, reverted: true }, revert };
}

/** Seconds from the edit (`changedAt`) to the outcome, never negative. */
export function editToOutcomeSeconds(record: RolloutRecord): number {
  const from = Date.parse(record.changedAt);
  const to = Date.parse(record.finishedAt ?? '');
  return Number.isFinite(from) && Number.isFinite(to) ? Math.max(0, (to - from) / 1000) : 0;
}

/** One outcome as reported: the data of the `config-restarter.outcome` CloudEvent (README "Outcomes"). */
export interface RolloutReport {
  workload: WorkloadRef;
  outcome: RolloutOutcomeState;
  /** What the restart rolled out: `ConfigMap/<name>` (with `#<keys>` for a key set) -> content hash. */
  configs: Record<string, string>;
  /** The restart (`restartTimestamp`). */
  restartedAt: string;
  /** The edit: when the config objects were last written. */
  changedAt: string;
  /** When the outcome was decided. */
  finishedAt: string;
  /** Seconds from the edit to the outcome. */
  seconds: number;
  /** The controller's words (condition message, counts) or why it was superseded. */
  message: string;
  /** A failed Knative Service's template was reverted (`<prefix>/onFailure: revert`). */
  reverted?: true;
}

/** The report of an ended rollout. */
export function rolloutReport(
  workload: WorkloadRef,
  record: RolloutRecord & { state: RolloutOutcomeState },
): RolloutReport {
  return {
    workload,
    outcome: record.state,
    configs: namedConfigs(record.configs),
    restartedAt: record.restartedAt,
    changedAt: record.changedAt,
    finishedAt: record.finishedAt ?? '',
    seconds: editToOutcomeSeconds(record),
    message: record.message ?? '',
    ...(record.reverted ? { reverted: true as const } : {}),
  };
}

/** Record keys named as decisions name config kinds: `configmap/app#k1` -> `ConfigMap/app#k1`. */
export function namedConfigs(records: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(records).map(([key, hash]) => {
      const config = configOfRecordKey(key);
      const keys = key.includes('#') ? key.slice(key.indexOf('#')) : '';
      return [config ? `${config.kind}/${config.name}${keys}` : key, hash];
    }),
  );
}

/** The outcome of a still-progressing rollout that a newer restart by the function replaces. */
export function supersededByRestart(
  previous: RolloutRecord,
  next: RolloutRecord,
): RolloutRecord & {
  state: 'superseded';
} {
  return {
    ...previous,
    state: 'superseded',
    finishedAt: next.restartedAt,
    message: `a newer restart at ${next.restartedAt} took over before the rollout ended`,
  };
}
