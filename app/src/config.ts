import path from 'node:path';

/** Log levels in increasing severity. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * How the file at `MESSAGE_FILE` is read.
 * - `raw`: the whole file is the message (a ConfigMap key mounted as a file, e.g. `/etc/helloworld/MESSAGE`).
 * - `dotenv`: `KEY=value` lines; the value of `MESSAGE` is the message.
 * - `auto` (default): `raw` when the file is named `MESSAGE`, `dotenv` otherwise.
 */
export const MESSAGE_FILE_FORMATS = ['auto', 'raw', 'dotenv'] as const;

/** One of {@link MESSAGE_FILE_FORMATS}. */
export type MessageFileFormat = (typeof MESSAGE_FILE_FORMATS)[number];

/** Validated settings of the helloworld app. */
export interface AppConfig {
  /** TCP port to listen on (`PORT`, default 8080; 0 picks a free port). */
  readonly port: number;
  /** The message from the environment (`ENV_MESSAGE`); undefined when not set. */
  readonly message: string | undefined;
  /** Absolute path of the message file (`MESSAGE_FILE`); undefined when not set. */
  readonly messageFile: string | undefined;
  /** How the message file is parsed (`MESSAGE_FILE_FORMAT`, default `auto`). */
  readonly messageFileFormat: MessageFileFormat;
  /** Name shown on the page and in logs (`SERVICE_NAME`, else `K_SERVICE`, else `helloworld`). */
  readonly serviceName: string;
  /** Environment label shown on the page (`ENVIRONMENT`, else `APP_ENV`, else `local`). */
  readonly environment: string;
  /** Minimum level written to the log (`LOG_LEVEL`, default `info`). */
  readonly logLevel: LogLevel;
  /** Time between SIGTERM and closing the listener, while readiness answers 503 (`SHUTDOWN_DELAY_MS`, default 0). */
  readonly shutdownDelayMs: number;
  /** Longest wait for in-flight requests after closing the listener (`SHUTDOWN_TIMEOUT_MS`, default 25000). */
  readonly shutdownTimeoutMs: number;
}

/** Thrown by {@link loadConfig}; `problems` lists every invalid setting, not just the first. */
export class ConfigError extends Error {
  /** One human-readable line per invalid variable. */
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const LABEL_MAX = 63;

/** Reads the variables of one environment, collecting every problem. */
class EnvReader {
  readonly problems: string[] = [];

  constructor(private readonly env: Readonly<Record<string, string | undefined>>) {}

  /** The value, or undefined when unset or blank. */
  get(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.get(name);
    if (raw === undefined) return fallback;
    const value = Number(raw.trim());
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
      this.problems.push(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return value;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.get(name)?.trim().toLowerCase();
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.problems.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
    return fallback;
  }

  /** The first of `names` that is set, as a label value. */
  label(names: readonly string[], fallback: string): string {
    for (const name of names) {
      const raw = this.get(name)?.trim();
      if (raw === undefined) continue;
      if (raw.length > LABEL_MAX) {
        this.problems.push(`${name} must be at most ${LABEL_MAX} characters, got ${raw.length}`);
        return fallback;
      }
      return raw;
    }
    return fallback;
  }

  absolutePath(name: string): string | undefined {
    const value = this.get(name)?.trim();
    if (value !== undefined && !path.isAbsolute(value)) {
      this.problems.push(`${name} must be an absolute path, got ${JSON.stringify(value)}`);
    }
    return value;
  }
}

/**
 * Reads and validates the app's settings from an environment map (pass `process.env`).
 * Empty strings count as unset, so `FOO=` in a manifest falls back to the default.
 *
 * @throws {@link ConfigError} listing every problem at once.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): AppConfig {
  const read = new EnvReader(env);
  // In this order the problems are listed.
  const config: AppConfig = {
    port: read.integer('PORT', 8080, 0, 65535),
    // Keep the message verbatim (spaces included): it is content, not a setting.
    message: env.ENV_MESSAGE,
    messageFile: read.absolutePath('MESSAGE_FILE'),
    messageFileFormat: read.oneOf('MESSAGE_FILE_FORMAT', MESSAGE_FILE_FORMATS, 'auto'),
    serviceName: read.label(['SERVICE_NAME', 'K_SERVICE'], 'helloworld'),
    environment: read.label(['ENVIRONMENT', 'APP_ENV'], 'local'),
    logLevel: read.oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    shutdownDelayMs: read.integer('SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    shutdownTimeoutMs: read.integer('SHUTDOWN_TIMEOUT_MS', 25_000, 0, 600_000),
  };
  if (read.problems.length > 0) throw new ConfigError(read.problems);
  return config;
}
