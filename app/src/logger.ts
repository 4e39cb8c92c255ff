/**
 * The logger of both services: this file is the same as app/src/logger.ts and
 * functions/config-restarter/src/log.ts (a unit test keeps them equal). JSON lines through pino, the logger of
 * faas-js-runtime and most of the Node ecosystem, in one shape: `level` (a name), `time` (ISO 8601), the
 * fields, `msg`; no pid or hostname (the platform adds the pod's). pino-http is not used: each service writes
 * its own line per request or event, and pino-http's default line carries every request header, bearer
 * tokens included. Cost measured against a hand-written logger: +0.7 MB of resident memory (BENCHMARKS.md).
 */
import pino from 'pino';
import type { LogLevel } from './config.js';

/** Structured fields of a log line. Never put object data (least of all Secret data) here. */
export type LogFields = Readonly<Record<string, unknown>>;

/** A JSON-lines logger. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped (default `info`). */
  readonly level?: LogLevel;
  /** Receives each finished line without the newline (default: stdout, written synchronously). */
  readonly write?: (line: string) => void;
  /** Clock for the `time` field (default: now). */
  readonly now?: () => Date;
  /** Fields put on every line, e.g. the service name. */
  readonly base?: LogFields;
}

function shape(logger: pino.Logger): Logger {
  return {
    debug: (msg, fields) => logger.debug(fields ?? {}, msg),
    info: (msg, fields) => logger.info(fields ?? {}, msg),
    warn: (msg, fields) => logger.warn(fields ?? {}, msg),
    error: (msg, fields) => logger.error(fields ?? {}, msg),
    child: (fields) => shape(logger.child(fields)),
  };
}

/** Creates a logger writing JSON lines. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const now = options.now ?? (() => new Date());
  const write = options.write;
  const destination = write
    ? { write: (line: string) => write(line.replace(/\n$/, '')) }
    : pino.destination({ dest: 1, sync: true });
  return shape(
    pino(
      {
        level: options.level ?? 'info',
        base: options.base ?? null,
        timestamp: () => `,"time":"${now().toISOString()}"`,
        formatters: { level: (label) => ({ level: label }) },
      },
      destination,
    ),
  );
}

/** A logger that drops everything (tests, tools). */
export const silentLogger: Logger = shape(pino({ enabled: false }));
