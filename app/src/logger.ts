import { LOG_LEVELS, type LogLevel } from './config.js';

/** Structured fields added to a log line. */
export type LogFields = Readonly<Record<string, unknown>>;

/** Minimal structured logger: one JSON object per line. */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Lines below this level are dropped (default `info`). */
  readonly level?: LogLevel;
  /** Receives each finished line without the newline (default: stdout). */
  readonly write?: (line: string) => void;
  /** Clock for the `time` field (default: now). */
  readonly now?: () => Date;
  /** Fields put on every line, e.g. the service name. */
  readonly base?: LogFields;
}

/** Creates a JSON-lines logger (one line per call, fields `time`, `level`, `msg`, then the rest). */
export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? 'info');
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const now = options.now ?? (() => new Date());
  const log =
    (level: LogLevel) =>
    (msg: string, fields?: LogFields): void => {
      if (LOG_LEVELS.indexOf(level) < threshold) return;
      write(JSON.stringify({ time: now().toISOString(), level, msg, ...options.base, ...fields }));
    };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** A logger that drops everything (tests, tools). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
