/**
 * The annotation keys the function reads and writes, all derived from one prefix (`ANNOTATION_PREFIX`),
 * and the opt-in check both config objects and workloads use.
 */

/** The annotation keys, derived from the prefix. */
export interface AnnotationKeys {
  /** On a ConfigMap/Secret: opts it in. */
  triggerRestart: string;
  /** On a workload's metadata: opts it in. */
  restartOnTrigger: string;
  /** Written on the pod template when the function restarts a workload. */
  restartTimestamp: string;
  /** Written on the workload's metadata: JSON map of config key -> content hash last rolled out. */
  configHashes: string;
  /** On a workload's metadata: minimum time between two restarts (Go duration such as `5m`). */
  minRestartInterval: string;
  /** Written on the workload's metadata: a restart deferred by the minimum interval (JSON). */
  pendingRestart: string;
  /** On a workload's metadata: its settle window (Go duration such as `30s`; `0` = none). */
  settle: string;
  /** Written on the workload's metadata: the open settle window (JSON), removed when it closes. */
  settleWindow: string;
  /** Written on the workload's metadata: the last restart and its outcome (JSON, see rollout.ts). */
  rollout: string;
  /** On a workload's metadata: its group among the workloads tied to one change (an integer, see restart-order.ts). */
  restartOrder: string;
  /** On a Knative Service's metadata: `revert` reverts the template of a failed rollout (rollout.ts). */
  onFailure: string;
}

/** Annotation keys for a prefix such as `rolling.restart.controller`. */
export function annotationKeys(prefix: string): AnnotationKeys {
  return {
    triggerRestart: `${prefix}/triggerRestart`,
    restartOnTrigger: `${prefix}/restartOnTrigger`,
    restartTimestamp: `${prefix}/restartTimestamp`,
    configHashes: `${prefix}/configHashes`,
    minRestartInterval: `${prefix}/minRestartInterval`,
    pendingRestart: `${prefix}/pendingRestart`,
    settle: `${prefix}/settle`,
    settleWindow: `${prefix}/settleWindow`,
    rollout: `${prefix}/rollout`,
    restartOrder: `${prefix}/restartOrder`,
    onFailure: `${prefix}/onFailure`,
  };
}

/** True when the annotation `key` is `"true"` (any letter case). */
export function isOptedIn(annotations: Record<string, string> | undefined, key: string): boolean {
  return String(annotations?.[key] ?? '').toLowerCase() === 'true';
}
