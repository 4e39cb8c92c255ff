/**
 * What handling one event came to: the decisions as reported (without their patches), the workloads that
 * failed, and for an event that failed as a whole, why. The restarter makes it; reply.ts answers it.
 */
import type { ConfigChange, Decision } from './decision-types.js';
import type { Failure } from './failure.js';
import type { LastWrite } from './last-write.js';
import { describeRef } from './model.js';
import type { RolloutReport } from './rollout.js';

/** A workload whose patch did not go through, and why. */
export interface WorkloadFailure {
  workload: Decision['workload'];
  error: Failure;
}

/** The last write of one config object of a decision: a field manager, not a user (see last-write.ts). */
export type ConfigLastWrite = { config: string } & LastWrite;

/**
 * A decision as reported: no patch body, plus whether it was a dry run and, per config object it is about,
 * the field manager that changed that object last.
 */
export type ReportedDecision = Omit<Decision, 'patch' | 'upToDate' | 'window' | 'rolled' | 'rollout'> & {
  dryRun: boolean;
  lastWrite: ConfigLastWrite[];
};

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
  /** Rollout outcomes written while handling it (rollout-follow.ts). */
  rollouts?: RolloutReport[];
}

/** Nothing to do, and why. */
export function ignored(reason: string): Outcome {
  return { result: 'ignored', reason, decisions: [], failures: [] };
}

/** The last write of each changed config object, by `Kind ns/name` (as decisions name them). */
export function lastWrites(
  changes: readonly { change: Pick<ConfigChange, 'ref' | 'lastWrite'> }[],
): Map<string, LastWrite> {
  const writes = new Map<string, LastWrite>();
  for (const { change } of changes)
    if (change.lastWrite) writes.set(describeRef(change.ref), change.lastWrite);
  return writes;
}

/** A decision as reported: without its patch, saying whether it was a dry run and who changed its configs. */
export function report(
  decision: Decision,
  dryRun: boolean,
  writes: ReadonlyMap<string, LastWrite>,
): ReportedDecision {
  // The settle window's transition is logged and counted where it happens (window-timers.ts), not replied.
  // Restarts' content and rollout records go into their Kubernetes Events (workload-events.ts), not replies.
  const {
    patch: _patch,
    upToDate: _upToDate,
    window: _window,
    rolled: _rolled,
    rollout: _rollout,
    ...rest
  } = decision;
  const reason =
    dryRun && decision.action !== 'skip' ? `dry run, nothing persisted: ${decision.reason}` : decision.reason;
  const lastWrite = decision.configs.flatMap((config) => {
    const write = writes.get(config);
    return write ? [{ config, ...write }] : [];
  });
  return { ...rest, reason, dryRun, lastWrite };
}
