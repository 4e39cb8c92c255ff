/**
 * What the function stores on a workload's metadata, and how: the hash record (`configHashes`, one
 * content hash per config object and key set), the pending restart (`pendingRestart`) and the settle window
 * (`settleWindow`). Keys and codecs only; what to write is decided in decide.ts, storm-control.ts and
 * settle-window.ts.
 */
import { CONFIG_KIND_LIST, CONFIG_KIND_SPECS } from './config-kinds.js';
import type { ConfigRef } from './model.js';

/** Canonical key of a config object inside one namespace, used in the hash record. */
export function configKey(ref: Pick<ConfigRef, 'kind' | 'name'>): string {
  return `${CONFIG_KIND_SPECS[ref.kind].recordPrefix}/${ref.name}`;
}

/**
 * Key of one (config object, key set) in the hash record: `configmap/<name>` when every key counts,
 * `configmap/<name>#<k1,k2>` (keys sorted) when the workload uses only those keys. Config keys hold only
 * `[-._a-zA-Z0-9]`, so `#` and `,` cannot clash with them.
 */
export function recordKey(ref: Pick<ConfigRef, 'kind' | 'name'>, keys?: readonly string[]): string {
  return keys === undefined ? configKey(ref) : `${configKey(ref)}#${keys.join(',')}`;
}

/** The config object a record key names (`configmap/<name>#<keys>` -> ConfigMap `<name>`), or undefined. */
export function configOfRecordKey(key: string): Pick<ConfigRef, 'kind' | 'name'> | undefined {
  const slash = key.indexOf('/');
  const spec = CONFIG_KIND_LIST.find((s) => s.recordPrefix === key.slice(0, slash));
  const name = key.slice(slash + 1).split('#')[0] ?? '';
  return slash > 0 && spec && name ? { kind: spec.kind, name } : undefined;
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

/** One entry to write into a hash record: the config object, its record key and the hash. */
export interface RecordEntry {
  ref: Pick<ConfigRef, 'kind' | 'name'>;
  key: string;
  hash: string;
}

/** The record after writing `entries`: one entry per (config, key set); other key sets of a config go. */
export function withEntries(
  records: Readonly<Record<string, string>>,
  entries: readonly RecordEntry[],
): Record<string, string> {
  const next: Record<string, string> = { ...records };
  for (const entry of entries) {
    const base = configKey(entry.ref);
    for (const key of Object.keys(next)) if (key === base || key.startsWith(`${base}#`)) delete next[key];
    next[entry.key] = entry.hash;
  }
  return next;
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

/** Serialises a pending restart with sorted records. */
export function formatPendingRestart(pending: PendingRestart): string {
  return JSON.stringify({ records: [...pending.records].sort(), since: pending.since, due: pending.due });
}

/** The hash record annotation (`annotationKey`) after writing `entries`; nothing when there are none. */
export function hashRecordAnnotation(
  annotationKey: string,
  records: Readonly<Record<string, string>>,
  entries: readonly RecordEntry[],
): Record<string, string> {
  return entries.length === 0 ? {} : { [annotationKey]: formatHashRecord(withEntries(records, entries)) };
}

/**
 * An open settle window, kept on the workload's metadata: the record keys of the config objects that
 * changed inside it, when it opened and when it ends (RFC 3339). The restart happens once, at `until`.
 */
export interface SettleWindow {
  records: string[];
  opened: string;
  until: string;
}

/** Parses the settle-window annotation; anything unreadable (or without an end) counts as no window. */
export function parseSettleWindow(value: string | undefined): SettleWindow | undefined {
  if (!value) return undefined;
  try {
    const parsed = JSON.parse(value) as Partial<SettleWindow> | null;
    if (!parsed || typeof parsed !== 'object' || !Array.isArray(parsed.records)) return undefined;
    const records = parsed.records.filter((r): r is string => typeof r === 'string');
    const until = typeof parsed.until === 'string' ? parsed.until : '';
    if (records.length === 0 || !Number.isFinite(Date.parse(until))) return undefined;
    const opened = typeof parsed.opened === 'string' ? parsed.opened : '';
    return { records: [...new Set(records)].sort(), opened, until };
  } catch {
    return undefined;
  }
}

/** Serialises a settle window with sorted records. */
export function formatSettleWindow(window: SettleWindow): string {
  return JSON.stringify({
    records: [...new Set(window.records)].sort(),
    opened: window.opened,
    until: window.until,
  });
}
