/**
 * The pure core: given the current state of changed config objects and summaries of the workloads of
 * their namespace, decide which workloads to restart, which to only record, and which to skip, with a
 * reason for each. No I/O here; the patches it returns are applied by the restarter.
 */
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_LIST } from './config-kinds.js';
import type { ConfigChange, Decision, MergePatch } from './decision-types.js';
import { formatDuration, parseDuration } from './duration.js';
import { DELETED_HASH, subsetHash } from './hash.js';
import type { KubeObject, WorkloadRef } from './model.js';
import { configKey, describeRef, recordKey } from './model.js';
import { collectUses } from './references.js';
import {
  lastRestartOf,
  podTemplate,
  restartMethodOf,
  restartPatch,
  type RestartMethod,
  type WorkloadKind,
} from './workload-kinds.js';

export type { ConfigChange, Decision, DecisionAction, MergePatch, Trigger } from './decision-types.js';

/** Settings the decisions depend on. */
export interface DecisionSettings {
  annotationPrefix: string;
  matchLabels: string[];
  /** Default minimum time between two restarts of a workload (`MIN_RESTART_INTERVAL`); 0 or unset = none. */
  minRestartIntervalMs?: number;
}

/** The annotation keys, derived from the prefix. */
export interface AnnotationKeys {
  /** On a ConfigMap/Secret: opts it in. */
  triggerRestart: string;
  /** On a workload's metadata: opts it in. */
  restartOnTrigger: string;
  /** Written on the pod template when the function restarts a workload. */
  restartTimestamp: string;
  /** Written on the workload's metadata: JSON map of config key -> content hash last rolled out. */
  configHashes: string;
  /** On a workload's metadata: minimum time between two restarts (Go duration such as `5m`). */
  minRestartInterval: string;
  /** Written on the workload's metadata: a restart deferred by the minimum interval (JSON). */
  pendingRestart: string;
}

/** Annotation keys for a prefix such as `rolling.restart.controller`. */
export function annotationKeys(prefix: string): AnnotationKeys {
  return {
    triggerRestart: `${prefix}/triggerRestart`,
    restartOnTrigger: `${prefix}/restartOnTrigger`,
    restartTimestamp: `${prefix}/restartTimestamp`,
    configHashes: `${prefix}/configHashes`,
    minRestartInterval: `${prefix}/minRestartInterval`,
    pendingRestart: `${prefix}/pendingRestart`,
  };
}

/** True when the annotation `key` is `"true"` (any letter case). */
export function isOptedIn(annotations: Record<string, string> | undefined, key: string): boolean {
  return String(annotations?.[key] ?? '').toLowerCase() === 'true';
}

/**
 * A restart deferred by the minimum interval, kept on the workload's metadata so the function stays
 * stateless: the record keys it is owed for, since when, and when the interval ends.
 */
export interface PendingRestart {
  records: string[];
  since: string;
  due: string;
}

/**
 * What a decision needs to know about a workload: a few fields, not the object. The warm index holds
 * these; a freshly read object is summarised the same way, so both paths decide alike.
 */
export interface WorkloadSummary {
  kind: WorkloadKind;
  namespace: string;
  name: string;
  /** The precondition of every patch. */
  resourceVersion: string;
  /** The workload's values of the `MATCH_LABELS` keys (see {@link labelTuple}), or undefined. */
  labelTuple: string | undefined;
  /** The workload carries the opt-in annotation. */
  optedIn: boolean;
  /** Why the object must not be patched, or undefined. */
  unpatchable: string | undefined;
  /** The object can be restarted: it has a pod template at its kind's path, or restarts through a field. */
  hasTemplate: boolean;
  /** Names of the config objects its pod template references, per config kind. */
  references: Readonly<Record<ConfigKind, readonly string[]>>;
  /**
   * Per config kind: the config objects the pod template uses ONLY through these keys (sorted). A name
   * missing here (but in `references`) is used whole.
   */
  keySets: Readonly<Record<ConfigKind, Readonly<Record<string, readonly string[]>>>>;
  /** The hash record: record key (see `recordKey`) -> content hash last rolled out. */
  records: Readonly<Record<string, string>>;
  /** How a restart is written for this object. */
  restart: RestartMethod;
  /** When it was last restarted (RFC 3339), as the restart method records it. */
  lastRestart: string | undefined;
  /** Its own minimum restart interval (annotation), in ms; undefined = the default. */
  minRestartIntervalMs: number | undefined;
  /** The annotation's value when it is not a duration (the default applies). */
  badMinRestartInterval: string | undefined;
  /** A restart deferred earlier, if any. */
  pending: PendingRestart | undefined;
}

/**
 * The values of the `matchLabels` keys as one comparable string, or undefined when a key is missing
 * (an object lacking any of the keys matches nothing by labels, never everything).
 */
export function labelTuple(
  matchLabels: readonly string[],
  labels: Record<string, string> | undefined,
): string | undefined {
  if (matchLabels.length === 0 || !labels) return undefined;
  const values: string[] = [];
  for (const key of matchLabels) {
    const value = labels[key];
    if (typeof value !== 'string') return undefined;
    values.push(value);
  }
  return JSON.stringify(values);
}

/**
 * Whether the workload carries the same value as the config object for every `matchLabels` key.
 * A config object lacking any of the keys matches nothing by labels, never everything.
 */
export function labelsMatch(
  matchLabels: string[],
  configLabels: Record<string, string> | undefined,
  workloadLabels: Record<string, string> | undefined,
): boolean {
  const wanted = labelTuple(matchLabels, configLabels);
  return wanted !== undefined && wanted === labelTuple(matchLabels, workloadLabels);
}

/** Parses the pending-restart annotation; anything unreadable counts as nothing pending. */
export function parsePendingRestart(value: string | undefined): PendingRestart | undefined {
  if (!value) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<PendingRestart> | null;
    if (!parsed || typeof parsed !== 'object' || !Array.isArray(parsed.records)) return undefined;
    const records = parsed.records.filter((r): r is string => typeof r === 'string');
    const since = typeof parsed.since === 'string' ? parsed.since : '';
    const due = typeof parsed.due === 'string' ? parsed.due : '';
    return records.length > 0 ? { records: [...new Set(records)].sort(), since, due } : undefined;
  } catch {
    return undefined;
  }
}

/** Summarises a workload object for the decisions. */
export function summarizeWorkload(
  settings: DecisionSettings,
  kind: WorkloadKind,
  object: KubeObject,
): WorkloadSummary {
  const keys = annotationKeys(settings.annotationPrefix);
  const template = podTemplate(kind, object);
  const uses = collectUses(template?.spec);
  const annotations = object.metadata?.annotations;
  const restart = restartMethodOf(kind, object);
  const rawInterval = annotations?.[keys.minRestartInterval];
  const interval = rawInterval === undefined ? undefined : parseDuration(rawInterval);
  return {
    kind,
    namespace: object.metadata?.namespace ?? '',
    name: object.metadata?.name ?? '',
    resourceVersion: object.metadata?.resourceVersion ?? '',
    labelTuple: labelTuple(settings.matchLabels, object.metadata?.labels),
    optedIn: isOptedIn(annotations, keys.restartOnTrigger),
    unpatchable: kind.unpatchableReason(object),
    hasTemplate: template !== undefined || restart.via === 'field',
    references: Object.fromEntries(
      CONFIG_KIND_LIST.map((spec) => [spec.kind, [...uses[spec.kind].keys()].sort()]),
    ) as Record<ConfigKind, string[]>,
    keySets: Object.fromEntries(
      CONFIG_KIND_LIST.map((spec) => [
        spec.kind,
        Object.fromEntries(
          [...uses[spec.kind]].filter((entry): entry is [string, readonly string[]] => entry[1] !== 'all'),
        ),
      ]),
    ) as Record<ConfigKind, Record<string, readonly string[]>>,
    records: parseHashRecord(annotations?.[keys.configHashes]),
    restart,
    lastRestart: lastRestartOf(kind, restart, object, keys.restartTimestamp),
    minRestartIntervalMs: interval,
    badMinRestartInterval: rawInterval !== undefined && interval === undefined ? rawInterval : undefined,
    pending: parsePendingRestart(annotations?.[keys.pendingRestart]),
  };
}

/** How a workload is tied to a config object: the reason, and the keys when it uses only some. */
export interface Tie {
  reason: string;
  /** Undefined: every key counts (labels, envFrom, whole-volume mounts). */
  keys?: readonly string[];
}

/** How a workload is tied to a config object (labels or a reference), or undefined when it is not. */
export function tieOf(
  settings: DecisionSettings,
  change: ConfigChange,
  workload: WorkloadSummary,
): Tie | undefined {
  if (workload.namespace !== change.ref.namespace) return undefined;
  const wanted = labelTuple(settings.matchLabels, change.labels);
  if (wanted !== undefined && wanted === workload.labelTuple) {
    const pairs = settings.matchLabels.map((key) => `${key}=${change.labels[key]}`).join(',');
    return { reason: `labels ${pairs}` };
  }
  if (workload.references[change.ref.kind].includes(change.ref.name)) {
    const keys = Object.hasOwn(workload.keySets[change.ref.kind], change.ref.name)
      ? workload.keySets[change.ref.kind][change.ref.name]
      : undefined;
    return keys
      ? { reason: `pod template uses only key(s) ${keys.join(',')} of it`, keys }
      : { reason: 'pod template references it' };
  }
  return undefined;
}

/** Why a workload is tied to a config object (labels or a reference), or undefined when it is not. */
export function tieReason(
  settings: DecisionSettings,
  change: ConfigChange,
  workload: WorkloadSummary,
): string | undefined {
  return tieOf(settings, change, workload)?.reason;
}

/** Parses the hash record annotation; anything unreadable counts as no record. */
export function parseHashRecord(value: string | null | undefined): Record<string, string> {
  if (!value) return {};
  try {
    const parsed: unknown = JSON.parse(value);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(
      Object.entries(parsed as Record<string, unknown>).filter(
        (entry): entry is [string, string] => typeof entry[1] === 'string',
      ),
    );
  } catch {
    return {};
  }
}

/** Serialises a hash record with sorted keys, so equal records give equal annotations. */
export function formatHashRecord(record: Readonly<Record<string, string>>): string {
  return JSON.stringify(
    Object.fromEntries(
      Object.keys(record)
        .sort()
        .map((key) => [key, record[key]]),
    ),
  );
}

/** Serialises a pending restart with sorted records. */
export function formatPendingRestart(pending: PendingRestart): string {
  return JSON.stringify({ records: [...pending.records].sort(), since: pending.since, due: pending.due });
}

/** Reference to a workload. */
export function workloadRef(workload: Pick<WorkloadSummary, 'kind' | 'namespace' | 'name'>): WorkloadRef {
  return {
    apiVersion: `${workload.kind.group}/${workload.kind.version}`,
    kind: workload.kind.kind,
    namespace: workload.namespace,
    name: workload.name,
  };
}

/** The hash a workload tied through `keys` (or whole) records for a change. */
export function hashForTie(change: ConfigChange, keys: readonly string[] | undefined): string {
  if (change.deleted) return DELETED_HASH;
  return keys === undefined ? change.hash : subsetHash(change.keyDigests ?? {}, keys);
}

type ConfigAction = 'restart' | 'record' | 'skip';

interface PerConfigOutcome {
  change: ConfigChange;
  action: ConfigAction;
  reason: string;
  /** Its key in the hash record. */
  key: string;
  /** What the record holds once this change is rolled out. */
  hash: string;
  recorded: string | undefined;
}

function outcomeFor(
  change: ConfigChange,
  tie: Tie,
  records: Readonly<Record<string, string>>,
): PerConfigOutcome {
  const key = recordKey(change.ref, tie.keys);
  const hash = hashForTie(change, tie.keys);
  const recorded = Object.hasOwn(records, key) ? records[key] : undefined;
  const what = `${describeRef(change.ref)} (${tie.reason})`;
  const result = (action: ConfigAction, reason: string): PerConfigOutcome => ({
    change,
    action,
    reason: `${what}: ${reason}`,
    key,
    hash,
    recorded,
  });
  if (change.deleted) {
    return recorded === DELETED_HASH
      ? result('skip', 'deleted; the deletion was already rolled out')
      : result('restart', 'deleted; restarted so no pod keeps the deleted configuration (RESTART_ON_DELETE)');
  }
  const keyed = tie.keys ? `key(s) ${tie.keys.join(',')}: ` : '';
  if (recorded === hash) {
    return result(
      'skip',
      tie.keys
        ? `${keyed}already rolled out for content ${hash}; changes to other keys do not restart it`
        : `already rolled out for content ${hash}`,
    );
  }
  if (change.trigger === 'delete') return result('skip', 'deleted; a delete restarts nothing');
  if (recorded === undefined && change.trigger !== 'update') {
    return result(
      'record',
      `${keyed}first contact on ${change.trigger}; content ${hash} recorded, nothing restarted`,
    );
  }
  return result(
    'restart',
    recorded === undefined
      ? `${keyed}content changed (no earlier record); now ${hash}`
      : `${keyed}content changed from ${recorded} to ${hash}`,
  );
}

/** The record after rolling out `outcomes`: one entry per (config, key set); other key sets of a config go. */
function nextRecords(
  records: Readonly<Record<string, string>>,
  outcomes: readonly PerConfigOutcome[],
): Record<string, string> {
  const next: Record<string, string> = { ...records };
  for (const outcome of outcomes) {
    const base = configKey(outcome.change.ref);
    for (const key of Object.keys(next)) if (key === base || key.startsWith(`${base}#`)) delete next[key];
    next[outcome.key] = outcome.hash;
  }
  return next;
}

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
  const keys = annotationKeys(settings.annotationPrefix);
  const ties: { change: ConfigChange; tie: Tie }[] = [];
  for (const change of changes) {
    const tie = tieOf(settings, change, workload);
    if (tie !== undefined) ties.push({ change, tie });
  }
  if (ties.length === 0) return undefined;

  const ref = workloadRef(workload);
  const configs = ties.map(({ change }) => describeRef(change.ref));
  const skip = (reason: string): Decision => ({ workload: ref, action: 'skip', reason, configs });

  // Why a workload can never be patched says more than a missing opt-in (e.g. a Deployment Knative owns).
  if (workload.unpatchable) return skip(workload.unpatchable);
  if (!workload.optedIn) {
    return skip(`not opted in: metadata annotation ${keys.restartOnTrigger} is not "true"`);
  }
  if (!workload.hasTemplate) {
    return skip(`has no ${workload.kind.templatePath.join('.')} to restart`);
  }

  const records = workload.records;
  const pendingBefore = new Set(workload.pending?.records ?? []);
  const outcomes = ties.map(({ change, tie }) => {
    const outcome = outcomeFor(change, tie, records);
    if (!pendingBefore.has(outcome.key)) return outcome;
    // A restart deferred earlier is owed even where a first contact would only record.
    if (outcome.action === 'record' || outcome.action === 'restart') {
      return {
        ...outcome,
        action: 'restart' as const,
        reason: `${outcome.reason}; restart pending since ${workload.pending?.since || 'earlier'}`,
      };
    }
    return outcome;
  });
  // Pending entries whose content is back to what was rolled out are owed nothing any more.
  const resolved = outcomes.filter((o) => pendingBefore.has(o.key) && o.recorded === o.hash);
  const pendingAfter = new Set([...pendingBefore].filter((key) => !resolved.some((o) => o.key === key)));
  const pendingPatch = (remaining: Set<string>, since: string, due: string): Record<string, string | null> =>
    remaining.size === 0
      ? workload.pending
        ? { [keys.pendingRestart]: null }
        : {}
      : {
          [keys.pendingRestart]: formatPendingRestart({ records: [...remaining], since, due }),
        };
  const reasons = outcomes.map((outcome) => outcome.reason);
  const patchOf = (annotations: Record<string, string | null>, extra = {}): MergePatch => ({
    // Precondition: the API server answers 409 if the workload changed since it was read.
    metadata: { resourceVersion: workload.resourceVersion || undefined, annotations },
    ...extra,
  });
  const recordOnly = outcomes.filter((o) => o.action === 'record');

  if (outcomes.some((o) => o.action === 'restart')) {
    const interval = restartInterval(settings, workload, keys);
    const last = workload.lastRestart ? Date.parse(workload.lastRestart) : NaN;
    if (interval.ms > 0 && Number.isFinite(last) && now.getTime() < last + interval.ms) {
      const due = new Date(last + interval.ms).toISOString();
      for (const o of outcomes) if (o.action === 'restart') pendingAfter.add(o.key);
      const deferred =
        `restart deferred until ${due}: minRestartInterval ${formatDuration(interval.ms)}${interval.note} ` +
        `after the restart at ${workload.lastRestart}; kept pending in ${keys.pendingRestart} and carried ` +
        'out by the first resync after that';
      const samePending =
        workload.pending !== undefined &&
        workload.pending.due === due &&
        [...pendingAfter].sort().join('\n') === workload.pending.records.join('\n');
      if (samePending && recordOnly.length === 0) {
        return skip([...reasons, `${deferred} (already pending)`].join('; '));
      }
      const annotations: Record<string, string | null> = {
        ...pendingPatch(pendingAfter, workload.pending?.since || now.toISOString(), due),
      };
      if (recordOnly.length > 0)
        annotations[keys.configHashes] = formatHashRecord(nextRecords(records, recordOnly));
      return {
        workload: ref,
        action: 'defer',
        reason: [...reasons, deferred].join('; '),
        configs,
        patch: patchOf(annotations),
      };
    }
    const rolled = outcomes.filter((o) => o.action !== 'skip');
    const remaining = new Set([...pendingAfter].filter((key) => !outcomes.some((o) => o.key === key)));
    const note = workload.restart.note ? `; ${workload.restart.note}` : '';
    return {
      workload: ref,
      action: 'restart',
      reason: reasons.join('; ') + note,
      configs,
      patch: patchOf(
        {
          [keys.configHashes]: formatHashRecord(nextRecords(records, rolled)),
          ...pendingPatch(remaining, workload.pending?.since ?? '', workload.pending?.due ?? ''),
        },
        restartPatch(workload.kind, workload.restart, keys.restartTimestamp, now),
      ),
    };
  }

  if (recordOnly.length > 0 || resolved.length > 0) {
    const annotations: Record<string, string | null> = {
      ...pendingPatch(pendingAfter, workload.pending?.since ?? '', workload.pending?.due ?? ''),
    };
    if (recordOnly.length > 0)
      annotations[keys.configHashes] = formatHashRecord(nextRecords(records, recordOnly));
    const dropped = resolved.length
      ? [
          `pending restart dropped for ${resolved.map((o) => o.key).join(', ')}: content is back to what was rolled out`,
        ]
      : [];
    return {
      workload: ref,
      action: 'record',
      reason: [...reasons, ...dropped].join('; '),
      configs,
      patch: patchOf(annotations),
    };
  }

  const upToDate = outcomes.every((o) => o.recorded === o.hash);
  return { ...skip(reasons.join('; ')), ...(upToDate ? { upToDate: true as const } : {}) };
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
