/**
 * Content hashes of ConfigMaps and Secrets. Only the content counts (data, binaryData and, for
 * Secrets, type): labels, annotations and resourceVersion changes do not change the hash, so a
 * metadata-only update restarts nothing.
 */
import { createHash, createHmac } from 'node:crypto';
import type { ConfigKind } from './config.js';
import type { ConfigObject } from './model.js';

function sorted(record: Record<string, string> | undefined): [string, string][] {
  if (!record || typeof record !== 'object') return [];
  return Object.keys(record)
    .sort()
    .map((key) => [key, String(record[key])]);
}

/**
 * Hash of the content of a ConfigMap or Secret, as `sha256:<32 hex>`.
 * A Secret's hash is an HMAC keyed by the Secret's uid, so the value recorded on a workload (readable
 * by anyone who can read the workload) cannot be checked against guessed secret values offline.
 */
export function contentHash(kind: ConfigKind, object: ConfigObject): string {
  const canonical = JSON.stringify({
    data: sorted(object.data),
    binaryData: sorted(object.binaryData),
    ...(kind === 'Secret' ? { type: object.type ?? 'Opaque' } : {}),
  });
  const digest =
    kind === 'Secret'
      ? createHmac('sha256', object.metadata?.uid ?? '')
          .update(canonical)
          .digest('hex')
      : createHash('sha256').update(canonical).digest('hex');
  return `sha256:${digest.slice(0, 32)}`;
}
