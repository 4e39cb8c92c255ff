import { realpathSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

import { createApp } from './app.js';
import { ConfigError, loadConfig, type AppConfig } from './config.js';
import { HealthState } from './health.js';
import { createLogger, type Logger } from './logger.js';
import type { MessageSource } from './message-file.js';

export { createApp, type AppDeps } from './app.js';
export { ConfigError, loadConfig, type AppConfig } from './config.js';
export { HealthState } from './health.js';

/** Something that delivers process signals (`process` in production). */
export interface SignalSource {
  once(signal: NodeJS.Signals, listener: () => void): unknown;
  removeListener(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** Injection points of {@link main}; all default to the real process. */
export interface MainOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly signals?: SignalSource;
  /** Called once with the exit code after shutdown (default `process.exit`). */
  readonly exit?: (code: number) => void;
  /** Default: JSON lines on stdout at `LOG_LEVEL`. */
  readonly logger?: Logger;
  /** Overrides the message file reader (tests). */
  readonly messageSource?: MessageSource;
}

/** A running helloworld server. */
export interface RunningServer {
  readonly server: Server;
  /** The port actually bound (useful with PORT=0). */
  readonly port: number;
  readonly health: HealthState;
  /** Starts the same graceful shutdown a SIGTERM starts; resolves with the exit code. */
  shutdown(reason?: string): Promise<number>;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/** The settings, or (after logging every problem) `exit(1)` and a rejection. */
function configOrExit(options: MainOptions, exit: (code: number) => void): AppConfig {
  try {
    return loadConfig(options.env ?? process.env);
  } catch (err) {
    const logger = options.logger ?? createLogger();
    if (err instanceof ConfigError) {
      logger.error('invalid configuration', { problems: err.problems });
    } else {
      logger.error('startup failed', { error: String(err) });
    }
    exit(1);
    throw err;
  }
}

/** What a graceful shutdown acts on. */
interface ShutdownParts {
  server: Server;
  health: HealthState;
  logger: Logger;
  config: AppConfig;
  exit: (code: number) => void;
}

/** Readiness off, the shutdown delay, then close and wait for in-flight requests; resolves with the exit code. */
async function drain(
  { server, health, logger, config, exit }: ShutdownParts,
  reason: string,
): Promise<number> {
  health.beginShutdown();
  logger.info('shutting down', { reason, delayMs: config.shutdownDelayMs });
  // Give the platform time to see readiness fail before the listener goes away.
  if (config.shutdownDelayMs > 0) await sleep(config.shutdownDelayMs);

  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs);
  });
  const outcome = await Promise.race([closed.then(() => 'drained' as const), timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    server.closeAllConnections();
    logger.warn('shutdown timed out, connections closed', { timeoutMs: config.shutdownTimeoutMs });
  } else {
    logger.info('drained, exiting');
  }
  const code = outcome === 'drained' ? 0 : 1;
  exit(code);
  return code;
}

/** The shutdown function, started once by SIGTERM, SIGINT or a call, whichever comes first. */
function shutdownOn(signals: SignalSource, parts: ShutdownParts): (reason?: string) => Promise<number> {
  let shutdownPromise: Promise<number> | undefined;
  const shutdown = (reason = 'shutdown'): Promise<number> => {
    if (!shutdownPromise) {
      for (const signal of SIGNALS) signals.removeListener(signal, handlers[signal]);
      shutdownPromise = drain(parts, reason);
    }
    return shutdownPromise;
  };
  const handlers = Object.fromEntries(
    SIGNALS.map((signal) => [signal, () => void shutdown(signal)] as const),
  ) as Record<NodeJS.Signals, () => void>;
  for (const signal of SIGNALS) signals.once(signal, handlers[signal]);
  return shutdown;
}

/**
 * Starts the helloworld server on `$PORT`.
 *
 * On SIGTERM or SIGINT: readiness answers 503 at once, after `SHUTDOWN_DELAY_MS` the listener closes (idle
 * keep-alive connections too), in-flight requests finish, then `exit(0)`. If they do not finish within
 * `SHUTDOWN_TIMEOUT_MS` the remaining connections are cut and the exit code is 1.
 * On invalid configuration it logs every problem and exits with code 1 (the promise then rejects).
 */
export async function main(options: MainOptions = {}): Promise<RunningServer> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const config = configOrExit(options, exit);
  const logger =
    options.logger ?? createLogger({ level: config.logLevel, base: { service: config.serviceName } });
  const health = new HealthState();
  const app = createApp({ config, logger, health, messageSource: options.messageSource });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.port, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const port = (server.address() as AddressInfo).port;
  logger.info('listening', { port, environment: config.environment });
  const shutdown = shutdownOn(options.signals ?? process, { server, health, logger, config, exit });
  return { server, port, health, shutdown };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
  // Startup failures already logged and exited inside main.
  main().catch(() => undefined);
}
