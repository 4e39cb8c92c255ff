/**
 * What one tied config change means for a workload, before storm control: restart, record only or skip,
 * from the trigger and the workload's record (the README's trigger table, per config object).
 */
import type { ConfigChange } from './decision-types.js';
import { DELETED_HASH } from './hash.js';
import { describeRef } from './model.js';
import { recordKey, type RecordEntry } from './records.js';
import { hashForTie, type Tie } from './ties.js';

/** The action for one config object. */
export type ConfigAction = 'restart' | 'record' | 'skip';

/** One config change against a workload's record. */
export interface ConfigOutcome {
  change: ConfigChange;
  action: ConfigAction;
  reason: string;
  /** Its key in the hash record. */
  key: string;
  /** What the record holds once this change is rolled out. */
  hash: string;
  /** What the record holds now. */
  recorded: string | undefined;
}

/** The outcome of a change for a workload tied to it by `tie` whose record is `records`. */
export function outcomeFor(
  change: ConfigChange,
  tie: Tie,
  records: Readonly<Record<string, string>>,
): ConfigOutcome {
  const key = recordKey(change.ref, tie.keys);
  const hash = hashForTie(change, tie.keys);
  const recorded = Object.hasOwn(records, key) ? records[key] : undefined;
  const [action, reason] = change.deleted
    ? deletionVerdict(recorded)
    : contentVerdict(change.trigger, recorded, hash, tie.keys);
  return {
    change,
    action,
    reason: `${describeRef(change.ref)} (${tie.reason}): ${reason}`,
    key,
    hash,
    recorded,
  };
}

/** A confirmed deletion (`RESTART_ON_DELETE`): restart once, recording `deleted`. */
function deletionVerdict(recorded: string | undefined): [ConfigAction, string] {
  return recorded === DELETED_HASH
    ? ['skip', 'deleted; the deletion was already rolled out']
    : ['restart', 'deleted; restarted so no pod keeps the deleted configuration (RESTART_ON_DELETE)'];
}

/** Current content against the record: the same hash skips, a first contact records, a change restarts. */
function contentVerdict(
  trigger: ConfigChange['trigger'],
  recorded: string | undefined,
  hash: string,
  keys: readonly string[] | undefined,
): [ConfigAction, string] {
  const keyed = keys ? `key(s) ${keys.join(',')}: ` : '';
  if (recorded === hash) {
    return [
      'skip',
      keys
        ? `${keyed}already rolled out for content ${hash}; changes to other keys do not restart it`
        : `already rolled out for content ${hash}`,
    ];
  }
  if (trigger === 'delete') return ['skip', 'deleted; a delete restarts nothing'];
  if (recorded === undefined && trigger !== 'update') {
    return ['record', `${keyed}first contact on ${trigger}; content ${hash} recorded, nothing restarted`];
  }
  return [
    'restart',
    recorded === undefined
      ? `${keyed}content changed (no earlier record); now ${hash}`
      : `${keyed}content changed from ${recorded} to ${hash}`,
  ];
}

/** The record entries `outcomes` write. */
export function recordEntries(outcomes: readonly ConfigOutcome[]): RecordEntry[] {
  return outcomes.map((outcome) => ({ ref: outcome.change.ref, key: outcome.key, hash: outcome.hash }));
}
