/**
 * The composition root: the one place that builds the function from its settings. `main` (index.ts), the
 * unit harness and the bench all call {@link createRuntime}, so the warm index and the restarter are always
 * built from the same settings (scope, `MATCH_LABELS`, annotation prefix, selector) and never disagree.
 * Creating it does no I/O; {@link Runtime.start} starts the index's lists and watches.
 */
import type express from 'express';
import { createApp } from './app.js';
import {
  createAuthenticator,
  defaultAllowedSubjects,
  type Authenticator,
  type TokenReviewer,
} from './auth.js';
import type { Config } from './config.js';
import type { DecisionSettings } from './decision-types.js';
import { summarizeWorkload } from './workload-summary.js';
import { HealthState } from './health.js';
import { createKubeClient, type ClusterClient } from './kube.js';
import type { ApiAccess } from './kube-credentials.js';
import type { LogFields, Logger } from './log.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createRestarter, describeScope, type NamespaceScope, type Restarter } from './restarter.js';
import { createKubePost, createTokenReviewer } from './token-review.js';
import { WorkloadIndex } from './workload-index.js';
import { WORKLOAD_KINDS } from './workload-kinds.js';

/** What the runtime needs of the cluster. Unit tests give a stand-in client and a stub reviewer. */
export interface ClusterAccess {
  /** The one module that talks to the API server. */
  client: ClusterClient;
  /** The function's own namespace: the scope when `WATCH_NAMESPACES` is unset, and its senders' namespace. */
  ownNamespace: string;
  /** TokenReviews for sender authentication; needed when `AUTH_AUDIENCE` is set. */
  reviewTokens?: TokenReviewer | undefined;
}

/** The cluster access of a process: the API client and TokenReviews over the same credentials. */
export function connectCluster(api: ApiAccess, config: Config): ClusterAccess {
  const timeoutMs = config.apiTimeoutMs;
  return {
    client: createKubeClient(api, { timeoutMs, maxSockets: config.patchConcurrency * 2 }),
    // Like kubectl: a context without a namespace means "default" (in a pod: the ServiceAccount's).
    ownNamespace: api.namespace ?? 'default',
    reviewTokens: config.auth ? createTokenReviewer(createKubePost(api, { timeoutMs })) : undefined,
  };
}

/** Knobs for tests and the bench; production uses the defaults. */
export interface RuntimeOptions {
  /** Clock of the restarter's decisions. */
  now?: () => Date;
  /** Backoff of the index after a failed list or watch (default 500 ms .. 30 s). */
  indexBackoffMs?: { initial: number; max: number };
  /** Largest accepted request body (default `1mb`). */
  bodyLimit?: string;
  /** Patches of one workload before a conflict storm fails it (default 5). */
  maxConflictAttempts?: number;
}

/** A built function, not yet started. */
export interface Runtime {
  /** The HTTP app (CloudEvents, health, metrics). */
  readonly app: express.Express;
  /** Readiness: flipped to "shutting down" by the drain. */
  readonly health: HealthState;
  readonly metrics: Metrics;
  readonly index: WorkloadIndex;
  readonly restarter: Restarter;
  /** The settings in effect, for the start-up log line. */
  readonly settings: LogFields;
  /** Starts the index's lists and watches. */
  start(): void;
  /** Stops them, and the restarter's settle-window timers. */
  stop(): void;
}

/** Resolves `WATCH_NAMESPACES` unset to the function's own namespace. */
function resolveScope(config: Config, ownNamespace: string): NamespaceScope {
  switch (config.watchNamespaces.mode) {
    case 'all':
      return { all: true };
    case 'list':
      return { all: false, namespaces: config.watchNamespaces.namespaces };
    case 'own':
      return { all: false, namespaces: [ownNamespace] };
  }
}

/** Sender authentication when `AUTH_AUDIENCE` is set. */
function senderAuthentication(
  config: Config,
  access: ClusterAccess,
): { authenticator: Authenticator; allowedSubjects: string[] } | undefined {
  if (!config.auth) return undefined;
  if (!access.reviewTokens) throw new Error('AUTH_AUDIENCE is set but no TokenReview client was given');
  const allowedSubjects = config.auth.allowedSubjects ?? defaultAllowedSubjects(access.ownNamespace);
  const { audience } = config.auth;
  return {
    authenticator: createAuthenticator({ review: access.reviewTokens, audience, allowedSubjects }),
    allowedSubjects,
  };
}

/** What the index and the restarter both derive from the settings, computed once so they agree. */
interface Shared {
  config: Config;
  access: ClusterAccess;
  logger: Logger;
  metrics: Metrics;
  scope: NamespaceScope;
  decisionSettings: DecisionSettings;
  options: RuntimeOptions;
}

function buildIndex({
  config,
  access,
  logger,
  metrics,
  scope,
  decisionSettings,
  options,
}: Shared): WorkloadIndex {
  const index = new WorkloadIndex({
    client: access.client,
    kinds: WORKLOAD_KINDS,
    namespaces: scope.all ? undefined : scope.namespaces,
    labelSelector: config.workloadSelector,
    matchLabels: config.matchLabels,
    summarize: (kind, object) => summarizeWorkload(decisionSettings, kind, object),
    logger,
    onRelist: (reason) => metrics.indexRelists.inc({ reason }),
    ...(options.indexBackoffMs ? { backoffMs: options.indexBackoffMs } : {}),
  });
  metrics.observeIndex(() => index.state());
  return index;
}

function buildRestarter(shared: Shared, index: WorkloadIndex): Restarter {
  const { config, access, logger, metrics, scope, decisionSettings, options } = shared;
  return createRestarter({
    client: access.client,
    index,
    logger,
    metrics,
    settings: {
      ...decisionSettings,
      dryRun: config.dryRun,
      configKinds: config.configKinds,
      patchConcurrency: config.patchConcurrency,
      syncTimeoutMs: config.apiTimeoutMs,
      restartOnDelete: config.restartOnDelete,
      maxConcurrentRollouts: config.maxConcurrentRollouts,
      scope,
      ...(options.maxConflictAttempts ? { maxConflictAttempts: options.maxConflictAttempts } : {}),
    },
    ...(options.now ? { now: options.now } : {}),
  });
}

/** The settings in effect, for the start-up log line. */
function describeSettings(
  config: Config,
  scope: NamespaceScope,
  allowedSubjects: string[] | undefined,
): LogFields {
  return {
    watchNamespaces: describeScope(scope),
    annotationPrefix: config.annotationPrefix,
    matchLabels: config.matchLabels,
    configKinds: config.configKinds,
    dryRun: config.dryRun,
    workloadSelector: config.workloadSelector,
    senderAuthentication: config.auth ? { audience: config.auth.audience, allowedSubjects } : 'off',
    minRestartIntervalMs: config.minRestartIntervalMs,
    settleWindowMs: config.settleWindowMs,
    restartOnDelete: config.restartOnDelete,
    maxConcurrentRollouts: config.maxConcurrentRollouts,
  };
}

/** The settings of the decisions, for the index's summaries and the restarter alike. */
function decisionSettingsOf(config: Config): DecisionSettings {
  return {
    annotationPrefix: config.annotationPrefix,
    matchLabels: config.matchLabels,
    minRestartIntervalMs: config.minRestartIntervalMs,
    settleWindowMs: config.settleWindowMs,
  };
}

/** Builds the function: index, restarter and app over one set of settings. */
export function createRuntime(
  config: Config,
  access: ClusterAccess,
  logger: Logger,
  options: RuntimeOptions = {},
): Runtime {
  const scope = resolveScope(config, access.ownNamespace);
  const decisionSettings = decisionSettingsOf(config);
  const shared = { config, access, logger, metrics: createMetrics(), scope, decisionSettings, options };
  const index = buildIndex(shared);
  const restarter = buildRestarter(shared, index);
  const health = new HealthState();
  const auth = senderAuthentication(config, access);
  const app = createApp({
    restarter,
    logger,
    metrics: shared.metrics,
    isReady: () => health.ready,
    indexState: () => index.state(),
    authenticator: auth?.authenticator,
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
  });
  return {
    app,
    health,
    metrics: shared.metrics,
    index,
    restarter,
    settings: describeSettings(config, scope, auth?.allowedSubjects),
    start: () => index.start(),
    stop: () => {
      restarter.stop();
      index.stop();
    },
  };
}
