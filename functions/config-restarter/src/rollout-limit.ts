/**
 * The per-namespace limit of rollouts in progress (`MAX_CONCURRENT_ROLLOUTS`, default unlimited), pure: a
 * restart of a workload whose rollouts are followed, while the namespace already has that many rollout records
 * `progressing`, is deferred as a pending restart (`<prefix>/pendingRestart`, due now), so it stays owed on the
 * workload: the end of one of those rollouts (rollout-follow.ts carries the namespace on) or the next resync
 * restarts it. So a shared ConfigMap does not roll fifty Deployments at once.
 */
import type { AnnotationKeys } from './annotations.js';
import type { Decision } from './decision-types.js';
import { formatPendingRestart } from './records.js';
import type { WorkloadSummary } from './workload-summary.js';

/** Whether the limit applies: a restart of a followed kind while `max` rollouts or more are in progress. */
function limited(workload: WorkloadSummary, decision: Decision, inProgress: number, max: number): boolean {
  return max > 0 && decision.action === 'restart' && workload.kind.rollout !== undefined && inProgress >= max;
}

/** The deferral of `decision` while `inProgress` rollouts run in the namespace and the limit is `max`. */
export function limitGate(
  keys: AnnotationKeys,
  workload: WorkloadSummary,
  decision: Decision,
  inProgress: number,
  max: number,
  now: Date,
): Decision | undefined {
  if (!limited(workload, decision, inProgress, max)) return undefined;
  const records = new Set([...(workload.pending?.records ?? []), ...Object.keys(decision.rolled ?? {})]);
  const stamp = now.toISOString();
  const pending = formatPendingRestart({
    records: [...records],
    since: workload.pending?.since || stamp,
    due: stamp,
  });
  return {
    workload: decision.workload,
    configs: decision.configs,
    action: 'defer',
    reason: `MAX_CONCURRENT_ROLLOUTS=${max}: ${inProgress} rollout(s) in progress in namespace ${workload.namespace}; restart pending until one ends; ${decision.reason}`,
    patch: {
      metadata: {
        resourceVersion: workload.resourceVersion || undefined,
        annotations: { [keys.pendingRestart]: pending },
      },
    },
  };
}
