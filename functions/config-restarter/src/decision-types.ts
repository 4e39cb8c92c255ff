/**
 * The types a decision is made of and speaks in: made by decide.ts, applied by settle.ts, sent by kube.ts
 * (the merge patch). Types only, so the API module needs nothing of the pure core.
 */
import type { LastWrite } from './last-write.js';
import type { ConfigRef, WorkloadRef } from './model.js';
import type { RolloutRecord } from './rollout.js';

/** Settings the decisions depend on. */
export interface DecisionSettings {
  annotationPrefix: string;
  matchLabels: string[];
  /** Default minimum time between two restarts of a workload (`MIN_RESTART_INTERVAL`); 0 or unset = none. */
  minRestartIntervalMs?: number;
  /** Default settle window of a workload (`SETTLE_WINDOW`); 0 or unset = none. */
  settleWindowMs?: number;
}

/** What caused a decision: an ApiServerSource action, or a resync. */
export type Trigger = 'add' | 'update' | 'delete' | 'resync';

/** The state of one config object as just read from the API server. */
export interface ConfigChange {
  ref: ConfigRef;
  /** Content hash, see `contentHash`; `deleted` for a deleted object (see `deleted`). */
  hash: string;
  labels: Record<string, string>;
  trigger: Trigger;
  /** One digest per key of the content (see `keyDigests`), for workloads that use only some keys. */
  keyDigests?: Readonly<Record<string, string>>;
  /** The object is confirmed gone (a `delete` with `RESTART_ON_DELETE`): every key set hashes to `deleted`. */
  deleted?: true;
  /** Its latest managedFields entry: the field manager that changed it last (see last-write.ts). */
  lastWrite?: LastWrite;
}

/**
 * `restart` rolls the pods; `record` only stores the content hash (or clears a pending restart or an ended
 * settle window with nothing to roll out); `defer` keeps a restart for later: pending because the workload
 * restarted less than its minimum interval ago, inside its settle window, or waiting for a lower
 * `restartOrder` group; `hold`: a lower group's rollout failed, the restart waits for the next change or a
 * re-trigger (restart-order.ts); `skip` changes nothing.
 */
export type DecisionAction = 'restart' | 'record' | 'defer' | 'hold' | 'skip';

/**
 * A JSON merge patch of a workload: metadata annotations (with the resourceVersion precondition) and,
 * for a restart, the pod template's annotations at the kind's template path (e.g. `spec.template`).
 */
export interface MergePatch {
  /** Annotation values; `null` removes one (a carried-out pending restart). */
  metadata: { resourceVersion?: string | undefined; annotations: Record<string, string | null> };
  [field: string]: unknown;
}

/** One decision about one workload, with the reason a person can read. */
export interface Decision {
  workload: WorkloadRef;
  action: DecisionAction;
  reason: string;
  /** The config objects (`Kind ns/name`) this decision is about. */
  configs: string[];
  /** The patch of a `restart`, `record` or `defer`, which settle.ts sends. */
  patch?: MergePatch;
  /**
   * Set on a `skip` because every tied config object's record already equals its current content: the
   * one skip that rests on the workload's record, so it is confirmed against the API server when the
   * record came from a cache.
   */
  upToDate?: true;
  /** What the decision does to the workload's settle window, for logs and metrics (see settle-window.ts). */
  window?: WindowTransition;
  /** A restart's rolled-out content, record key -> content hash (for its `Restarted` Event). */
  rolled?: Record<string, string>;
  /** A restart's rollout record, when the kind's rollouts are followed (see rollout.ts). */
  rollout?: RolloutRecord;
}

/** A settle window opened, extended by more config objects, or closed by a decision. */
export interface WindowTransition {
  transition: 'opened' | 'extended' | 'closed';
  /** When the window ends (ended). */
  until: string;
  /** The config objects it covers, `Kind/name`. */
  configs: string[];
}
