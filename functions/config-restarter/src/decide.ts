/**
 * The pure core: given the current state of changed config objects and summaries of the workloads of
 * their namespace, decide which workloads to restart, which to only record, and which to skip, with a
 * reason for each. No I/O here; the patches it returns are applied by the restarter.
 */
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_LIST } from './config-kinds.js';
import type { ConfigChange, Decision, DecisionAction, MergePatch } from './decision-types.js';
import type { KubeObject, WorkloadRef } from './model.js';
import { configKey, describeRef } from './model.js';
import { collectReferences } from './references.js';
import { podTemplate, templateAnnotationsPatch, type WorkloadKind } from './workload-kinds.js';

export type { ConfigChange, Decision, DecisionAction, MergePatch, Trigger } from './decision-types.js';

/** Settings the decisions depend on. */
export interface DecisionSettings {
  annotationPrefix: string;
  matchLabels: string[];
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
}

/** Annotation keys for a prefix such as `rolling.restart.controller`. */
export function annotationKeys(prefix: string): AnnotationKeys {
  return {
    triggerRestart: `${prefix}/triggerRestart`,
    restartOnTrigger: `${prefix}/restartOnTrigger`,
    restartTimestamp: `${prefix}/restartTimestamp`,
    configHashes: `${prefix}/configHashes`,
  };
}

/** True when the annotation `key` is `"true"` (any letter case). */
export function isOptedIn(annotations: Record<string, string> | undefined, key: string): boolean {
  return String(annotations?.[key] ?? '').toLowerCase() === 'true';
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
  /** The object has a pod template at its kind's template path. */
  hasTemplate: boolean;
  /** Names of the config objects its pod template references, per config kind. */
  references: Readonly<Record<ConfigKind, readonly string[]>>;
  /** The hash record: config key -> content hash last rolled out. */
  records: Readonly<Record<string, string>>;
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

/** Summarises a workload object for the decisions. */
export function summarizeWorkload(
  settings: DecisionSettings,
  kind: WorkloadKind,
  object: KubeObject,
): WorkloadSummary {
  const keys = annotationKeys(settings.annotationPrefix);
  const template = podTemplate(kind, object);
  const collected = collectReferences(template?.spec);
  const annotations = object.metadata?.annotations;
  return {
    kind,
    namespace: object.metadata?.namespace ?? '',
    name: object.metadata?.name ?? '',
    resourceVersion: object.metadata?.resourceVersion ?? '',
    labelTuple: labelTuple(settings.matchLabels, object.metadata?.labels),
    optedIn: isOptedIn(annotations, keys.restartOnTrigger),
    unpatchable: kind.unpatchableReason(object),
    hasTemplate: template !== undefined,
    references: Object.fromEntries(
      CONFIG_KIND_LIST.map((spec) => [spec.kind, [...collected[spec.kind]].sort()]),
    ) as Record<ConfigKind, string[]>,
    records: parseHashRecord(annotations?.[keys.configHashes]),
  };
}

/** Why a workload is tied to a config object (labels or a reference), or undefined when it is not. */
export function tieReason(
  settings: DecisionSettings,
  change: ConfigChange,
  workload: WorkloadSummary,
): string | undefined {
  if (workload.namespace !== change.ref.namespace) return undefined;
  const wanted = labelTuple(settings.matchLabels, change.labels);
  if (wanted !== undefined && wanted === workload.labelTuple) {
    const pairs = settings.matchLabels.map((key) => `${key}=${change.labels[key]}`).join(',');
    return `labels ${pairs}`;
  }
  if (workload.references[change.ref.kind].includes(change.ref.name)) {
    return 'pod template references it';
  }
  return undefined;
}

/** Parses the hash record annotation; anything unreadable counts as no record. */
export function parseHashRecord(value: string | undefined): Record<string, string> {
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

/** Reference to a workload. */
export function workloadRef(workload: Pick<WorkloadSummary, 'kind' | 'namespace' | 'name'>): WorkloadRef {
  return {
    apiVersion: `${workload.kind.group}/${workload.kind.version}`,
    kind: workload.kind.kind,
    namespace: workload.namespace,
    name: workload.name,
  };
}

type PerConfigOutcome = { change: ConfigChange; action: DecisionAction; reason: string };

function outcomeFor(change: ConfigChange, recorded: string | undefined, tie: string): PerConfigOutcome {
  const what = `${describeRef(change.ref)} (${tie})`;
  if (recorded === change.hash) {
    return { change, action: 'skip', reason: `${what}: already rolled out for content ${change.hash}` };
  }
  if (change.trigger === 'delete') {
    return { change, action: 'skip', reason: `${what}: deleted; a delete restarts nothing` };
  }
  if (recorded === undefined && change.trigger !== 'update') {
    return {
      change,
      action: 'record',
      reason: `${what}: first contact on ${change.trigger}; content ${change.hash} recorded, nothing restarted`,
    };
  }
  return {
    change,
    action: 'restart',
    reason:
      recorded === undefined
        ? `${what}: content changed (no earlier record); now ${change.hash}`
        : `${what}: content changed from ${recorded} to ${change.hash}`,
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
  const keys = annotationKeys(settings.annotationPrefix);
  const ties: { change: ConfigChange; tie: string }[] = [];
  for (const change of changes) {
    const tie = tieReason(settings, change, workload);
    if (tie !== undefined) ties.push({ change, tie });
  }
  if (ties.length === 0) return undefined;

  const ref = workloadRef(workload);
  const configs = ties.map(({ change }) => describeRef(change.ref));
  const skip = (reason: string): Decision => ({ workload: ref, action: 'skip', reason, configs });

  if (!workload.optedIn) {
    return skip(`not opted in: metadata annotation ${keys.restartOnTrigger} is not "true"`);
  }
  if (workload.unpatchable) return skip(workload.unpatchable);
  if (!workload.hasTemplate) {
    return skip(`has no ${workload.kind.templatePath.join('.')} to restart`);
  }

  const records = workload.records;
  const outcomes = ties.map(({ change, tie }) => outcomeFor(change, records[configKey(change.ref)], tie));
  const reason = outcomes.map((outcome) => outcome.reason).join('; ');
  const action: DecisionAction = outcomes.some((o) => o.action === 'restart')
    ? 'restart'
    : outcomes.some((o) => o.action === 'record')
      ? 'record'
      : 'skip';
  if (action === 'skip') {
    const upToDate = outcomes.every((o) => records[configKey(o.change.ref)] === o.change.hash);
    return { ...skip(reason), ...(upToDate ? { upToDate: true as const } : {}) };
  }

  const nextRecords: Record<string, string> = { ...records };
  for (const outcome of outcomes) {
    if (outcome.action !== 'skip') nextRecords[configKey(outcome.change.ref)] = outcome.change.hash;
  }
  const patch: MergePatch = {
    metadata: {
      // Precondition: the API server answers 409 if the workload changed since it was read.
      resourceVersion: workload.resourceVersion || undefined,
      annotations: { [keys.configHashes]: formatHashRecord(nextRecords) },
    },
    ...(action === 'restart'
      ? templateAnnotationsPatch(workload.kind, { [keys.restartTimestamp]: now.toISOString() })
      : {}),
  };
  return { workload: ref, action, reason, configs, patch };
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
