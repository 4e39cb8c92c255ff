/**
 * Settling one workload: decide (through the `restartOrder` gate, if any), and keep deciding until the decision
 * holds against the API server.
 * - A record is written only over workload state observed *before* its config content was read (otherwise
 *   the config object is read again first), so records never move backwards, whichever instance writes.
 * - A skip that rests on a cached record ("already rolled out") of an `update` is confirmed with a GET.
 * - Every patch carries the workload's resourceVersion; a 409 reads the workload and decides again, at most
 *   `maxConflictAttempts` patches; then the workload fails with a `conflicts` failure (retry later).
 * - A settle window that has ended is closed with the current content of every config object it covers:
 *   those the event did not read are read first (settle-window.ts `windowGaps`).
 */
import type { ConfigKind } from './config.js';
import { toChange, tombstone } from './config-change.js';
import { decideForWorkload } from './decide.js';
import type { ConfigChange, Decision, DecisionSettings } from './decision-types.js';
import { apiFailure, type EventRun } from './event-run.js';
import { Failure } from './failure.js';
import { KubeApiError, type ClusterClient } from './kube.js';
import type { Metrics } from './metrics.js';
import { describeRef, type ConfigRef, type KubeObject } from './model.js';
import type { WorkloadFailure } from './outcome.js';
import { configOptIn, isConfigOptedIn, type ConfigOptIn } from './opt-in.js';
import { windowGaps } from './settle-window.js';
import type { Observed, WorkloadIndex } from './workload-index.js';
import type { WorkloadKind } from './workload-kinds.js';
import { summarizeWorkload, workloadRef, type WorkloadSummary } from './workload-summary.js';

/** A config change and when its content was read (an index clock value, see `WorkloadIndex.tick`). */
export interface TimedChange {
  change: ConfigChange;
  readAt: number;
}

/**
 * The decision that held, the failure if the patch did not go through, and the config objects settling read
 * beyond the given changes (an ended settle window's).
 */
export type Settled = { decision: Decision; failure?: WorkloadFailure; read?: TimedChange[] };

/** What settling needs to know. */
export interface SettleSettings extends DecisionSettings {
  dryRun: boolean;
  /** Patches per workload and event while they meet resourceVersion conflicts (default 5). */
  maxConflictAttempts?: number;
  /** Kinds acted on (`CONFIG_KINDS`); an ended window's config objects of other kinds are not read. */
  configKinds: ConfigKind[];
  /** A confirmed deletion restarts the workloads referencing the object by name (`RESTART_ON_DELETE`). */
  restartOnDelete?: boolean;
}

/** What one workload's settling has seen so far. */
interface SettleState {
  /** The latest observation of the workload. */
  entry: Observed;
  /** The changes, each with when its content was read. */
  changes: TimedChange[];
  /** The workload was read from the API server during this settling (not only from the index). */
  confirmed: boolean;
  /** The latest decision. */
  decision?: Decision;
  /** The config objects of an ended settle window, once read (at most once per settling). */
  read?: TimedChange[];
  /** What replaces a decision that must wait (restart-order.ts), or undefined when it may go ahead. */
  gate: Gate | undefined;
}
type Gate = (decision: Decision, workload: WorkloadSummary) => Decision | undefined;

/**
 * How a round ended: settled, `again` (a read changed the state: decide again) or `conflict` (the patch met
 * a newer resourceVersion; the workload has been read again).
 */
type Round = Settled | 'again' | 'conflict';

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

  /**
   * Decides and acts for one workload until the decision holds (see the module comment). Only patches
   * count as attempts: between two of them a round can at most confirm the workload once and read the
   * config objects again once per new observation of the workload, so the loop ends.
   */
  async settle(start: Observed, changes: TimedChange[], run: EventRun, gate?: Gate): Promise<Settled> {
    const state: SettleState = { entry: start, changes, confirmed: false, gate };
    let conflicts = 0;
    let settled: Settled | undefined;
    while (!settled && conflicts < this.maxAttempts) {
      const round = await this.round(state, run);
      if (round === 'conflict') conflicts++;
      else if (round !== 'again') settled = round;
    }
    settled ??= this.conflicting(state);
    return state.read?.length ? { ...settled, read: state.read } : settled;
  }

  /** One round: decide on what is known, then confirm, re-read or patch as the decision needs. */
  private async round(state: SettleState, run: EventRun): Promise<Round> {
    if (run.failed) return this.notAttempted(state, run);
    const now = this.now();
    const gaps = state.read ? [] : this.windowGaps(state, now);
    if (gaps.length > 0) return this.readWindow(state, gaps, run);
    const decision = this.decide(state, now);
    if (!decision) return skip(state, 'no longer tied after a concurrent change');
    if (!decision.patch) return this.confirm(state, decision, run);
    if (state.changes.some((timed) => timed.readAt < state.entry.observedAt))
      return this.rereadStale(state, run);
    const patched = await this.patch(state.entry, decision, run);
    if (patched === 'deleted') return skip(state, 'workload was deleted before the patch');
    if (patched !== 'conflict') return patched;
    return (await this.observeAgain(state, run))
      ? 'conflict'
      : skip(state, 'workload was deleted before the patch');
  }

  /** The decision on what is known, as the `restartOrder` gate lets it through (kept in `state`). */
  private decide(state: SettleState, now: Date): Decision | undefined {
    const changes = state.changes.map((timed) => timed.change);
    const decided = decideForWorkload(this.settings, state.entry.summary, changes, now);
    state.decision = decided && (state.gate?.(decided, state.entry.summary) ?? decided);
    return state.decision;
  }

  /**
   * A decision without a patch holds, unless it is an `update`'s "already rolled out" resting on a cached
   * record: that one is read from the API server first.
   */
  private async confirm(state: SettleState, decision: Decision, run: EventRun): Promise<Round> {
    const needsConfirmation =
      !state.confirmed &&
      decision.upToDate &&
      state.changes.some(({ change }) => change.trigger === 'update');
    if (!needsConfirmation) return { decision };
    return (await this.observeAgain(state, run)) ? 'again' : skip(state, 'workload was deleted');
  }

  /** Reads again the config objects read before the latest observation of the workload. */
  private async rereadStale(state: SettleState, run: EventRun): Promise<Round> {
    const observedAt = state.entry.observedAt;
    const stale = state.changes.filter((timed) => timed.readAt < observedAt);
    const fresh = await Promise.all(stale.map((timed) => this.reread(timed, run)));
    state.changes = [
      ...state.changes.filter((timed) => timed.readAt >= observedAt),
      ...fresh.filter((timed) => timed !== undefined),
    ];
    return state.changes.length === 0
      ? skip(state, 'config object was deleted or opted out meanwhile')
      : 'again';
  }

  /** The config objects of the workload's ended settle window that the changes leave out, of watched kinds. */
  private windowGaps(state: SettleState, now: Date): ConfigRef[] {
    const refs = state.changes.map((timed) => timed.change.ref);
    return windowGaps(state.entry.summary, refs, now).filter((ref) =>
      this.settings.configKinds.includes(ref.kind),
    );
  }

  /** Reads the config objects an ended settle window covers beyond the changes, then decides again. */
  private async readWindow(state: SettleState, refs: ConfigRef[], run: EventRun): Promise<Round> {
    state.read = [];
    const read = await Promise.all(
      refs.map(async (ref): Promise<TimedChange | undefined> => {
        const readAt = this.index.tick();
        const object = await run.call((call) => this.client.getConfig(ref, call));
        if (!object) return this.settings.restartOnDelete ? { change: tombstone(ref), readAt } : undefined;
        if (!isConfigOptedIn(object.metadata, this.optIn)) return undefined;
        return { change: toChange(ref.kind, object, 'resync'), readAt };
      }),
    );
    state.read = read.filter((timed) => timed !== undefined);
    state.changes = [...state.changes, ...state.read];
    return 'again';
  }

  /** Reads the workload from the API server into `state`; false when it is gone. */
  private async observeAgain(state: SettleState, run: EventRun): Promise<boolean> {
    const fresh = await this.refresh(state.entry, run);
    if (!fresh) return false;
    state.entry = fresh;
    state.confirmed = true;
    return true;
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
      if (error.status !== 409)
        return { decision, failure: { workload: decision.workload, error: apiFailure(error) } };
      this.metrics.patchConflicts.inc();
      return 'conflict';
    }
  }

  /** The workload kept conflicting: the last decision, failed for a retry later. */
  private conflicting(state: SettleState): Settled {
    return {
      decision: state.decision ?? skip(state, 'conflicting').decision,
      failure: {
        workload: workloadRef(state.entry.summary),
        error: new Failure(
          'conflicts',
          `${describePatch(state.entry)} still conflicting after ${this.maxAttempts} attempts: ` +
            'the workload changed under every patch',
        ),
      },
    };
  }

  /** A workload left alone because an earlier call of its event failed. */
  private notAttempted(state: SettleState, run: EventRun): Settled {
    const cause = run.cause;
    return {
      ...skip(state, 'not attempted: an earlier API call of this event failed'),
      failure: {
        workload: workloadRef(state.entry.summary),
        error: new Failure(
          'not-attempted',
          `${describePatch(state.entry)} not attempted: ${cause?.message ?? 'an earlier API call of this event failed'}`,
          { cause },
        ),
      },
    };
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

/** A skip of the workload in `state`, about its changes. */
function skip(state: SettleState, reason: string): Settled {
  return {
    decision: {
      workload: workloadRef(state.entry.summary),
      action: 'skip',
      reason,
      configs: state.changes.map(({ change }) => describeRef(change.ref)),
    },
  };
}

/** `patch deployments.apps "x" in namespace "y"`, for messages. */
function describePatch(entry: Observed): string {
  const { kind, namespace, name } = entry.summary;
  return `patch ${kind.plural}.${kind.group} "${name}" in namespace "${namespace}"`;
}
