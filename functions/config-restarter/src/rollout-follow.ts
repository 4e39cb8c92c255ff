/**
 * Following restarts to their outcome (act): on an event about a followed workload (the second ApiServerSource,
 * over opted-in workloads) or at a resync, read the workload from the API server, judge its rollout record
 * (rollout.ts, pure) and, when the rollout has ended, write the outcome into the record with the
 * resourceVersion precondition, count it, and write its Kubernetes Event. Everything lives on the workload:
 * whichever instance sees the end first writes it; the others meet a 409 or a record already ended.
 */
import { annotationKeys, type AnnotationKeys } from './annotations.js';
import type { FollowedRef } from './event.js';
import type { EventRecorder } from './event-recorder.js';
import type { EventRun } from './event-run.js';
import { carryOn, type Act } from './carry-on.js';
import type { ConfigKind } from './config.js';
import { configOptIn, type ConfigOptIn } from './opt-in.js';
import { Failure } from './failure.js';
import { KubeApiError, type ClusterClient } from './kube.js';
import type { Metrics } from './metrics.js';
import { describeRef, type KubeObject } from './model.js';
import { ignored, type Outcome } from './outcome.js';
import { inScope, type NamespaceScope } from './scope.js';
import {
  formatRolloutRecord,
  judgeRollout,
  type Judgement,
  namedConfigs,
  rolloutReport,
  supersededByRestart,
  type RolloutRecord,
  type RolloutReport,
} from './rollout.js';
import type { IndexFollower, Observed, WorkloadIndex } from './workload-index.js';
import type { Settled } from './settle.js';
import type { WorkloadKind } from './workload-kinds.js';
import { describeContent, OUTCOME_REASONS, type WorkloadEvent } from './workload-events.js';
import type { Decision, DecisionSettings } from './decision-types.js';
import { summarizeWorkload, workloadRef, type WorkloadSummary } from './workload-summary.js';

/** An outcome written (the record, on the workload summarised), or why none was. */
export type Followed =
  { report: RolloutReport; record: RolloutRecord; summary: WorkloadSummary } | { reason: string };

/** What the follower needs. */
export interface FollowerDeps {
  client: ClusterClient;
  index: WorkloadIndex;
  settings: DecisionSettings & {
    dryRun: boolean;
    maxConflictAttempts?: number;
    configKinds: readonly ConfigKind[];
    maxConcurrentRollouts?: number;
  };
  /** The act layer, for carrying an ordered change on (carry-on.ts). */
  act: Act;
  metrics: Metrics;
  recorder: EventRecorder;
  now(): Date;
}

/** Follows rollouts to their outcome; one per process. */
export class RolloutFollower {
  private readonly keys: AnnotationKeys;
  private readonly optIn: ConfigOptIn;
  /** The rollouts the index sees progressing (the restarter makes the index tell it). */
  readonly progressing = new ProgressingRollouts();

  constructor(private readonly deps: FollowerDeps) {
    this.keys = annotationKeys(deps.settings.annotationPrefix);
    this.optIn = configOptIn(deps.settings.annotationPrefix);
  }

  /** An event about a followed workload: the outcome of its restart, if its rollout has ended. */
  async handle(ref: FollowedRef, scope: NamespaceScope, run: EventRun): Promise<Outcome> {
    if (!inScope(scope, ref.namespace)) {
      return ignored(`namespace "${ref.namespace}" is not watched; its rollouts are not followed`);
    }
    const followed = await this.follow(ref, run);
    if ('reason' in followed) return ignored(followed.reason);
    const { workload, outcome } = followed.report;
    const reason = `${describeRef(workload)}: ${outcome}`;
    const next = await this.carryOn(followed, run);
    return { result: 'processed', reason, ...next, rollouts: [followed.report, ...(next.rollouts ?? [])] };
  }

  /** At a resync: every rollout the index sees progressing in `scope`, followed once (and carried on). */
  async followAll(scope: NamespaceScope, run: EventRun): Promise<Omit<Outcome, 'result' | 'reason'>> {
    const all: Required<Omit<Outcome, 'result' | 'reason' | 'failure'>> = {
      decisions: [],
      failures: [],
      rollouts: [],
    };
    for (const ref of this.progressing.list()) {
      if (!inScope(scope, ref.namespace)) continue;
      const followed = await this.follow(ref, run);
      if (!('report' in followed)) continue;
      const next = await this.carryOn(followed, run);
      all.rollouts.push(followed.report, ...(next.rollouts ?? []));
      all.decisions.push(...next.decisions);
      all.failures.push(...next.failures);
    }
    return all;
  }

  /** A workload of an ordered change ended its rollout: the next group's turn (carry-on.ts). */
  private carryOn(
    followed: Extract<Followed, { record: RolloutRecord }>,
    run: EventRun,
  ): Promise<Omit<Outcome, 'result' | 'reason'>> {
    const { client, index, settings, act } = this.deps;
    const deps = { client, index, configKinds: settings.configKinds, optIn: this.optIn, act };
    const { namespace, order } = followed.summary;
    // A limit frees a place for any pending restart of the namespace; an order, for the next group.
    if ((settings.maxConcurrentRollouts ?? 0) > 0) return carryOn(deps, namespace, 'namespace', run);
    if (order === undefined) return Promise.resolve({ decisions: [], failures: [] });
    return carryOn(deps, namespace, Object.keys(followed.record.configs), run);
  }

  /** Reads the workload and writes the outcome of its restart if the rollout has ended. */
  async follow({ kind, namespace, name }: FollowedRef, run: EventRun): Promise<Followed> {
    const { client, settings } = this.deps;
    // Knative's own Deployments carry their Service's labels, so the watch label too: never restarted, never read.
    const unpatchable = this.deps.index.get(kind, namespace, name)?.summary.unpatchable;
    if (unpatchable) return { reason: `${kind.kind} ${namespace}/${name}: ${unpatchable}` };
    const attempts = settings.maxConflictAttempts ?? 5;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const object = await run.call((call) => client.getWorkload(kind, namespace, name, call));
      if (!object) {
        this.deps.index.forget(kind, namespace, name);
        return { reason: `${kind.kind} ${namespace}/${name} no longer exists` };
      }
      const judgement = judgeRollout({ kind, object, keys: this.keys, now: this.deps.now() });
      if (judgement.verdict !== 'ended')
        return { reason: `${kind.kind} ${namespace}/${name}: ${judgement.reason}` };
      if (settings.dryRun) return { reason: `dry run: outcome ${judgement.record.state} not written` };
      const written = await this.write(kind, object, judgement, run);
      if (written !== 'conflict') return written;
    }
    throw new Failure(
      'conflicts',
      `the outcome of ${kind.kind} ${namespace}/${name} still conflicting after ${attempts} attempts`,
    );
  }

  /**
   * After an event's decisions went through: a `Restarted` or `Deferred` Event per restart or deferral, and
   * the `superseded` outcome of a rollout still progressing that a new restart replaced (returned).
   */
  async settled(
    entries: readonly Observed[],
    results: readonly Pick<Settled, 'decision' | 'failure'>[],
    dryRun: boolean,
  ): Promise<RolloutReport[]> {
    if (dryRun) return [];
    const events: WorkloadEvent[] = [];
    const superseded: { report: RolloutReport; uid: string }[] = [];
    for (const [i, { decision, failure }] of results.entries()) {
      const start = entries[i]!.summary;
      if (failure || !EVENT_ACTIONS.includes(decision.action)) continue;
      events.push(restartEvent(start, decision));
      const previous = start.rollout;
      if (decision.rollout && previous?.state === 'progressing') {
        const record = supersededByRestart(previous, decision.rollout);
        superseded.push({ report: rolloutReport(workloadRef(start), record), uid: start.uid });
      }
    }
    await this.deps.recorder.record(events);
    for (const { report, uid } of superseded) await this.announce(report.workload.kind, uid, report);
    return superseded.map(({ report }) => report);
  }

  /** Writes the ended record; `conflict` when the workload changed since it was read. */
  private async write(
    kind: WorkloadKind,
    object: KubeObject,
    { record, revert }: Extract<Judgement, { verdict: 'ended' }>,
    run: EventRun,
  ): Promise<Followed | 'conflict'> {
    const meta = object.metadata ?? {};
    const patch = {
      ...revert,
      metadata: {
        resourceVersion: meta.resourceVersion,
        annotations: { [this.keys.rollout]: formatRolloutRecord(record) },
      },
    };
    let patched: KubeObject;
    try {
      patched = await run.call((call) =>
        this.deps.client.patchWorkload(kind, meta.namespace ?? '', meta.name ?? '', patch, {
          ...call,
          dryRun: false,
        }),
      );
    } catch (error) {
      if (!(error instanceof KubeApiError) || error.status !== 409) throw error;
      this.deps.metrics.patchConflicts.inc();
      return 'conflict';
    }
    const summary = summarizeWorkload(this.deps.settings, kind, patched);
    this.deps.index.observe(summary);
    const report = rolloutReport(workloadRef(summary), record);
    await this.announce(kind.kind, summary.uid, report);
    return { report, record, summary };
  }

  /** Counts an outcome and writes its Kubernetes Event. */
  private async announce(kind: string, uid: string, report: RolloutReport): Promise<void> {
    const { metrics, recorder } = this.deps;
    metrics.rolloutOutcomes.inc({ kind, outcome: report.outcome });
    if (report.outcome === 'rolled-out') metrics.rolloutSeconds.observe({ kind }, report.seconds);
    const content = describeContent(report.configs);
    await recorder.record([
      {
        workload: report.workload,
        uid,
        reason: OUTCOME_REASONS[report.outcome],
        message: `${report.outcome} ${report.seconds.toFixed(1)}s after the edit of ${content || 'its configuration'} (restart at ${report.restartedAt}): ${report.message}`,
      },
    ]);
  }
}

/** The decisions that get an Event. */
const EVENT_ACTIONS: readonly string[] = ['restart', 'defer', 'hold'];

/** The `Restarted`, `Deferred` or `Held` Event of a decision that went through. */
function restartEvent(start: WorkloadSummary, decision: Decision): WorkloadEvent {
  const content = describeContent(namedConfigs(decision.rolled ?? {}));
  const base = { workload: decision.workload, uid: start.uid };
  if (decision.action === 'restart')
    return { ...base, reason: 'Restarted', message: `restarted for ${content}: ${decision.reason}` };
  if (decision.action === 'hold')
    return { ...base, reason: 'Held', message: `restart held: ${decision.reason}` };
  return { ...base, reason: 'Deferred', message: `restart deferred: ${decision.reason}` };
}

/** Keeps the workloads whose rollout is still progressing, as the index sees them: what a resync follows. */
export class ProgressingRollouts implements IndexFollower {
  private readonly followed = new Map<string, FollowedRef>();

  observed(summary: WorkloadSummary): void {
    const id = `${summary.kind.plural}.${summary.kind.group}/${summary.namespace}/${summary.name}`;
    if (summary.rollout?.state === 'progressing') {
      this.followed.set(id, { kind: summary.kind, namespace: summary.namespace, name: summary.name });
    } else this.followed.delete(id);
  }

  removed(summary: WorkloadSummary): void {
    this.followed.delete(`${summary.kind.plural}.${summary.kind.group}/${summary.namespace}/${summary.name}`);
  }

  /** Rollouts progressing in `namespace`. */
  count(namespace: string): number {
    let n = 0;
    for (const ref of this.followed.values()) if (ref.namespace === namespace) n++;
    return n;
  }

  /** The workloads to follow, in a stable order. */
  list(): FollowedRef[] {
    return [...this.followed.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, ref]) => ref);
  }
}
