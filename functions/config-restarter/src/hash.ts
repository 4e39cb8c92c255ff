import { createHash, createHmac } from 'node:crypto';
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_SPECS } from './config-kinds.js';
import type { ConfigObject } from './model.js';

/** The recorded "hash" of a config object that was deleted (with `RESTART_ON_DELETE`). */
export const DELETED_HASH = 'deleted';

function digest(kind: ConfigKind, object: ConfigObject, canonical: string): string {
  const value = CONFIG_KIND_SPECS[kind].keyedHash
    ? createHmac('sha256', object.metadata?.uid ?? '')
        .update(canonical)
        .digest('hex')
    : createHash('sha256').update(canonical).digest('hex');
  return `sha256:${value.slice(0, 32)}`;
}

/**
 * Hash of the content of a ConfigMap or Secret, as `sha256:<32 hex>`. Only the content counts (data,
 * binaryData and, for Secrets, type): labels, annotations and resourceVersion changes do not change the
 * hash, so a metadata-only update restarts nothing. A Secret's hash is an HMAC keyed by the Secret's uid,
 * so the value recorded on a workload (readable by anyone who can read the workload) cannot be checked
 * against guessed secret values offline.
 */
export function contentHash(kind: ConfigKind, object: ConfigObject): string {
  return digest(kind, object, JSON.stringify(CONFIG_KIND_SPECS[kind].canonicalContent(object)));
}

/**
 * One digest per key of the content (keyed by the uid for Secrets, like {@link contentHash}): what a
 * key-subset hash is computed from, so the pure core never holds the content itself.
 */
export function keyDigests(kind: ConfigKind, object: ConfigObject): Record<string, string> {
  return Object.fromEntries(
    CONFIG_KIND_SPECS[kind]
      .keyedContent(object)
      .map(([key, value]) => [key, digest(kind, object, JSON.stringify([key, value]))]),
  );
}

/**
 * Hash of the content of only `keys` (sorted), from the per-key digests; a missing key counts as absent,
 * so adding or removing a used key changes it.
 */
export function subsetHash(digests: Readonly<Record<string, string>>, keys: readonly string[]): string {
  const canonical = JSON.stringify(
    keys.map((key) => [key, Object.hasOwn(digests, key) ? digests[key] : null]),
  );
  return `sha256:${createHash('sha256').update(canonical).digest('hex').slice(0, 32)}`;
}
