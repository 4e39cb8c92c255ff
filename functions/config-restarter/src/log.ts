import type { LogLevel } from './config.js';

const SEVERITY: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured fields of a log line. Never put object data (least of all Secret data) here. */
export type LogFields = Record<string, unknown>;

/** A JSON-lines logger: one object per line, `time`, `level`, `msg`, then the fields. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

/**
 * Creates a JSON-lines logger.
 * @param level - lines below this level are dropped
 * @param write - sink for one line (defaults to stdout)
 */
export function createLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
  base: LogFields = {},
): Logger {
  const emit = (lineLevel: LogLevel, msg: string, fields?: LogFields): void => {
    if (SEVERITY[lineLevel] < SEVERITY[level]) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: lineLevel, msg, ...base, ...fields }));
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger(level, write, { ...base, ...fields }),
  };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger('error', () => undefined);
