/**
 * Ties: how a workload is tied to a changed config object (by `MATCH_LABELS` values or by a reference of
 * its pod template, whole or through some keys), and which hash that tie records.
 */
import type { ConfigChange, DecisionSettings } from './decision-types.js';
import { DELETED_HASH, subsetHash } from './hash.js';
import { labelTuple, type WorkloadSummary } from './workload-summary.js';

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

/** The hash a workload tied through `keys` (or whole) records for a change. */
export function hashForTie(change: ConfigChange, keys: readonly string[] | undefined): string {
  if (change.deleted) return DELETED_HASH;
  return keys === undefined ? change.hash : subsetHash(change.keyDigests ?? {}, keys);
}

/** A change and how the workload is tied to it. */
export interface TiedChange {
  change: ConfigChange;
  tie: Tie;
}

/** The changes the workload is tied to, in the order given. */
export function tiesOf(
  settings: DecisionSettings,
  workload: WorkloadSummary,
  changes: readonly ConfigChange[],
): TiedChange[] {
  return changes.flatMap((change) => {
    const tie = tieOf(settings, change, workload);
    return tie === undefined ? [] : [{ change, tie }];
  });
}
