import type { ConfigRef, WorkloadRef } from './model.js';

/** What caused a decision: an ApiServerSource action, or a resync. */
export type Trigger = 'add' | 'update' | 'delete' | 'resync';

/** The state of one config object as just read from the API server. */
export interface ConfigChange {
  ref: ConfigRef;
  /** Content hash, see `contentHash`. */
  hash: string;
  labels: Record<string, string>;
  trigger: Trigger;
}

/** `restart` rolls the pods; `record` only stores the content hash; `skip` changes nothing. */
export type DecisionAction = 'restart' | 'record' | 'skip';

/** A JSON merge patch of a workload (metadata annotations and the pod template's annotations). */
export interface MergePatch {
  metadata: { resourceVersion?: string | undefined; annotations: Record<string, string> };
  spec?: { template: { metadata: { annotations: Record<string, string> } } };
}

/** One decision about one workload, with the reason a person can read. */
export interface Decision {
  workload: WorkloadRef;
  action: DecisionAction;
  reason: string;
  /** The config objects (`Kind ns/name`) this decision is about. */
  configs: string[];
  /** The patch to apply for `restart` and `record`. */
  patch?: MergePatch;
}
