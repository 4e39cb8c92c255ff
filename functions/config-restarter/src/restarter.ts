/**
 * Acting: reads the config object an event names, finds the workloads tied to it in the warm index, settles
 * each of them (see settle.ts: decide, patch with preconditions, decide again) and reports every decision;
 * events about followed workloads and resyncs go to rollout-follow.ts for the outcomes of restarts.
 * The API is reached only through the injected {@link ClusterClient}. Safe with any number of instances.
 */
import { KeyedMutex } from './concurrency.js';
import { settleEntries, tiedEntries } from './settle-all.js';
import { toChange, tombstone } from './config-change.js';
import type { ConfigChange } from './decision-types.js';
import type { Notice } from './event.js';
import { apiFailure, EventRun } from './event-run.js';
import { Failure } from './failure.js';
import { KubeApiError, type ClusterClient } from './kube.js';
import { describeLastWrite } from './last-write.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { describeRef, type ConfigObject } from './model.js';
import { configOptIn, isConfigOptedIn, notOptedInReason, type ConfigOptIn } from './opt-in.js';
import {
  ignored,
  lastWrites,
  report,
  type Outcome,
  type ReportedDecision,
  type WorkloadFailure,
} from './outcome.js';
import { describeScope, inScope, type NamespaceScope } from './scope.js';
import { listOptedIn } from './resync-list.js';
import { Settler, type SettleSettings, type TimedChange } from './settle.js';
import { reportWindows, WindowTimers, type WorkloadKey } from './window-timers.js';
import type { Observed, WorkloadIndex } from './workload-index.js';
import { EventRecorder } from './event-recorder.js';
import { RolloutFollower } from './rollout-follow.js';
import type { RolloutReport } from './rollout.js';

// index.ts resolves the scope; it is named here with the restarter's settings.
export { describeScope, type NamespaceScope } from './scope.js';

/** An event about one config object. */
type ChangeNotice = Extract<Notice, { type: 'change' }>;

/** Settings of the restarter. */
export interface RestarterSettings extends SettleSettings {
  patchConcurrency: number;
  /** `MAX_CONCURRENT_ROLLOUTS` per namespace (0 or unset = unlimited). */
  maxConcurrentRollouts?: number;
  scope: NamespaceScope;
  /** How long an event may wait for a cold index to list (`API_TIMEOUT_MS`). */
  syncTimeoutMs: number;
}

/** Dependencies of {@link createRestarter}. */
export interface RestarterDeps {
  client: ClusterClient;
  index: WorkloadIndex;
  settings: RestarterSettings;
  logger: Logger;
  metrics: Metrics;
  now?: () => Date;
}

/** Handles notices, and closes settle windows when they end. */
export interface Restarter {
  handle(notice: Notice): Promise<Outcome>;
  /** Closes one workload's settle window once it has ended (window-timers.ts calls this on time). */
  closeWindow(workload: WorkloadKey): Promise<Outcome>;
  /** Stops the window timers (shutdown); open windows stay on the workloads. */
  stop(): void;
}

/** Creates the restarter. */
export function createRestarter(deps: RestarterDeps): Restarter {
  return new ConfigRestarter(deps);
}

/** The restarter: one per process. */
class ConfigRestarter implements Restarter {
  private readonly settler: Settler;
  private readonly optIn: ConfigOptIn;
  // Within this process one workload is settled by one event at a time; across processes the
  // resourceVersion preconditions do the same job.
  private readonly workloadLock = new KeyedMutex();
  private readonly windows: WindowTimers;
  private readonly follower: RolloutFollower;

  private readonly now: () => Date;

  constructor(private readonly deps: RestarterDeps) {
    const now = deps.now ?? (() => new Date());
    this.now = now;
    this.settler = new Settler(deps.client, deps.index, deps.settings, deps.metrics, now);
    this.follower = new RolloutFollower({
      ...deps,
      recorder: new EventRecorder(deps.client, deps.logger, deps.metrics, now),
      act: (changes, run) => this.act(changes, run),
      now,
    });
    deps.index.follow(this.follower.progressing);
    this.optIn = configOptIn(deps.settings.annotationPrefix);
    const { logger, metrics } = deps;
    this.windows = new WindowTimers({ close: (w) => this.closeWindow(w), logger, metrics, now });
    deps.index.follow(this.windows);
  }

  /** Handles a notice; a failure of the event as a whole becomes a `failed` outcome (see failure.ts). */
  handle(notice: Notice): Promise<Outcome> {
    return this.guard(() => this.dispatch(notice));
  }

  async closeWindow({ kind, namespace, name }: WorkloadKey): Promise<Outcome> {
    return this.guard(async () => {
      const entry = this.deps.index.get(kind, namespace, name);
      const what = `the settle window of ${kind.kind} ${namespace}/${name}`;
      if (!entry?.summary.window) return ignored(`${what} is closed already`);
      const acted = await this.settleAll([entry], [], new EventRun(this.deps.metrics));
      return { result: 'processed', reason: `${what} ended at ${entry.summary.window.until}`, ...acted };
    });
  }

  stop(): void {
    this.windows.stop();
  }

  /** Runs `work`; a failure of it as a whole becomes a `failed` outcome (see failure.ts). */
  private async guard(work: () => Promise<Outcome>): Promise<Outcome> {
    try {
      return await work();
    } catch (error) {
      const failure =
        error instanceof KubeApiError ? apiFailure(error) : error instanceof Failure ? error : undefined;
      if (!failure) throw error;
      return { result: 'failed', reason: failure.message, decisions: [], failures: [], failure };
    }
  }

  private dispatch(notice: Notice): Promise<Outcome> {
    switch (notice.type) {
      case 'ignored':
        return Promise.resolve(ignored(notice.reason));
      case 'resync':
        return this.resync();
      case 'change':
        return this.change(notice);
      case 'rollout':
        return this.follower.handle(notice.ref, this.deps.settings.scope, new EventRun(this.deps.metrics));
    }
  }

  /** Why an event about `ref` is not acted on before anything is read, or undefined. */
  private precheck({ ref, action }: ChangeNotice): Outcome | undefined {
    const { settings } = this.deps;
    if (!settings.configKinds.includes(ref.kind)) {
      return ignored(`${ref.kind} changes are not enabled (CONFIG_KINDS=${settings.configKinds.join(',')})`);
    }
    if (!inScope(settings.scope, ref.namespace)) {
      return {
        result: 'refused',
        reason: `namespace "${ref.namespace}" is not watched (WATCH_NAMESPACES: ${describeScope(settings.scope)}); nothing touched`,
        decisions: [],
        failures: [],
      };
    }
    if (action === 'delete' && !settings.restartOnDelete) {
      return ignored(`${describeRef(ref)} was deleted; a delete restarts nothing (RESTART_ON_DELETE is off)`);
    }
    return undefined;
  }

  /** The change the object just read amounts to, or why there is none. */
  private changeOf({ ref, action }: ChangeNotice, object: ConfigObject | undefined): ConfigChange | Outcome {
    if (action === 'delete') {
      // The event is only a hint: a delete counts once the API server confirms the object is gone.
      if (object)
        return ignored(`${describeRef(ref)} still exists; a delete of an existing object restarts nothing`);
      return tombstone(ref);
    }
    if (!object) return ignored(`${describeRef(ref)} no longer exists`);
    if (!isConfigOptedIn(object.metadata, this.optIn)) {
      return ignored(`${describeRef(ref)} is not opted in (${notOptedInReason(this.optIn)})`);
    }
    return toChange(ref.kind, object, action);
  }

  /** An ApiServerSource event about one config object. */
  private async change(notice: ChangeNotice): Promise<Outcome> {
    const early = this.precheck(notice);
    if (early) return early;
    const run = new EventRun(this.deps.metrics);
    await this.awaitIndex(notice.ref.namespace, run);
    // Taken before the read: workload state observed after this moment makes the content read stale.
    const readAt = this.deps.index.tick();
    const object = await run.call((call) => this.deps.client.getConfig(notice.ref, call));
    const change = this.changeOf(notice, object);
    if ('result' in change) return change;
    const acted = await this.act([{ change, readAt }], run);
    const reason = change.deleted
      ? `delete of ${describeRef(notice.ref)}, confirmed gone`
      : `${notice.action} of ${describeRef(notice.ref)}, content ${change.hash}` +
        (change.lastWrite ? `, last changed by ${describeLastWrite(change.lastWrite)}` : '');
    return { result: 'processed', reason, ...acted };
  }

  /** A resync: every opted-in config object of the watched namespaces, against its workloads. */
  private async resync(): Promise<Outcome> {
    const { settings } = this.deps;
    const run = new EventRun(this.deps.metrics);
    const scopeNamespaces = settings.scope.all ? undefined : settings.scope.namespaces;
    await this.awaitIndex(undefined, run);
    const { client, index } = this.deps;
    const source = { client, index, configKinds: settings.configKinds, optIn: this.optIn };
    const byNamespace = await listOptedIn(source, scopeNamespaces, run);
    const namespaces = scopeNamespaces ?? [...byNamespace.keys()].sort();
    const decisions: ReportedDecision[] = [];
    const failures: WorkloadFailure[] = [];
    const rollouts: RolloutReport[] = [];
    let configCount = 0;
    for (const namespace of namespaces) {
      const changes = byNamespace.get(namespace) ?? [];
      configCount += changes.length;
      if (changes.length === 0) continue;
      const acted = await this.act(changes, run);
      decisions.push(...acted.decisions);
      failures.push(...acted.failures);
      rollouts.push(...(acted.rollouts ?? []));
    }
    const followed = await this.follower.followAll(settings.scope, run);
    decisions.push(...followed.decisions);
    failures.push(...followed.failures);
    rollouts.push(...(followed.rollouts ?? []));
    return {
      result: 'processed',
      reason: `resync of ${configCount} opted-in config object(s) in ${namespaces.length} namespace(s)`,
      decisions,
      failures,
      rollouts,
    };
  }

  /** Waits until the index covering `namespace` has listed, at most `syncTimeoutMs`. */
  private async awaitIndex(namespace: string | undefined, run: EventRun): Promise<void> {
    const { syncTimeoutMs } = this.deps.settings;
    try {
      await this.deps.index.whenSynced(
        namespace,
        AbortSignal.any([AbortSignal.timeout(syncTimeoutMs), run.signal]),
      );
    } catch (error) {
      // A list the index tried and the API server failed says more than the wait that ran out.
      if (error instanceof KubeApiError) throw error;
      const where = namespace === undefined ? '' : ` of namespace "${namespace}"`;
      throw new Failure(
        'index-not-listed',
        `the workload index${where} did not finish its first list within ${syncTimeoutMs} ms`,
        { cause: error },
      );
    }
  }

  /** Settles every tied workload. */
  private act(changes: TimedChange[], run: EventRun): Promise<Omit<Outcome, 'result' | 'reason'>> {
    return this.settleAll(tiedEntries(this.deps.index, changes), changes, run);
  }

  /** Settles workloads, at most `patchConcurrency` at a time, one event per workload at a time. */
  private async settleAll(
    entries: Observed[],
    changes: TimedChange[],
    run: EventRun,
  ): Promise<Omit<Outcome, 'result' | 'reason'>> {
    const { index, settings } = this.deps;
    const { annotationPrefix, patchConcurrency, maxConcurrentRollouts = 0 } = settings;
    const inProgress = (namespace: string) => this.follower.progressing.count(namespace);
    const limits = { annotationPrefix, patchConcurrency, maxConcurrentRollouts, inProgress };
    const settleDeps = { settler: this.settler, index, lock: this.workloadLock, ...limits, now: this.now };
    const { entries: settled, results } = await settleEntries(settleDeps, entries, changes, run);
    reportWindows(this.deps.logger, this.deps.metrics, results, settings.dryRun);
    const failures: WorkloadFailure[] = [];
    const decisions: ReportedDecision[] = [];
    const writes = lastWrites([...changes, ...results.flatMap((settled) => settled.read ?? [])]);
    for (const { decision, failure } of results) {
      if (failure) failures.push(failure);
      decisions.push(report(decision, settings.dryRun, writes));
    }
    const rollouts = await this.follower.settled(settled, results, settings.dryRun);
    return { decisions, failures, ...(rollouts.length > 0 ? { rollouts } : {}) };
  }
}
