/**
 * Entry point: `node dist/index.js`. Load -> create -> listen -> drain: reads the settings and the API
 * access, builds the function (runtime.ts), serves HTTP (server.ts), and on SIGTERM drains (shutdown.ts).
 */
import { realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { collectDefaultMetrics } from 'prom-client';
import { ConfigError, loadConfig, type Config } from './config.js';
import type { HealthState } from './health.js';
import { loadApiAccess, type ApiAccess } from './kube-credentials.js';
import { createLogger, type Logger } from './log.js';
import { connectCluster, createRuntime } from './runtime.js';
import { createServer } from './server.js';
import { drainOnSignals, type SignalSource } from './shutdown.js';

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
  readonly health: HealthState;
  /** Starts the same drain a SIGTERM starts; resolves with the exit code. */
  shutdown(reason?: string): Promise<number>;
}

/** Settings, logger and API access; every problem is logged, then the process exits 1. */
async function load(
  env: NodeJS.ProcessEnv,
  exit: (code: number) => void,
): Promise<{ config: Config; logger: Logger; access: ApiAccess }> {
  let logger: Logger = createLogger();
  try {
    const config = loadConfig(env);
    logger = createLogger({ level: config.logLevel, base: { component: 'config-restarter' } });
    return { config, logger, access: await loadApiAccess(env) };
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
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/**
 * Starts the function. On invalid settings or credentials it logs every problem and exits with code 1
 * (the promise then rejects).
 */
export async function main(options: MainOptions = {}): Promise<RunningFunction> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const { config, logger, access } = await load(options.env ?? process.env, exit);
  const runtime = createRuntime(config, connectCluster(access, config), logger);
  collectDefaultMetrics({ register: runtime.metrics.registry });
  runtime.start();
  const server = createServer(runtime.app, {
    logger,
    onRefused: () => runtime.metrics.events.inc({ category: 'invalid', result: 'invalid' }),
  });
  const port = await listen(server, config.port);
  logger.info('listening', {
    port,
    apiServer: access.server.href,
    credentials: access.source,
    ...runtime.settings,
  });
  const shutdown = drainOnSignals({
    server,
    health: runtime.health,
    logger,
    delayMs: config.shutdownDelayMs,
    timeoutMs: config.shutdownTimeoutMs,
    signals: options.signals ?? process,
    exit,
    onClosed: () => runtime.stop(),
  });
  return { server, port, health: runtime.health, shutdown };
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
