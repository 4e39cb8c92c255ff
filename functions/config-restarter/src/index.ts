/**
 * Entry point: `node dist/index.js`. Reads the settings, connects to the API server, starts the warm
 * workload index, serves HTTP, and on SIGTERM stops readiness, drains in-flight events and exits.
 */
/* eslint-disable max-lines-per-function, complexity -- main assembles every part in one function: load, wire, listen, drain */
import { realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { collectDefaultMetrics } from 'prom-client';
import { createApp } from './app.js';
import { createAuthenticator, defaultAllowedSubjects, type Authenticator } from './auth.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createKubeClient } from './kube.js';
import { loadApiAccess, type ApiAccess } from './kube-credentials.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics } from './metrics.js';
import { createRestarter, describeScope, type NamespaceScope } from './restarter.js';
import { createServer } from './server.js';
import { createKubePost, createTokenReviewer } from './token-review.js';
import { WorkloadIndex } from './workload-index.js';
import { WORKLOAD_KINDS } from './workload-kinds.js';
import { summarizeWorkload } from './workload-summary.js';

/** Something that delivers process signals (`process` in production). */
export interface SignalSource {
  once(signal: NodeJS.Signals, listener: () => void): unknown;
  removeListener(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** Injection points of {@link main}; all default to the real process. */
export interface MainOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly signals?: SignalSource;
  /** Called once with the exit code (default `process.exit`). */
  readonly exit?: (code: number) => void;
}

/** A running function. */
export interface RunningFunction {
  readonly server: Server;
  readonly port: number;
  /** Starts the same drain a SIGTERM starts; resolves with the exit code. */
  shutdown(reason?: string): Promise<number>;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

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

/** Sender authentication when `AUTH_AUDIENCE` is set: TokenReviews through the function's own credentials. */
function senderAuthenticator(
  config: Config,
  access: ApiAccess,
  ownNamespace: string,
): { authenticator: Authenticator; allowedSubjects: string[] } | undefined {
  if (!config.auth) return undefined;
  const allowedSubjects = config.auth.allowedSubjects ?? defaultAllowedSubjects(ownNamespace);
  const review = createTokenReviewer(createKubePost(access, { timeoutMs: config.apiTimeoutMs }));
  return {
    authenticator: createAuthenticator({ review, audience: config.auth.audience, allowedSubjects }),
    allowedSubjects,
  };
}

/**
 * Starts the function. On invalid settings or credentials it logs every problem and exits with code 1
 * (the promise then rejects).
 */
export async function main(options: MainOptions = {}): Promise<RunningFunction> {
  const env = options.env ?? process.env;
  const signals = options.signals ?? process;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let logger: Logger = createLogger('info');
  let config: Config;
  let access;
  try {
    config = loadConfig(env);
    logger = createLogger(config.logLevel).child({ component: 'config-restarter' });
    access = await loadApiAccess(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      logger.error('invalid configuration', { problems: error.problems });
      process.stderr.write(`${error.message}\n`);
    } else {
      logger.error('failed to start', { error: error instanceof Error ? error.message : String(error) });
    }
    exit(1);
    throw error;
  }

  // Like kubectl: a context without a namespace means "default" (in a pod: the ServiceAccount's).
  const ownNamespace = access.namespace ?? 'default';
  const scope = resolveScope(config, ownNamespace);
  const client = createKubeClient(access, {
    timeoutMs: config.apiTimeoutMs,
    maxSockets: config.patchConcurrency * 2,
  });
  const metrics = createMetrics();
  collectDefaultMetrics({ register: metrics.registry });
  const decisionSettings = {
    annotationPrefix: config.annotationPrefix,
    matchLabels: config.matchLabels,
    minRestartIntervalMs: config.minRestartIntervalMs,
    settleWindowMs: config.settleWindowMs,
  };
  const index = new WorkloadIndex({
    client,
    kinds: WORKLOAD_KINDS,
    namespaces: scope.all ? undefined : scope.namespaces,
    labelSelector: config.workloadSelector,
    matchLabels: config.matchLabels,
    summarize: (kind, object) => summarizeWorkload(decisionSettings, kind, object),
    logger,
    onRelist: (reason) => metrics.indexRelists.inc({ reason }),
  });
  metrics.observeIndex(() => index.state());
  index.start();
  const restarter = createRestarter({
    client,
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
      scope,
    },
  });
  let ready = true;
  const auth = senderAuthenticator(config, access, ownNamespace);
  const app = createApp({
    restarter,
    logger,
    metrics,
    isReady: () => ready,
    indexState: () => index.state(),
    authenticator: auth?.authenticator,
  });
  const server = createServer(app, {
    logger,
    onRefused: () => metrics.events.inc({ category: 'invalid', result: 'invalid' }),
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info('listening', {
    port,
    apiServer: access.server.href,
    credentials: access.source,
    watchNamespaces: describeScope(scope),
    annotationPrefix: config.annotationPrefix,
    matchLabels: config.matchLabels,
    configKinds: config.configKinds,
    dryRun: config.dryRun,
    workloadSelector: config.workloadSelector,
    senderAuthentication: config.auth
      ? { audience: config.auth.audience, allowedSubjects: auth?.allowedSubjects }
      : 'off',
    minRestartIntervalMs: config.minRestartIntervalMs,
    settleWindowMs: config.settleWindowMs,
    restartOnDelete: config.restartOnDelete,
  });

  let draining: Promise<number> | undefined;
  const drain = async (reason: string): Promise<number> => {
    for (const signal of SIGNALS) signals.removeListener(signal, handlers[signal]);
    ready = false;
    logger.info('shutting down', { reason });
    // Stop accepting connections, let in-flight events finish, then exit.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs);
    });
    const outcome = await Promise.race([closed.then(() => 'drained' as const), timedOut]);
    clearTimeout(timer);
    restarter.stop();
    index.stop();
    if (outcome === 'timeout') {
      server.closeAllConnections();
      logger.warn('drain timeout; exiting with requests in flight', { timeoutMs: config.shutdownTimeoutMs });
    } else {
      logger.info('drained');
    }
    const code = outcome === 'drained' ? 0 : 1;
    exit(code);
    return code;
  };
  const shutdown = (reason = 'shutdown'): Promise<number> => (draining ??= drain(reason));
  const handlers = Object.fromEntries(
    SIGNALS.map((signal) => [signal, () => void shutdown(signal)] as const),
  ) as Record<NodeJS.Signals, () => void>;
  for (const signal of SIGNALS) signals.once(signal, handlers[signal]);
  return { server, port, shutdown };
}

/** True when this module is the process entry point (`node dist/index.js`), not an import. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return pathToFileURL(realpathSync(entry)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // Start-up failures are logged and exit inside main.
  main().catch(() => undefined);
}
