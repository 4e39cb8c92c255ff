/**
 * The workload summary: the few fields of a workload a decision needs, which is also what the warm index
 * stores per workload (not the object). A freshly read object is summarised the same way, so both paths
 * decide alike.
 */
import { annotationKeys, isOptedIn } from './annotations.js';
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_LIST } from './config-kinds.js';
import type { DecisionSettings } from './decision-types.js';
import { parseDuration } from './duration.js';
import type { KubeObject, PodTemplateLike, WorkloadRef } from './model.js';
import {
  parseHashRecord,
  parsePendingRestart,
  parseSettleWindow,
  type PendingRestart,
  type SettleWindow,
} from './records.js';
import { collectUses, type ConfigUses } from './references.js';
import { parseRolloutRecord, templateFingerprint, type RolloutRecord } from './rollout.js';
import {
  lastRestartOf,
  podTemplate,
  restartMethodOf,
  type RestartMethod,
  type WorkloadKind,
} from './workload-kinds.js';

/** What a decision needs to know about a workload: a few fields, not the object. */
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
  /** Its own settle window (annotation `settle`), in ms; undefined = the default (`SETTLE_WINDOW`). */
  settleMs: number | undefined;
  /** The `settle` annotation's value when it is not a duration (the default applies). */
  badSettle: string | undefined;
  /** The settle window open on it (or ended and not yet closed), if any. */
  window: SettleWindow | undefined;
  /** Its uid (what Kubernetes Events about it name). */
  uid: string;
  /** Its rollout record (the last restart and its outcome), if any. */
  rollout: RolloutRecord | undefined;
  /**
   * Fingerprint of its pod template without `restartTimestamp`, for opted-in workloads of kinds whose rollouts
   * are followed (written into the rollout record by a restart); otherwise undefined.
   */
  template: string | undefined;
  /** Its `restartOrder` group, when the annotation is an integer. */
  order: number | undefined;
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

/** Per config kind: the names used, and the key sets of those used only through some keys. */
function referencesOf(uses: ConfigUses): Pick<WorkloadSummary, 'references' | 'keySets'> {
  const entries = CONFIG_KIND_LIST.map((spec) => {
    const used = [...uses[spec.kind]];
    const keyed = used.filter((entry): entry is [string, readonly string[]] => entry[1] !== 'all');
    return { kind: spec.kind, names: used.map(([name]) => name).sort(), keySets: Object.fromEntries(keyed) };
  });
  return {
    references: Object.fromEntries(entries.map((e) => [e.kind, e.names])) as Record<ConfigKind, string[]>,
    keySets: Object.fromEntries(entries.map((e) => [e.kind, e.keySets])) as Record<
      ConfigKind,
      Record<string, readonly string[]>
    >,
  };
}

/** A duration annotation (`minRestartInterval`, `settle`) in ms, and its value when it is unreadable. */
function durationOf(raw: string | undefined): { ms: number | undefined; bad: string | undefined } {
  const ms = raw === undefined ? undefined : parseDuration(raw);
  return { ms, bad: raw !== undefined && ms === undefined ? raw : undefined };
}

/** The metadata a summary reads, with the identity fields defaulted to `''`. */
function metadataOf(object: KubeObject): {
  namespace: string;
  name: string;
  resourceVersion: string;
  labels: Record<string, string> | undefined;
  annotations: Record<string, string> | undefined;
} {
  const meta = object.metadata;
  return {
    namespace: meta?.namespace ?? '',
    name: meta?.name ?? '',
    resourceVersion: meta?.resourceVersion ?? '',
    labels: meta?.labels,
    annotations: meta?.annotations,
  };
}

/**
 * The template fingerprint a restart records: only for opted-in workloads of kinds whose rollouts are
 * followed, so nothing else pays for hashing.
 */
function fingerprintOf(
  kind: WorkloadKind,
  optedIn: boolean,
  template: PodTemplateLike | undefined,
  restartTimestamp: string,
): string | undefined {
  return optedIn && kind.rollout && template ? templateFingerprint(template, restartTimestamp) : undefined;
}

/** The `restartOrder` annotation as an integer; anything else counts as no order. */
function orderOf(value: string | undefined): number | undefined {
  return value !== undefined && /^\s*-?\d{1,9}\s*$/.test(value) ? Number(value) : undefined;
}

function uidOf(object: KubeObject): string {
  return object.metadata?.uid ?? '';
}

/**
 * Summarises a workload object for the decisions. One object literal with every field (no spreads), so
 * every summary has the same shape: the decisions read these fields for every workload of every event.
 */
export function summarizeWorkload(
  settings: DecisionSettings,
  kind: WorkloadKind,
  object: KubeObject,
): WorkloadSummary {
  const keys = annotationKeys(settings.annotationPrefix);
  const template = podTemplate(kind, object);
  const restart = restartMethodOf(kind, object);
  const meta = metadataOf(object);
  const annotations = meta.annotations;
  const { references, keySets } = referencesOf(collectUses(template?.spec));
  const interval = durationOf(annotations?.[keys.minRestartInterval]);
  const settle = durationOf(annotations?.[keys.settle]);
  const optedIn = isOptedIn(annotations, keys.restartOnTrigger);
  return {
    kind,
    namespace: meta.namespace,
    name: meta.name,
    resourceVersion: meta.resourceVersion,
    labelTuple: labelTuple(settings.matchLabels, meta.labels),
    optedIn,
    unpatchable: kind.unpatchableReason(object),
    hasTemplate: template !== undefined || restart.via === 'field',
    references,
    keySets,
    records: parseHashRecord(annotations?.[keys.configHashes]),
    restart,
    lastRestart: lastRestartOf(kind, restart, object, keys.restartTimestamp),
    minRestartIntervalMs: interval.ms,
    badMinRestartInterval: interval.bad,
    pending: parsePendingRestart(annotations?.[keys.pendingRestart]),
    settleMs: settle.ms,
    badSettle: settle.bad,
    window: parseSettleWindow(annotations?.[keys.settleWindow]),
    uid: uidOf(object),
    rollout: parseRolloutRecord(annotations?.[keys.rollout]),
    template: fingerprintOf(kind, optedIn, template, keys.restartTimestamp),
    order: orderOf(annotations?.[keys.restartOrder]),
  };
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
