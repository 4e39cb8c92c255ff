/**
 * The settle window, the step of a decision between "restart" and storm control (`<prefix>/settle` on a
 * workload, or `SETTLE_WINDOW`). The first change opens a window, kept on the workload (`settleWindow`);
 * changes inside it only add their config objects; once it has ended, one restart rolls out the content of
 * that moment and writes the record of every config object it covers. Unlike the minimum interval, which
 * restarts on the first change and holds the later ones, nothing restarts before the window ends. Pure;
 * whichever instance sees a window end closes it (window-timers.ts while warm; otherwise the first event or
 * resync about the workload, or a cold instance's first list).
 */
import type { AnnotationKeys } from './annotations.js';
import { recordEntries, type ConfigOutcome } from './config-outcome.js';
import type { DecisionSettings, WindowTransition } from './decision-types.js';
import { formatDuration } from './duration.js';
import type { ConfigRef } from './model.js';
import { configOfRecordKey, formatSettleWindow, hashRecordAnnotation, type SettleWindow } from './records.js';
import type { Hold, Owed } from './storm-control.js';
import type { WorkloadSummary } from './workload-summary.js';

/**
 * What the window step makes of a restart: held (a window is open, or opens now); the transition when the
 * hold writes the window.
 */
export type WindowHold = Hold & { window?: WindowTransition };

/** The window on the workload if it has ended at `now` (and is still to be closed). */
export function endedWindow(workload: WorkloadSummary, now: Date): SettleWindow | undefined {
  const window = workload.window;
  return window && Date.parse(window.until) <= now.getTime() ? window : undefined;
}

/** `ConfigMap/a, Secret/b`: the config objects record keys name, each once. */
export function describeRecords(records: Iterable<string>): string[] {
  const names = [...records].map((key) => {
    const config = configOfRecordKey(key);
    return config ? `${config.kind}/${config.name}` : key;
  });
  return [...new Set(names)].sort();
}

/**
 * Turns "record only" into a restart for config objects that changed inside the window: a first contact
 * (an `add`, a resync) must not record content the window still owes a restart for.
 */
export function carryWindow(workload: WorkloadSummary, outcomes: ConfigOutcome[]): ConfigOutcome[] {
  const window = workload.window;
  if (!window) return outcomes;
  return outcomes.map((outcome) =>
    outcome.action === 'record' && window.records.includes(outcome.key)
      ? {
          ...outcome,
          action: 'restart' as const,
          reason: `${outcome.reason}; restart owed: changed inside the settle window opened at ${window.opened}`,
        }
      : outcome,
  );
}

/** The settle window in force for a workload (ms), and a note when its annotation was unreadable. */
function windowLength(
  settings: DecisionSettings,
  workload: WorkloadSummary,
  keys: AnnotationKeys,
): { ms: number; note: string } {
  const ms = workload.settleMs ?? settings.settleWindowMs ?? 0;
  const note = workload.badSettle
    ? `; annotation ${keys.settle} "${workload.badSettle}" is not a duration such as 2s or 30s, the default applies`
    : '';
  return { ms, note };
}

/**
 * The hold of a restart inside `window`: the window written with the config objects to restart added (and
 * any record-only entries), or a skip when it covers them already.
 */
function holdInside(
  keys: AnnotationKeys,
  workload: WorkloadSummary,
  owed: Owed,
  window: SettleWindow,
  opening: string | undefined,
): WindowHold {
  const records = new Set(window.records);
  for (const o of owed.outcomes) if (o.action === 'restart') records.add(o.key);
  const configs = describeRecords(records);
  const added = describeRecords([...records].filter((key) => !window.records.includes(key)));
  const recordOnly = owed.outcomes.filter((o) => o.action === 'record');
  const reasons = owed.outcomes.map((o) => o.reason);
  const settle = `settle: window open until ${window.until}, covers ${configs.join(', ')}`;
  if (added.length === 0 && recordOnly.length === 0) {
    return { action: 'skip', reason: [...reasons, `${settle} (already covered)`].join('; ') };
  }
  const change = opening ?? (added.length > 0 ? `added ${added.join(', ')}` : 'nothing added');
  return {
    action: 'defer',
    reason: [...reasons, `${settle}; ${change}`].join('; '),
    annotations: {
      [keys.settleWindow]: formatSettleWindow({ ...window, records: [...records] }),
      ...hashRecordAnnotation(keys.configHashes, workload.records, recordEntries(recordOnly)),
    },
    ...(added.length > 0
      ? { window: { transition: opening ? 'opened' : 'extended', until: window.until, configs } }
      : {}),
  };
}

/**
 * The window step of a decision that would restart: undefined when the restart may go ahead (no window
 * configured and none open, or the window has ended), otherwise the hold: the window opened now, extended
 * by more config objects, or already covering them.
 */
export function holdForWindow(
  settings: DecisionSettings,
  keys: AnnotationKeys,
  workload: WorkloadSummary,
  owed: Owed,
  now: Date,
): WindowHold | undefined {
  if (workload.window) {
    if (endedWindow(workload, now)) return undefined;
    return holdInside(keys, workload, owed, workload.window, undefined);
  }
  const length = windowLength(settings, workload, keys);
  if (length.ms <= 0) return undefined;
  const window = {
    records: [],
    opened: now.toISOString(),
    until: new Date(now.getTime() + length.ms).toISOString(),
  };
  const opening = `opened now (settle ${formatDuration(length.ms)}${length.note}): one restart at its end`;
  return holdInside(keys, workload, owed, window, opening);
}

/** How a decision closes an ended window: the annotation that removes it, the reason, the transition. */
export interface WindowClose {
  annotations: Record<string, null>;
  reason: string;
  window: WindowTransition;
}

/** The close of the workload's window when it has ended at `now`, or undefined. */
export function closeWindow(
  keys: AnnotationKeys,
  workload: WorkloadSummary,
  now: Date,
): WindowClose | undefined {
  const window = endedWindow(workload, now);
  if (!window) return undefined;
  const configs = describeRecords(window.records);
  return {
    annotations: { [keys.settleWindow]: null },
    reason: `settle: window opened at ${window.opened} ended at ${window.until}, covers ${configs.join(', ')}`,
    window: { transition: 'closed', until: window.until, configs },
  };
}

/**
 * The config objects of an ended window that `changes` do not include: the act layer reads them before
 * deciding, so the one restart covers every config object that changed inside the window.
 */
export function windowGaps(
  workload: WorkloadSummary,
  changes: readonly Pick<ConfigRef, 'kind' | 'name'>[],
  now: Date,
): ConfigRef[] {
  const window = endedWindow(workload, now);
  if (!window) return [];
  const known = new Set(changes.map((ref) => `${ref.kind}/${ref.name}`));
  const gaps = new Map<string, ConfigRef>();
  for (const key of window.records) {
    const config = configOfRecordKey(key);
    const id = config && `${config.kind}/${config.name}`;
    if (config && id && !known.has(id)) gaps.set(id, { ...config, namespace: workload.namespace });
  }
  return [...gaps.values()];
}
