/**
 * Entry point: `node dist/index.js`. Reads the settings, connects to the API server, serves HTTP,
 * and on SIGTERM stops readiness, drains in-flight events and exits.
 */
import type { Server } from 'node:http';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createKubeClient, currentNamespace, loadKubeConfig } from './kube.js';
import { createLogger, type Logger } from './log.js';
import { createMetrics } from './metrics.js';
import { collectDefaultMetrics } from 'prom-client';
import { createRestarter, describeScope, type NamespaceScope } from './restarter.js';

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

/** Starts the function. Resolves once the server listens. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  let logger: Logger = createLogger('info');
  try {
    const config = loadConfig(env);
    logger = createLogger(config.logLevel).child({ component: 'config-restarter' });
    const kc = loadKubeConfig(env);
    // Like kubectl: a context without a namespace means "default" (in a pod: the ServiceAccount's).
    const scope = resolveScope(config, currentNamespace(kc) ?? 'default');
    const client = createKubeClient(kc, {
      timeoutMs: config.apiTimeoutMs,
      maxSockets: config.patchConcurrency * 2,
    });
    const metrics = createMetrics();
    collectDefaultMetrics({ register: metrics.registry });
    const restarter = createRestarter({
      client,
      logger,
      metrics,
      settings: {
        annotationPrefix: config.annotationPrefix,
        matchLabels: config.matchLabels,
        dryRun: config.dryRun,
        configKinds: config.configKinds,
        patchConcurrency: config.patchConcurrency,
        workloadSelector: config.workloadSelector,
        scope,
      },
    });
    let ready = true;
    const app = createApp({ restarter, logger, metrics, isReady: () => ready });
    const server = app.listen(config.port);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    logger.info('listening', {
      port: config.port,
      apiServer: kc.getCurrentCluster()?.server,
      watchNamespaces: describeScope(scope),
      annotationPrefix: config.annotationPrefix,
      matchLabels: config.matchLabels,
      configKinds: config.configKinds,
      dryRun: config.dryRun,
      workloadSelector: config.workloadSelector,
    });

    const shutdown = (signal: string): void => {
      if (!ready) return;
      ready = false;
      logger.info('shutting down', { signal });
      // Stop accepting connections, let in-flight events finish, then exit.
      server.close(() => {
        logger.info('drained');
        process.exit(0);
      });
      server.closeIdleConnections();
      setTimeout(() => {
        logger.warn('drain timeout; exiting with requests in flight', {
          timeoutMs: config.shutdownTimeoutMs,
        });
        process.exit(1);
      }, config.shutdownTimeoutMs).unref();
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    return server;
  } catch (error) {
    if (error instanceof ConfigError) {
      logger.error('invalid configuration', { problems: error.problems });
      process.stderr.write(`${error.message}\n`);
    } else {
      logger.error('failed to start', { error: error instanceof Error ? error.message : String(error) });
    }
    process.exit(1);
  }
}

await main();
