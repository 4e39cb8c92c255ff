/**
 * Settle windows on time, while an instance runs: one timer per workload whose index entry carries a window
 * (settle-window.ts), set from the warm index's entries, so the first list of a cold instance resumes every
 * open window and closes an ended one at once. A close that fails transiently is tried again with backoff.
 * When no instance runs at a window's end (scaled to zero), the window stays on the workload and is closed
 * by the next instance or resync that sees it (README "Settle window"). Also what a transition logs and
 * counts.
 */
import type { Decision } from './decision-types.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Outcome } from './outcome.js';
import type { IndexFollower } from './workload-index.js';
import { qualifiedKind, type WorkloadKind } from './workload-kinds.js';
import type { WorkloadSummary } from './workload-summary.js';

/** One workload, as the index names it. */
export interface WorkloadKey {
  kind: WorkloadKind;
  namespace: string;
  name: string;
}

/** Options of {@link WindowTimers}. */
export interface WindowTimersOptions {
  /** Closes the window of one workload (restarter.ts `closeWindow`). */
  close(workload: WorkloadKey): Promise<Outcome>;
  logger: Logger;
  metrics: Metrics;
  now: () => Date;
  /** First delay after a close that failed transiently; doubles up to `maxRetryMs` (defaults 1 s, 60 s). */
  retryMs?: number;
  maxRetryMs?: number;
}

/** A window being timed. */
interface Timed {
  key: WorkloadKey;
  until: string;
  timer: NodeJS.Timeout | undefined;
  attempt: number;
}

/** Past the window's end, so the instance's own clock has passed it too when the close decides. */
const SLACK_MS = 20;
/** The longest delay `setTimeout` keeps (a longer one fires at once); a longer window is armed again. */
const MAX_DELAY_MS = 2 ** 31 - 1;

function idOf({ kind, namespace, name }: WorkloadKey): string {
  return `${qualifiedKind(kind)}/${namespace}/${name}`;
}

/** True when the close should be tried again later (a transient failure of the close or of its patch). */
function retryable(outcome: Outcome): boolean {
  return (
    outcome.failure?.retry === 'later' || outcome.failures.some((failure) => failure.error.retry === 'later')
  );
}

/** Timers that close settle windows when they end; fed by the index (see {@link IndexFollower}). */
export class WindowTimers implements IndexFollower {
  private readonly timed = new Map<string, Timed>();
  private stopped = false;

  constructor(private readonly options: WindowTimersOptions) {}

  /** A workload's entry changed: time its window, move the timer to a new end, or drop it. */
  observed(summary: WorkloadSummary): void {
    const id = idOf(summary);
    const until = summary.window?.until;
    const current = this.timed.get(id);
    if (current?.until === until) return;
    if (current) this.drop(id);
    if (until === undefined || this.stopped) return;
    const timed: Timed = { key: summary, until, timer: undefined, attempt: 0 };
    this.timed.set(id, timed);
    this.arm(id, timed, Date.parse(until) - this.options.now().getTime() + SLACK_MS);
  }

  /** A workload left the index. */
  removed(summary: WorkloadSummary): void {
    this.drop(idOf(summary));
  }

  /** Stops every timer (shutdown); windows stay on the workloads for the next instance. */
  stop(): void {
    this.stopped = true;
    for (const id of [...this.timed.keys()]) this.drop(id);
  }

  private drop(id: string): void {
    clearTimeout(this.timed.get(id)?.timer);
    this.timed.delete(id);
  }

  private arm(id: string, timed: Timed, delayMs: number): void {
    timed.timer = setTimeout(() => void this.fire(id, timed), Math.min(Math.max(0, delayMs), MAX_DELAY_MS));
    // A timer never keeps a draining process alive: the window stays on the workload.
    timed.timer.unref();
  }

  private async fire(id: string, timed: Timed): Promise<void> {
    timed.timer = undefined;
    const early = Date.parse(timed.until) - this.options.now().getTime();
    if (early > 0) return this.arm(id, timed, early + SLACK_MS);
    const { logger } = this.options;
    let outcome: Outcome;
    try {
      outcome = await this.options.close(timed.key);
    } catch (error) {
      logger.error('settle window close failed', {
        workload: id,
        error: error instanceof Error ? error.message : String(error),
      });
      return;
    }
    this.report(id, outcome);
    if (this.timed.get(id) !== timed || !retryable(outcome)) return;
    const { retryMs = 1000, maxRetryMs = 60_000 } = this.options;
    this.arm(id, timed, Math.min(retryMs * 2 ** timed.attempt++, maxRetryMs));
  }

  /** Logs and counts a close the timer made, as the HTTP layer does for an event's decisions. */
  private report(id: string, outcome: Outcome): void {
    const { logger, metrics } = this.options;
    for (const decision of outcome.decisions) {
      logger.info('decision', { ...decision, trigger: 'settle-window' });
      const dryRun = String(decision.dryRun);
      metrics.decisions.inc({ kind: decision.workload.kind, action: decision.action, dry_run: dryRun });
    }
    const failure = outcome.failure ?? outcome.failures[0]?.error;
    if (failure) logger.error('settle window close failed', { workload: id, error: failure.message });
  }
}

/**
 * Logs and counts the settle windows that decisions which went through opened, extended or closed (none
 * in a dry run: nothing is persisted).
 */
export function reportWindows(
  logger: Logger,
  metrics: Metrics,
  settled: readonly { decision: Decision; failure?: unknown }[],
  dryRun: boolean,
): void {
  if (dryRun) return;
  for (const { decision, failure } of settled) {
    if (!decision.window || failure) continue;
    const { transition, until, configs } = decision.window;
    metrics.settleWindows.inc({ transition });
    logger.info(`settle window ${transition}`, {
      workload: decision.workload,
      action: decision.action,
      until,
      configs,
    });
  }
}
