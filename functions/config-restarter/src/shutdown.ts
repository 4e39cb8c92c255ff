/**
 * Graceful shutdown, the same way as the helloworld app (app/src/index.ts): on SIGTERM or SIGINT readiness
 * answers 503 at once; after `SHUTDOWN_DELAY_MS` the listener closes (idle keep-alive connections too) and
 * in-flight events finish, then the exit code is 0. Events still running after `SHUTDOWN_TIMEOUT_MS` have
 * their connections cut, and the exit code is 1.
 */
import type { Server } from 'node:http';
import type { HealthState } from './health.js';
import type { Logger } from './log.js';

/** Something that delivers process signals (`process` in production). */
export interface SignalSource {
  once(signal: NodeJS.Signals, listener: () => void): unknown;
  removeListener(signal: NodeJS.Signals, listener: () => void): unknown;
}

/** What {@link drainOnSignals} works on. */
export interface DrainOptions {
  server: Server;
  health: HealthState;
  logger: Logger;
  delayMs: number;
  timeoutMs: number;
  signals: SignalSource;
  /** Called once with the exit code. */
  exit: (code: number) => void;
  /** Called once the listener closed or the timeout passed, before `exit` (stops the index). */
  onClosed: () => void;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Drains on the first SIGTERM or SIGINT. Returns the same drain for direct calls; it runs once and
 * resolves with the exit code.
 */
export function drainOnSignals(options: DrainOptions): (reason?: string) => Promise<number> {
  const { server, logger, signals } = options;
  let draining: Promise<number> | undefined;
  const drain = async (reason: string): Promise<number> => {
    for (const signal of SIGNALS) signals.removeListener(signal, handlers[signal]);
    options.health.beginShutdown();
    logger.info('shutting down', { reason, delayMs: options.delayMs });
    // Give the platform time to see readiness fail before the listener goes away.
    if (options.delayMs > 0) await sleep(options.delayMs);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
    });
    const outcome = await Promise.race([closed.then(() => 'drained' as const), timedOut]);
    clearTimeout(timer);
    options.onClosed();
    if (outcome === 'timeout') {
      server.closeAllConnections();
      logger.warn('drain timeout; exiting with requests in flight', { timeoutMs: options.timeoutMs });
    } else {
      logger.info('drained');
    }
    const code = outcome === 'drained' ? 0 : 1;
    options.exit(code);
    return code;
  };
  const shutdown = (reason = 'shutdown'): Promise<number> => (draining ??= drain(reason));
  const handlers = Object.fromEntries(
    SIGNALS.map((signal) => [signal, () => void shutdown(signal)] as const),
  ) as Record<NodeJS.Signals, () => void>;
  for (const signal of SIGNALS) signals.once(signal, handlers[signal]);
  return shutdown;
}
