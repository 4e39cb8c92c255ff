/**
 * Who changed a config object last, as far as the API server can tell: the `metadata.managedFields` entry
 * with the latest time. That names a field manager (the name a client chose for its writes, e.g.
 * `kubectl-edit`, `helm`, `argocd-controller`), not an authenticated user: the API server records no user
 * there, and any client may pick any manager name. Times have one-second resolution.
 */
import type { ObjectMeta } from './model.js';

/** The last write of an object, as its managedFields record it. */
export interface LastWrite {
  /** The field manager of the latest entry (a client-chosen name, not a user). */
  fieldManager: string;
  /** `Update` (create, update, patch) or `Apply` (server-side apply). */
  operation: string;
  /** When that manager last changed a field (RFC 3339, seconds). */
  time: string;
  /** The subresource written, when not the object itself. */
  subresource?: string;
  /** Other field managers with a change in the same second: which came last can not be told apart. */
  sameSecond?: string[];
}

/** The latest entry of `metadata.managedFields`, or undefined when there is none with a manager and a time. */
export function lastWriteOf(metadata: ObjectMeta | undefined): LastWrite | undefined {
  const entries = (Array.isArray(metadata?.managedFields) ? metadata.managedFields : [])
    .map((entry) => ({ entry, at: Date.parse(entry?.time ?? '') }))
    .filter(({ entry, at }) => typeof entry?.manager === 'string' && entry.manager && Number.isFinite(at));
  if (entries.length === 0) return undefined;
  const latest = Math.max(...entries.map(({ at }) => at));
  const [first, ...others] = entries.filter(({ at }) => at === latest).map(({ entry }) => entry);
  const sameSecond = [...new Set(others.map((entry) => entry.manager!))].filter((m) => m !== first!.manager);
  return {
    fieldManager: first!.manager!,
    operation: first!.operation ?? 'Update',
    time: first!.time!,
    ...(first!.subresource ? { subresource: first!.subresource } : {}),
    ...(sameSecond.length > 0 ? { sameSecond: sameSecond.sort() } : {}),
  };
}

/** `field manager "kubectl-edit" (Update, 2026-01-01T00:00:00Z)`, for reasons and logs. */
export function describeLastWrite(write: LastWrite): string {
  const also = write.sameSecond ? `; same second: ${write.sameSecond.join(', ')}` : '';
  return `field manager "${write.fieldManager}" (${write.operation}${write.subresource ? ` of ${write.subresource}` : ''}, ${write.time}${also})`;
}
