/**
 * Acting: reads the truth from the API server, asks the pure core for decisions, applies the patches
 * (bounded concurrency, resourceVersion preconditions, decide-again on conflict) and reports every
 * decision. The API is reached only through the injected {@link ClusterClient}.
 */
import type { ConfigKind } from './config.js';
import { KeyedMutex, mapLimit } from './concurrency.js';
import type { ConfigChange, Decision, DecisionSettings, Trigger } from './decide.js';
import { annotationKeys, decideForWorkload, isOptedIn, planRestarts } from './decide.js';
import type { Notice } from './event.js';
import { contentHash } from './hash.js';
import type { ClusterClient } from './kube.js';
import { KubeApiError } from './kube.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { ConfigObject, KubeObject } from './model.js';
import { describeRef } from './model.js';
import { WORKLOAD_KINDS, type WorkloadKind } from './workload-kinds.js';

/** Namespaces the restarter may act in. */
export type NamespaceScope = { all: true } | { all: false; namespaces: string[] };

/** Settings of the restarter. */
export interface RestarterSettings extends DecisionSettings {
  dryRun: boolean;
  configKinds: ConfigKind[];
  patchConcurrency: number;
  scope: NamespaceScope;
  /** Label selector the API server applies to workload lists (`WORKLOAD_SELECTOR`); none = all workloads. */
  workloadSelector?: string | undefined;
  /** Attempts per workload when patches meet resourceVersion conflicts. */
  maxConflictAttempts?: number;
}

/** A decision as reported: no patch body, plus whether it was a dry run. */
export type ReportedDecision = Omit<Decision, 'patch'> & { dryRun: boolean };

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

/** Creates the restarter. */
export function createRestarter(deps: RestarterDeps): Restarter {
  const { client, settings, metrics } = deps;
  const now = deps.now ?? (() => new Date());
  const keys = annotationKeys(settings.annotationPrefix);
  const maxAttempts = settings.maxConflictAttempts ?? 5;
  // One namespace at a time: a config object is read and its decisions applied before the next
  // event for that namespace reads it, so records only ever move forward within this process.
  const namespaceLock = new KeyedMutex();

  const track = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      if (error instanceof KubeApiError) {
        metrics.apiErrors.inc({ verb: error.verb, resource: error.resource, code: String(error.status) });
      }
      throw error;
    }
  };

  function toChange(kind: ConfigKind, object: ConfigObject, trigger: Trigger): ConfigChange {
    return {
      ref: { kind, namespace: object.metadata?.namespace ?? '', name: object.metadata?.name ?? '' },
      hash: contentHash(kind, object),
      labels: object.metadata?.labels ?? {},
      trigger,
    };
  }

  async function listWorkloads(namespace: string): Promise<{ kind: WorkloadKind; object: KubeObject }[]> {
    const perKind = await Promise.all(
      WORKLOAD_KINDS.map(async (kind) => {
        const objects = await track(() => client.listWorkloads(kind, namespace, settings.workloadSelector));
        if (!objects)
          deps.logger.debug('kind not served by the API server', { kind: kind.kind, group: kind.group });
        return (objects ?? []).map((object) => ({ kind, object }));
      }),
    );
    return perKind.flat();
  }

  /** Applies one decision; on a conflict reads the workload again and decides again. */
  async function apply(
    decision: Decision,
    kind: WorkloadKind,
    changes: ConfigChange[],
  ): Promise<{ decision: Decision; failure?: Failure }> {
    let current = decision;
    const deleted = (): { decision: Decision } => ({
      decision: { ...current, action: 'skip', reason: 'workload was deleted before the patch' },
    });
    for (let attempt = 1; current.patch && attempt <= maxAttempts; attempt++) {
      const { namespace, name } = current.workload;
      try {
        await track(() =>
          client.patchWorkload(kind, namespace, name, current.patch!, { dryRun: settings.dryRun }),
        );
        return { decision: current };
      } catch (error) {
        if (!(error instanceof KubeApiError)) throw error;
        if (error.status === 404) return deleted();
        if (error.status !== 409)
          return { decision: current, failure: { workload: current.workload, error } };
        metrics.patchConflicts.inc();
        const fresh = await track(() => client.getWorkload(kind, namespace, name));
        if (!fresh) return deleted();
        const again = decideForWorkload(settings, kind, fresh, changes, now());
        if (!again)
          return {
            decision: { ...current, action: 'skip', reason: 'no longer tied after a concurrent change' },
          };
        current = again;
      }
    }
    if (!current.patch) return { decision: current };
    const { namespace, name } = current.workload;
    const resource = `${kind.plural}.${kind.group}`;
    const error = new KubeApiError(
      409,
      'patch',
      resource,
      namespace,
      name,
      `still conflicting after ${maxAttempts} attempts`,
    );
    return { decision: current, failure: { workload: current.workload, error } };
  }

  /** Decides and acts for changes of one namespace; the caller holds the namespace lock. */
  async function reconcile(
    namespace: string,
    changes: ConfigChange[],
  ): Promise<Omit<Outcome, 'result' | 'reason'>> {
    const workloads = await listWorkloads(namespace);
    const planned = planRestarts(settings, changes, workloads, now());
    const results = await mapLimit(
      planned,
      settings.patchConcurrency,
      ({ kind, decision }): Promise<{ decision: Decision; failure?: Failure }> =>
        decision.patch ? apply(decision, kind, changes) : Promise.resolve({ decision }),
    );
    const failures: Failure[] = [];
    const decisions: ReportedDecision[] = results.map(({ decision, failure }) => {
      if (failure) failures.push(failure);
      const { patch: _patch, ...rest } = decision;
      const reason =
        settings.dryRun && decision.action !== 'skip'
          ? `dry run, nothing persisted: ${decision.reason}`
          : decision.reason;
      return { ...rest, reason, dryRun: settings.dryRun };
    });
    return { decisions, failures };
  }

  async function handleChange(notice: Extract<Notice, { type: 'change' }>): Promise<Outcome> {
    const { ref, action } = notice;
    const ignored = (reason: string): Outcome => ({ result: 'ignored', reason, decisions: [], failures: [] });
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
    if (action === 'delete') return ignored(`${describeRef(ref)} was deleted; a delete restarts nothing`);
    return namespaceLock.run(ref.namespace, async () => {
      const object = await track(() => client.getConfig(ref));
      if (!object) return ignored(`${describeRef(ref)} no longer exists`);
      if (!isOptedIn(object.metadata?.annotations, keys.triggerRestart)) {
        return ignored(
          `${describeRef(ref)} is not opted in (annotation ${keys.triggerRestart} is not "true")`,
        );
      }
      const change = toChange(ref.kind, object, action);
      const acted = await reconcile(ref.namespace, [change]);
      return {
        result: 'processed',
        reason: `${action} of ${describeRef(ref)}, content ${change.hash}`,
        ...acted,
      };
    });
  }

  async function handleResync(): Promise<Outcome> {
    let namespaces: string[];
    if (settings.scope.all) {
      // Find the namespaces that hold opted-in config objects; each is then re-read under its lock.
      const found = new Set<string>();
      for (const kind of settings.configKinds) {
        for (const object of await track(() => client.listConfigs(kind, undefined))) {
          if (isOptedIn(object.metadata?.annotations, keys.triggerRestart) && object.metadata?.namespace) {
            found.add(object.metadata.namespace);
          }
        }
      }
      namespaces = [...found].sort();
    } else {
      namespaces = settings.scope.namespaces;
    }
    const decisions: ReportedDecision[] = [];
    const failures: Failure[] = [];
    let configCount = 0;
    for (const namespace of namespaces) {
      await namespaceLock.run(namespace, async () => {
        const changes: ConfigChange[] = [];
        for (const kind of settings.configKinds) {
          for (const object of await track(() => client.listConfigs(kind, namespace))) {
            if (isOptedIn(object.metadata?.annotations, keys.triggerRestart))
              changes.push(toChange(kind, object, 'resync'));
          }
        }
        configCount += changes.length;
        if (changes.length === 0) return;
        const acted = await reconcile(namespace, changes);
        decisions.push(...acted.decisions);
        failures.push(...acted.failures);
      });
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
          return { result: 'ignored', reason: notice.reason, decisions: [], failures: [] };
        case 'resync':
          return handleResync();
        case 'change':
          return handleChange(notice);
      }
    },
  };
}

/** Human-readable scope, for messages. */
export function describeScope(scope: NamespaceScope): string {
  return scope.all ? '*' : scope.namespaces.join(',');
}
