/**
 * The pure core: given the current state of changed config objects and the workloads of their
 * namespace, decide which workloads to restart, which to only record, and which to skip, with a
 * reason for each. No I/O here; the patches it returns are applied by the restarter.
 */
import type { ConfigChange, Decision, DecisionAction, MergePatch } from './decision-types.js';
import type { KubeObject, WorkloadRef } from './model.js';
import { configKey, describeRef } from './model.js';
import { collectReferences, type ConfigReferences } from './references.js';
import type { WorkloadKind } from './workload-kinds.js';

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
 * Whether the workload carries the same value as the config object for every `matchLabels` key.
 * A config object lacking any of the keys matches nothing by labels, never everything.
 */
export function labelsMatch(
  matchLabels: string[],
  configLabels: Record<string, string> | undefined,
  workloadLabels: Record<string, string> | undefined,
): boolean {
  if (matchLabels.length === 0) return false;
  return matchLabels.every((key) => {
    const wanted = configLabels?.[key];
    return wanted !== undefined && workloadLabels?.[key] === wanted;
  });
}

/**
 * Why a workload is tied to a config object (labels or a reference), or undefined when it is not.
 * @param references - what the workload's pod template references (collected once per workload)
 */
export function tieReason(
  settings: DecisionSettings,
  change: ConfigChange,
  workload: KubeObject,
  references: ConfigReferences,
): string | undefined {
  if (workload.metadata?.namespace !== change.ref.namespace) return undefined;
  if (labelsMatch(settings.matchLabels, change.labels, workload.metadata?.labels)) {
    const pairs = settings.matchLabels.map((key) => `${key}=${change.labels[key]}`).join(',');
    return `labels ${pairs}`;
  }
  const referenced = change.ref.kind === 'ConfigMap' ? references.configMaps : references.secrets;
  if (referenced.has(change.ref.name)) {
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
export function formatHashRecord(record: Record<string, string>): string {
  return JSON.stringify(
    Object.fromEntries(
      Object.keys(record)
        .sort()
        .map((key) => [key, record[key]]),
    ),
  );
}

/** Reference to a workload object of a kind. */
export function workloadRef(kind: WorkloadKind, workload: KubeObject): WorkloadRef {
  return {
    apiVersion: `${kind.group}/${kind.version}`,
    kind: kind.kind,
    namespace: workload.metadata?.namespace ?? '',
    name: workload.metadata?.name ?? '',
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
  kind: WorkloadKind,
  workload: KubeObject,
  changes: ConfigChange[],
  now: Date,
): Decision | undefined {
  const keys = annotationKeys(settings.annotationPrefix);
  const references = collectReferences(kind.podTemplate(workload)?.spec);
  const ties = changes
    .map((change) => ({ change, tie: tieReason(settings, change, workload, references) }))
    .filter((entry): entry is { change: ConfigChange; tie: string } => entry.tie !== undefined);
  if (ties.length === 0) return undefined;

  const ref = workloadRef(kind, workload);
  const configs = ties.map(({ change }) => describeRef(change.ref));
  const skip = (reason: string): Decision => ({ workload: ref, action: 'skip', reason, configs });

  const annotations = workload.metadata?.annotations;
  if (!isOptedIn(annotations, keys.restartOnTrigger)) {
    return skip(`not opted in: metadata annotation ${keys.restartOnTrigger} is not "true"`);
  }
  const unpatchable = kind.unpatchableReason(workload);
  if (unpatchable) return skip(unpatchable);
  if (!kind.podTemplate(workload)) return skip('has no spec.template to restart');

  const records = parseHashRecord(annotations?.[keys.configHashes]);
  const outcomes = ties.map(({ change, tie }) => outcomeFor(change, records[configKey(change.ref)], tie));
  const reason = outcomes.map((outcome) => outcome.reason).join('; ');
  const action: DecisionAction = outcomes.some((o) => o.action === 'restart')
    ? 'restart'
    : outcomes.some((o) => o.action === 'record')
      ? 'record'
      : 'skip';
  if (action === 'skip') return skip(reason);

  const nextRecords = { ...records };
  for (const outcome of outcomes) {
    if (outcome.action !== 'skip') nextRecords[configKey(outcome.change.ref)] = outcome.change.hash;
  }
  const patch: MergePatch = {
    metadata: {
      // Precondition: the API server answers 409 if the workload changed since it was read.
      resourceVersion: workload.metadata?.resourceVersion,
      annotations: { [keys.configHashes]: formatHashRecord(nextRecords) },
    },
  };
  if (action === 'restart') {
    patch.spec = { template: { metadata: { annotations: { [keys.restartTimestamp]: now.toISOString() } } } };
  }
  return { workload: ref, action, reason, configs, patch };
}

/** Decides for every workload tied to any of the changes. Untied workloads are left out. */
export function planRestarts(
  settings: DecisionSettings,
  changes: ConfigChange[],
  workloads: { kind: WorkloadKind; object: KubeObject }[],
  now: Date,
): { kind: WorkloadKind; decision: Decision }[] {
  return workloads.flatMap(({ kind, object }) => {
    const decision = decideForWorkload(settings, kind, object, changes, now);
    return decision ? [{ kind, decision }] : [];
  });
}
