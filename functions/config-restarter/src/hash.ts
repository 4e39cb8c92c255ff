import { createHash, createHmac } from 'node:crypto';
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_SPECS } from './config-kinds.js';
import type { ConfigObject } from './model.js';

/**
 * Hash of the content of a ConfigMap or Secret, as `sha256:<32 hex>`. Only the content counts (data,
 * binaryData and, for Secrets, type): labels, annotations and resourceVersion changes do not change the
 * hash, so a metadata-only update restarts nothing. A Secret's hash is an HMAC keyed by the Secret's uid,
 * so the value recorded on a workload (readable by anyone who can read the workload) cannot be checked
 * against guessed secret values offline.
 */
export function contentHash(kind: ConfigKind, object: ConfigObject): string {
  const spec = CONFIG_KIND_SPECS[kind];
  const canonical = JSON.stringify(spec.canonicalContent(object));
  const digest = spec.keyedHash
    ? createHmac('sha256', object.metadata?.uid ?? '')
        .update(canonical)
        .digest('hex')
    : createHash('sha256').update(canonical).digest('hex');
  return `sha256:${digest.slice(0, 32)}`;
}
