/**
 * Settling one workload: decide, and keep deciding until the decision holds against the API server.
 *
 * - A record is written only over workload state observed *before* its config content was read (otherwise
 *   the config object is read again first), so records never move backwards, whichever instance writes.
 * - A skip that rests on a cached record ("already rolled out") of an `update` is confirmed with a GET.
 * - Every patch carries the workload's resourceVersion; a 409 reads the workload and decides again.
 */
import type { ConfigKind } from './config.js';
import type { ConfigChange, Decision, DecisionSettings, Trigger, WorkloadSummary } from './decide.js';
import { decideForWorkload, summarizeWorkload, workloadRef } from './decide.js';
import type { EventRun } from './event-run.js';
import { contentHash, keyDigests } from './hash.js';
import { KubeApiError, type ClusterClient } from './kube.js';
import { lastWriteOf } from './last-write.js';
import type { Metrics } from './metrics.js';
import type { ConfigObject, KubeObject } from './model.js';
import { describeRef } from './model.js';
import { configOptIn, isConfigOptedIn, type ConfigOptIn } from './opt-in.js';
import type { Observed, WorkloadIndex } from './workload-index.js';
import type { WorkloadKind } from './workload-kinds.js';

/** A config change and when its content was read (an index clock value, see `WorkloadIndex.tick`). */
export interface TimedChange {
  change: ConfigChange;
  readAt: number;
}

/** A workload whose patch failed. */
export interface Failure {
  workload: Decision['workload'];
  error: KubeApiError;
}

/** The decision that held, and the failure if the patch did not go through. */
export type Settled = { decision: Decision; failure?: Failure };

/** What settling needs to know. */
export interface SettleSettings extends DecisionSettings {
  dryRun: boolean;
  /** Attempts per workload when patches meet resourceVersion conflicts. */
  maxConflictAttempts?: number;
}

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

function withLastWrite(object: ConfigObject): Pick<ConfigChange, 'lastWrite'> {
  const lastWrite = lastWriteOf(object.metadata);
  return lastWrite ? { lastWrite } : {};
}

/** Settles workloads against the API server; one per process. */
export class Settler {
  private readonly optIn: ConfigOptIn;
  private readonly maxAttempts: number;

  constructor(
    private readonly client: ClusterClient,
    private readonly index: WorkloadIndex,
    private readonly settings: SettleSettings,
    private readonly metrics: Metrics,
    private readonly now: () => Date,
  ) {
    this.optIn = configOptIn(settings.annotationPrefix);
    this.maxAttempts = settings.maxConflictAttempts ?? 5;
  }

  /** Decides and acts for one workload until the decision holds (see the module comment). */
  async settle(start: Observed, changes: TimedChange[], run: EventRun): Promise<Settled> {
    let entry = start;
    let current = changes;
    let confirmed = false;
    let decision: Decision | undefined;
    const skip = (reason: string): Settled => ({
      decision: {
        workload: workloadRef(entry.summary),
        action: 'skip',
        reason,
        configs: current.map(({ change }) => describeRef(change.ref)),
      },
    });
    for (let attempt = 1; attempt <= this.maxAttempts + 2; attempt++) {
      if (run.failed) {
        return {
          ...skip('not attempted: an earlier API call of this event failed'),
          failure: notAttempted(entry, run),
        };
      }
      decision = decideForWorkload(
        this.settings,
        entry.summary,
        current.map((timed) => timed.change),
        this.now(),
      );
      if (!decision) return skip('no longer tied after a concurrent change');
      if (!decision.patch) {
        if (confirmed || !decision.upToDate || !current.some(({ change }) => change.trigger === 'update')) {
          return { decision };
        }
        const fresh = await this.refresh(entry, run);
        if (!fresh) return skip('workload was deleted');
        entry = fresh;
        confirmed = true;
        continue;
      }
      const stale = current.filter((timed) => timed.readAt < entry.observedAt);
      if (stale.length > 0) {
        const fresh = await Promise.all(stale.map((timed) => this.reread(timed, run)));
        current = [
          ...current.filter((timed) => timed.readAt >= entry.observedAt),
          ...fresh.filter((timed) => timed !== undefined),
        ];
        if (current.length === 0) return skip('config object was deleted or opted out meanwhile');
        continue;
      }
      const patched = await this.patch(entry, decision, run);
      if (patched !== 'conflict')
        return patched === 'deleted' ? skip('workload was deleted before the patch') : patched;
      const fresh = await this.refresh(entry, run);
      if (!fresh) return skip('workload was deleted before the patch');
      entry = fresh;
      confirmed = true;
    }
    return {
      decision: decision ?? skip('conflicting').decision,
      failure: {
        workload: workloadRef(entry.summary),
        error: apiError(entry, 409, `still conflicting after ${this.maxAttempts} attempts`),
      },
    };
  }

  /** Sends a decision's patch; `conflict` on a stale resourceVersion, `deleted` on a 404. */
  private async patch(
    entry: Observed,
    decision: Decision,
    run: EventRun,
  ): Promise<Settled | 'conflict' | 'deleted'> {
    const { kind, namespace, name } = entry.summary;
    const patch = decision.patch!;
    try {
      const patched = await run.call((call) =>
        this.client.patchWorkload(kind, namespace, name, patch, { ...call, dryRun: this.settings.dryRun }),
      );
      if (!this.settings.dryRun) this.index.observe(this.summarize(kind, patched));
      return { decision };
    } catch (error) {
      if (!(error instanceof KubeApiError)) throw error;
      if (error.status === 404) {
        this.index.forget(kind, namespace, name);
        return 'deleted';
      }
      if (error.status !== 409) return { decision, failure: { workload: decision.workload, error } };
      this.metrics.patchConflicts.inc();
      return 'conflict';
    }
  }

  /**
   * Reads a config object again; undefined when it is gone or no longer opted in (a deletion: when it
   * exists again).
   */
  private async reread(timed: TimedChange, run: EventRun): Promise<TimedChange | undefined> {
    const readAt = this.index.tick();
    const object = await run.call((call) => this.client.getConfig(timed.change.ref, call));
    if (timed.change.deleted) return object ? undefined : { change: timed.change, readAt };
    if (!object || !isConfigOptedIn(object.metadata, this.optIn)) return undefined;
    return { change: toChange(timed.change.ref.kind, object, timed.change.trigger), readAt };
  }

  /** Reads a workload from the API server; undefined when it is gone. */
  private async refresh(entry: Observed, run: EventRun): Promise<Observed | undefined> {
    const { kind, namespace, name } = entry.summary;
    const object = await run.call((call) => this.client.getWorkload(kind, namespace, name, call));
    if (!object) {
      this.index.forget(kind, namespace, name);
      return undefined;
    }
    return this.index.observe(this.summarize(kind, object));
  }

  private summarize(kind: WorkloadKind, object: KubeObject): WorkloadSummary {
    return summarizeWorkload(this.settings, kind, object);
  }
}

function apiError(entry: Observed, status: number, detail: string): KubeApiError {
  const { kind, namespace, name } = entry.summary;
  return new KubeApiError(status, 'patch', `${kind.plural}.${kind.group}`, namespace, name, detail);
}

/** The failure of a workload left alone because an earlier call of its event failed. */
function notAttempted(entry: Observed, run: EventRun): Failure {
  const cause = run.cause?.message ?? 'an earlier API call of this event failed';
  return { workload: workloadRef(entry.summary), error: apiError(entry, 0, `not attempted: ${cause}`) };
}
