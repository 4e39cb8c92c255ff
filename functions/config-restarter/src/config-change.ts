/**
 * The change a config object amounts to, as the decisions see it: its current state just read from the API
 * server (content hash, per-key digests, labels, last writer), or a confirmed deletion.
 */
import type { ConfigKind } from './config.js';
import type { ConfigChange, Trigger } from './decision-types.js';
import { contentHash, DELETED_HASH, keyDigests } from './hash.js';
import { lastWriteOf } from './last-write.js';
import type { ConfigObject } from './model.js';

/** The change a config object's current state amounts to. */
export function toChange(kind: ConfigKind, object: ConfigObject, trigger: Trigger): ConfigChange {
  return {
    ref: { kind, namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' },
    hash: contentHash(kind, object),
    labels: object.metadata?.labels ?? {},
    trigger,
    keyDigests: keyDigests(kind, object),
    ...withLastWrite(object),
  };
}

/** The change's last write, when the object's managedFields name one. */
function withLastWrite(object: ConfigObject): Pick<ConfigChange, 'lastWrite'> {
  const lastWrite = lastWriteOf(object.metadata);
  return lastWrite ? { lastWrite } : {};
}

/** A deletion confirmed by a 404: its labels are gone, so only references tie workloads to it. */
export function tombstone(ref: ConfigChange['ref']): ConfigChange {
  return { ref, hash: DELETED_HASH, labels: {}, trigger: 'delete', deleted: true };
}
