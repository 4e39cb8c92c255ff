/**
 * What handling one event came to: the decisions as reported (without their patches), the workloads that
 * failed, and for an event that failed as a whole, why. The restarter makes it; reply.ts answers it.
 */
import type { Decision } from './decision-types.js';
import type { Failure } from './failure.js';

/** A workload whose patch did not go through, and why. */
export interface WorkloadFailure {
  workload: Decision['workload'];
  error: Failure;
}

/** A decision as reported: no patch body, plus whether it was a dry run. */
export type ReportedDecision = Omit<Decision, 'patch' | 'upToDate'> & { dryRun: boolean };

/** The result of handling one notice. */
export interface Outcome {
  /**
   * `processed`: decisions were made (some workloads may have failed); `ignored`: nothing to do; `refused`:
   * outside the watched namespaces; `failed`: the event as a whole could not be handled (`failure` says why).
   */
  result: 'processed' | 'ignored' | 'refused' | 'failed';
  reason: string;
  decisions: ReportedDecision[];
  /** The workloads whose patch did not go through. */
  failures: WorkloadFailure[];
  /** Set with `failed`. */
  failure?: Failure;
}

/** Nothing to do, and why. */
export function ignored(reason: string): Outcome {
  return { result: 'ignored', reason, decisions: [], failures: [] };
}

/** A decision as reported: without its patch, saying whether it was a dry run. */
export function report(decision: Decision, dryRun: boolean): ReportedDecision {
  const { patch: _patch, upToDate: _upToDate, ...rest } = decision;
  const reason =
    dryRun && decision.action !== 'skip' ? `dry run, nothing persisted: ${decision.reason}` : decision.reason;
  return { ...rest, reason, dryRun };
}
