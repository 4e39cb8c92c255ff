/**
 * Acting: finds the workloads tied to a changed config object in the warm index, asks the pure core for
 * decisions, applies the patches (bounded concurrency, resourceVersion preconditions, decide-again on
 * conflict) and reports every decision. The API is reached only through the injected {@link ClusterClient}.
 *
 * Safe with any number of instances: a record is written only when the config object was read after the
 * workload state the decision rests on (so a record never moves backwards), every patch carries the
 * workload's resourceVersion (so a concurrent writer is never overwritten), and a skip that rests on a
 * cached record is confirmed against the API server before an `update` is acknowledged.
 */
import type { ConfigKind } from './config.js';
import { KeyedMutex, mapLimit } from './concurrency.js';
import type { ConfigChange, Decision, DecisionSettings, Trigger, WorkloadSummary } from './decide.js';
import { annotationKeys, decideForWorkload, isOptedIn, summarizeWorkload, workloadRef } from './decide.js';
import type { Notice } from './event.js';
import { EventRun } from './event-run.js';
import { contentHash, DELETED_HASH, keyDigests } from './hash.js';
import type { ClusterClient } from './kube.js';
import { KubeApiError } from './kube.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ConfigObject, KubeObject } from './model.js';
import { describeRef } from './model.js';
import type { Observed, WorkloadIndex } from './workload-index.js';
import { qualifiedKind, type WorkloadKind } from './workload-kinds.js';

/** Namespaces the restarter may act in. */
export type NamespaceScope = { all: true } | { all: false; namespaces: string[] };

/** Settings of the restarter. */
export interface RestarterSettings extends DecisionSettings {
  dryRun: boolean;
  configKinds: ConfigKind[];
  patchConcurrency: number;
  scope: NamespaceScope;
  /** How long an event may wait for a cold index to list (`API_TIMEOUT_MS`). */
  syncTimeoutMs: number;
  /** Attempts per workload when patches meet resourceVersion conflicts. */
  maxConflictAttempts?: number;
  /**
   * A confirmed deletion restarts the workloads whose pod template references the object
   * (`RESTART_ON_DELETE`); otherwise a delete restarts nothing.
   */
  restartOnDelete?: boolean;
}

/** A decision as reported: no patch body, plus whether it was a dry run. */
export type ReportedDecision = Omit<Decision, 'patch' | 'upToDate'> & { dryRun: boolean };

/** A workload whose patch failed. */
export interface Failure {
  workload: Decision['workload'];
  error: KubeApiError;
}

/** The result of handling one notice. */
export interface Outcome {
  /** `processed`: decisions were made; `ignored`: nothing to do; `refused`: outside the watched namespaces. */
  result: 'processed' | 'ignored' | 'refused';
  reason: string;
  decisions: ReportedDecision[];
  failures: Failure[];
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

/** Handles notices. */
export interface Restarter {
  handle(notice: Notice): Promise<Outcome>;
}

/** True when `namespace` is inside the scope. */
export function inScope(scope: NamespaceScope, namespace: string): boolean {
  return scope.all || scope.namespaces.includes(namespace);
}

/** Human-readable scope, for messages. */
export function describeScope(scope: NamespaceScope): string {
  return scope.all ? '*' : scope.namespaces.join(',');
}

/** A config change and when its content was read (an index clock value, see `WorkloadIndex.tick`). */
interface TimedChange {
  change: ConfigChange;
  readAt: number;
}

type Settled = { decision: Decision; failure?: Failure };

function ignored(reason: string): Outcome {
  return { result: 'ignored', reason, decisions: [], failures: [] };
}

/** Creates the restarter. */
export function createRestarter(deps: RestarterDeps): Restarter {
  const { client, index, settings, metrics } = deps;
  const now = deps.now ?? (() => new Date());
  const keys = annotationKeys(settings.annotationPrefix);
  const maxAttempts = settings.maxConflictAttempts ?? 5;
  // Within this process one workload is patched by one event at a time; across processes the
  // resourceVersion preconditions do the same job.
  const workloadLock = new KeyedMutex();

  function toChange(kind: ConfigKind, object: ConfigObject, trigger: Trigger): ConfigChange {
    return {
      ref: { kind, namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' },
      hash: contentHash(kind, object),
      labels: object.metadata?.labels ?? {},
      trigger,
      keyDigests: keyDigests(kind, object),
    };
  }

  /** A deletion confirmed by a 404: its labels are gone, so only references tie workloads to it. */
  const tombstone = (ref: ConfigChange['ref']): ConfigChange => ({
    ref,
    hash: DELETED_HASH,
    labels: {},
    trigger: 'delete',
    deleted: true,
  });

  const summarize = (kind: WorkloadKind, object: KubeObject): WorkloadSummary =>
    summarizeWorkload(settings, kind, object);

  /** Waits until the index covering `namespace` has listed, at most `syncTimeoutMs`. */
  async function awaitIndex(namespace: string | undefined, run: EventRun): Promise<void> {
    const deadline = AbortSignal.timeout(settings.syncTimeoutMs);
    try {
      await index.whenSynced(namespace, AbortSignal.any([deadline, run.signal]));
    } catch (error) {
      if (error instanceof KubeApiError) throw error;
      throw new KubeApiError(
        0,
        'list',
        'workloads',
        namespace,
        undefined,
        `the workload index did not finish its first list within ${settings.syncTimeoutMs} ms`,
      );
    }
  }

  /**
   * Reads a config object again; undefined when it is gone or no longer opted in (a deletion: when it
   * exists again).
   */
  async function reread(timed: TimedChange, run: EventRun): Promise<TimedChange | undefined> {
    const readAt = index.tick();
    const object = await run.call((call) => client.getConfig(timed.change.ref, call));
    if (timed.change.deleted) return object ? undefined : { change: timed.change, readAt };
    if (!object || !isOptedIn(object.metadata?.annotations, keys.triggerRestart)) return undefined;
    return { change: toChange(timed.change.ref.kind, object, timed.change.trigger), readAt };
  }

  /** Reads a workload from the API server; undefined when it is gone. */
  async function refresh(entry: Observed, run: EventRun): Promise<Observed | undefined> {
    const { kind, namespace, name } = entry.summary;
    const object = await run.call((call) => client.getWorkload(kind, namespace, name, call));
    if (!object) {
      index.forget(kind, namespace, name);
      return undefined;
    }
    return index.observe(summarize(kind, object));
  }

  /**
   * Decides and acts for one workload until the decision holds against the API server: re-reads
   * config objects older than the workload state, confirms cached up-to-date skips of an `update`,
   * patches with the resourceVersion precondition and decides again on a conflict.
   */
  async function settle(start: Observed, changes: TimedChange[], run: EventRun): Promise<Settled> {
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
    for (let attempt = 1; attempt <= maxAttempts + 2; attempt++) {
      if (run.failed) {
        return {
          ...skip('not attempted: an earlier API call of this event failed'),
          failure: failureOf(entry, run),
        };
      }
      decision = decideForWorkload(
        settings,
        entry.summary,
        current.map((timed) => timed.change),
        now(),
      );
      if (!decision) return skip('no longer tied after a concurrent change');
      if (!decision.patch) {
        const cached = !confirmed && decision.upToDate;
        if (cached && current.some(({ change }) => change.trigger === 'update')) {
          const fresh = await refresh(entry, run);
          if (!fresh) return skip('workload was deleted');
          entry = fresh;
          confirmed = true;
          continue;
        }
        return { decision };
      }
      // A record is written only over workload state observed before its config content was read.
      const stale = current.filter((timed) => timed.readAt < entry.observedAt);
      if (stale.length > 0) {
        const fresh = await Promise.all(stale.map((timed) => reread(timed, run)));
        current = [
          ...current.filter((timed) => timed.readAt >= entry.observedAt),
          ...fresh.filter((t) => t !== undefined),
        ];
        if (current.length === 0) return skip('config object was deleted or opted out meanwhile');
        continue;
      }
      const { kind, namespace, name } = entry.summary;
      const patch = decision.patch;
      try {
        const patched = await run.call((call) =>
          client.patchWorkload(kind, namespace, name, patch, { ...call, dryRun: settings.dryRun }),
        );
        if (!settings.dryRun) index.observe(summarize(kind, patched));
        return { decision };
      } catch (error) {
        if (!(error instanceof KubeApiError)) throw error;
        if (error.status === 404) {
          index.forget(kind, namespace, name);
          return skip('workload was deleted before the patch');
        }
        if (error.status !== 409) return { decision, failure: { workload: decision.workload, error } };
        metrics.patchConflicts.inc();
        const fresh = await refresh(entry, run);
        if (!fresh) return skip('workload was deleted before the patch');
        entry = fresh;
        confirmed = true;
      }
    }
    const { kind, namespace, name } = entry.summary;
    const error = new KubeApiError(
      409,
      'patch',
      `${kind.plural}.${kind.group}`,
      namespace,
      name,
      `still conflicting after ${maxAttempts} attempts`,
    );
    return {
      decision: decision ?? skip('conflicting').decision,
      failure: { workload: workloadRef(entry.summary), error },
    };
  }

  function failureOf(entry: Observed, run: EventRun): Failure {
    const cause = run.cause;
    const { kind, namespace, name } = entry.summary;
    return {
      workload: workloadRef(entry.summary),
      error: new KubeApiError(
        0,
        'patch',
        `${kind.plural}.${kind.group}`,
        namespace,
        name,
        `not attempted: ${cause?.message ?? 'an earlier API call of this event failed'}`,
      ),
    };
  }

  /** Settles every tied workload, at most `patchConcurrency` at a time, one event per workload at a time. */
  async function act(
    entries: Observed[],
    changes: TimedChange[],
    run: EventRun,
  ): Promise<Omit<Outcome, 'result' | 'reason'>> {
    const results = await mapLimit(entries, settings.patchConcurrency, (start) => {
      const { kind, namespace, name } = start.summary;
      return workloadLock.run(`${qualifiedKind(kind)}/${namespace}/${name}`, () => {
        // The index may hold a newer observation than the one this event started from.
        const latest = index.get(kind, namespace, name);
        return settle(latest && latest.observedAt > start.observedAt ? latest : start, changes, run);
      });
    });
    const failures: Failure[] = [];
    const decisions: ReportedDecision[] = [];
    for (const { decision, failure } of results) {
      if (failure) failures.push(failure);
      const { patch: _patch, upToDate: _upToDate, ...rest } = decision;
      const reason =
        settings.dryRun && decision.action !== 'skip'
          ? `dry run, nothing persisted: ${decision.reason}`
          : decision.reason;
      decisions.push({ ...rest, reason, dryRun: settings.dryRun });
    }
    return { decisions, failures };
  }

  /** The index entries tied to any of `changes`. */
  function tiedEntries(changes: TimedChange[]): Observed[] {
    const byId = new Map<string, Observed>();
    for (const { change } of changes) {
      for (const entry of index.tied(change.ref, change.labels)) {
        const { kind, namespace, name } = entry.summary;
        byId.set(`${qualifiedKind(kind)}/${namespace}/${name}`, entry);
      }
    }
    return [...byId.values()].sort((a, b) =>
      `${a.summary.kind.kind}/${a.summary.name}`.localeCompare(`${b.summary.kind.kind}/${b.summary.name}`),
    );
  }

  async function handleChange(notice: Extract<Notice, { type: 'change' }>): Promise<Outcome> {
    const { ref, action } = notice;
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
    const run = new EventRun(metrics);
    await awaitIndex(ref.namespace, run);
    const readAt = index.tick();
    const object = await run.call((call) => client.getConfig(ref, call));
    let change: ConfigChange;
    if (action === 'delete') {
      // The event is only a hint: a delete counts once the API server confirms the object is gone.
      if (object)
        return ignored(`${describeRef(ref)} still exists; a delete of an existing object restarts nothing`);
      change = tombstone(ref);
    } else {
      if (!object) return ignored(`${describeRef(ref)} no longer exists`);
      if (!isOptedIn(object.metadata?.annotations, keys.triggerRestart)) {
        return ignored(
          `${describeRef(ref)} is not opted in (annotation ${keys.triggerRestart} is not "true")`,
        );
      }
      change = toChange(ref.kind, object, action);
    }
    const changes = [{ change, readAt }];
    const acted = await act(tiedEntries(changes), changes, run);
    return {
      result: 'processed',
      reason: change.deleted
        ? `delete of ${describeRef(ref)}, confirmed gone`
        : `${action} of ${describeRef(ref)}, content ${change.hash}`,
      ...acted,
    };
  }

  async function handleResync(): Promise<Outcome> {
    const run = new EventRun(metrics);
    const scopeNamespaces = settings.scope.all ? undefined : settings.scope.namespaces;
    await awaitIndex(undefined, run);
    const byNamespace = new Map<string, TimedChange[]>();
    for (const kind of settings.configKinds) {
      for (const namespace of scopeNamespaces ?? [undefined]) {
        const readAt = index.tick();
        for (const object of await run.call((call) => client.listConfigs(kind, namespace, call))) {
          const objectNamespace = object.metadata?.namespace;
          if (!objectNamespace || !isOptedIn(object.metadata?.annotations, keys.triggerRestart)) continue;
          const list = byNamespace.get(objectNamespace) ?? [];
          list.push({ change: toChange(kind, object, 'resync'), readAt });
          byNamespace.set(objectNamespace, list);
        }
      }
    }
    const namespaces = scopeNamespaces ?? [...byNamespace.keys()].sort();
    const decisions: ReportedDecision[] = [];
    const failures: Failure[] = [];
    let configCount = 0;
    for (const namespace of namespaces) {
      const changes = byNamespace.get(namespace) ?? [];
      configCount += changes.length;
      if (changes.length === 0) continue;
      const acted = await act(tiedEntries(changes), changes, run);
      decisions.push(...acted.decisions);
      failures.push(...acted.failures);
    }
    return {
      result: 'processed',
      reason: `resync of ${configCount} opted-in config object(s) in ${namespaces.length} namespace(s)`,
      decisions,
      failures,
    };
  }

  return {
    async handle(notice) {
      switch (notice.type) {
        case 'ignored':
          return ignored(notice.reason);
        case 'resync':
          return handleResync();
        case 'change':
          return handleChange(notice);
      }
    },
  };
}
