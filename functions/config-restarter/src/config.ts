/**
 * Settings of the function, read once from the environment and validated before anything starts.
 * `loadConfig` is pure: it never reads files or talks to the network, so it is trivially testable.
 */
import { parseDuration } from './duration.js';
import { isDnsSubdomain, isLabelKey, isNamespaceName } from './kube-names.js';

/** Log levels in increasing severity. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
/** A log level name. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Kinds of configuration objects whose changes can restart workloads. */
export const CONFIG_KINDS = ['ConfigMap', 'Secret'] as const;
/** A configuration object kind. */
export type ConfigKind = (typeof CONFIG_KINDS)[number];

/** Which namespaces the function acts in. `own` is resolved at start to the function's own namespace. */
export type WatchNamespaces = { mode: 'own' } | { mode: 'all' } | { mode: 'list'; namespaces: string[] };

/** The validated settings. */
export interface Config {
  /** HTTP port (`PORT`, default 8080). */
  port: number;
  /** Annotation prefix (`ANNOTATION_PREFIX`, default `rolling.restart.controller`). */
  annotationPrefix: string;
  /** Label keys a ConfigMap and a workload must agree on (`MATCH_LABELS`, default `app,env`). */
  matchLabels: string[];
  /** Namespaces to act in (`WATCH_NAMESPACES`: comma list, `*`, or unset for the own namespace). */
  watchNamespaces: WatchNamespaces;
  /** Send patches with server-side dry-run only (`DRY_RUN`, default false). */
  dryRun: boolean;
  /** Minimum log level (`LOG_LEVEL`, default `info`). */
  logLevel: LogLevel;
  /** Kinds acted on (`CONFIG_KINDS`, default `ConfigMap`; add `Secret` together with the Secret RBAC). */
  configKinds: ConfigKind[];
  /**
   * Label selector sent to the API server with every workload list (`WORKLOAD_SELECTOR`, default none).
   * Matching by reference needs every workload of the namespace, so without it lists are complete;
   * with it only the selected workloads are considered at all.
   */
  workloadSelector: string | undefined;
  /** Patches in flight at once (`PATCH_CONCURRENCY`, default 4). */
  patchConcurrency: number;
  /** Timeout of one API request in milliseconds (`API_TIMEOUT_MS`, default 10000). */
  apiTimeoutMs: number;
  /** Time between SIGTERM and closing the listener, while readiness answers 503 (`SHUTDOWN_DELAY_MS`, default 0). */
  shutdownDelayMs: number;
  /** Grace period for in-flight requests on SIGTERM in milliseconds (`SHUTDOWN_TIMEOUT_MS`, default 10000). */
  shutdownTimeoutMs: number;
  /**
   * Default minimum time between two restarts of one workload, in ms (`MIN_RESTART_INTERVAL`, a Go
   * duration such as `5m`; default 0 = none). A workload's `<prefix>/minRestartInterval` annotation wins.
   */
  minRestartIntervalMs: number;
  /**
   * Default settle window of a workload, in ms (`SETTLE_WINDOW`, a Go duration such as `2s` or `30s`;
   * default 0 = off): the first change opens it, one restart at its end covers every change inside it.
   * A workload's `<prefix>/settle` annotation wins.
   */
  settleWindowMs: number;
  /** A confirmed deletion restarts the workloads referencing the object (`RESTART_ON_DELETE`, default false). */
  restartOnDelete: boolean;
  /** Rollouts in progress at once per namespace (`MAX_CONCURRENT_ROLLOUTS`; default 0 = unlimited). */
  maxConcurrentRollouts: number;
  /**
   * Sender authentication, off unless `AUTH_AUDIENCE` is set: every `POST /` must carry a bearer token
   * that the API server's TokenReview accepts for this audience, issued to one of `allowedSubjects`
   * (`AUTH_ALLOWED_SUBJECTS`; undefined = the project's sources in the function's own namespace).
   */
  auth: AuthSettings | undefined;
}

/** Settings of sender authentication. */
export interface AuthSettings {
  /** Audience the senders' tokens must be issued for (`AUTH_AUDIENCE`). */
  audience: string;
  /** Usernames accepted (`AUTH_ALLOWED_SUBJECTS`); undefined = the defaults, resolved at start. */
  allowedSubjects: string[] | undefined;
}

/** Thrown by {@link loadConfig}; `problems` lists every invalid variable at once. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

function parseBoolean(
  name: string,
  value: string | undefined,
  fallback: boolean,
  problems: string[],
): boolean {
  if (value === undefined || value.trim() === '') return fallback;
  const normalised = value.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(normalised)) return true;
  if (['false', '0', 'no'].includes(normalised)) return false;
  problems.push(`${name} must be true or false, got "${value}"`);
  return fallback;
}

function parseInteger(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  if (value === undefined || value.trim() === '') return fallback;
  const parsed = Number(value.trim());
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
    problems.push(`${name} must be an integer between ${min} and ${max}, got "${value}"`);
    return fallback;
  }
  return parsed;
}

/** Reads one variable (or a few that belong together); a bad value adds a problem and a fallback is used. */
type Reader<T> = (env: NodeJS.ProcessEnv, problems: string[]) => T;

const readAnnotationPrefix: Reader<string> = (env, problems) => {
  const prefix = (env.ANNOTATION_PREFIX ?? '').trim() || 'rolling.restart.controller';
  if (!isDnsSubdomain(prefix)) {
    problems.push(`ANNOTATION_PREFIX must be a DNS subdomain such as "example.com", got "${prefix}"`);
  }
  return prefix;
};

const readMatchLabels: Reader<string[]> = (env, problems) => {
  const keys = env.MATCH_LABELS === undefined ? ['app', 'env'] : list(env.MATCH_LABELS);
  const bad = keys.filter((key) => !isLabelKey(key));
  if (bad.length > 0) problems.push(`MATCH_LABELS has invalid label keys: ${bad.join(', ')}`);
  return keys;
};

const readWatchNamespaces: Reader<WatchNamespaces> = (env, problems) => {
  const raw = (env.WATCH_NAMESPACES ?? '').trim();
  if (raw === '*') return { mode: 'all' };
  if (raw === '') return { mode: 'own' };
  const namespaces = list(raw);
  const bad = namespaces.filter((ns) => !isNamespaceName(ns));
  if (bad.length === 0 && namespaces.length > 0)
    return { mode: 'list', namespaces: [...new Set(namespaces)] };
  problems.push(
    `WATCH_NAMESPACES must be "*" or a comma list of namespace names, got invalid: ${bad.join(', ') || raw}`,
  );
  return { mode: 'own' };
};

const readLogLevel: Reader<LogLevel> = (env, problems) => {
  const raw = (env.LOG_LEVEL ?? '').trim().toLowerCase() || 'info';
  if ((LOG_LEVELS as readonly string[]).includes(raw)) return raw as LogLevel;
  problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  return 'info';
};

const readConfigKinds: Reader<ConfigKind[]> = (env, problems) => {
  const raw = env.CONFIG_KINDS === undefined ? ['ConfigMap'] : list(env.CONFIG_KINDS);
  const kinds = raw.filter((kind): kind is ConfigKind => (CONFIG_KINDS as readonly string[]).includes(kind));
  if (kinds.length !== raw.length || kinds.length === 0) {
    problems.push(
      `CONFIG_KINDS must be a comma list of ${CONFIG_KINDS.join(', ')}, got "${env.CONFIG_KINDS}"`,
    );
  }
  return [...new Set(kinds)];
};

const readWorkloadSelector: Reader<string | undefined> = (env, problems) => {
  const selector = (env.WORKLOAD_SELECTOR ?? '').trim() || undefined;
  // Full selector grammar is the API server's job; refuse what can never be one (spaces inside terms, quotes).
  if (selector && !/^[A-Za-z0-9_.\-/!=,() ]+$/.test(selector)) {
    problems.push(`WORKLOAD_SELECTOR must be a label selector such as "restart=enabled", got "${selector}"`);
  }
  return selector;
};

/** A Go duration variable in ms: unset or empty = 0 (off). */
function durationReader(name: string, examples: string): Reader<number> {
  return (env, problems) => {
    const raw = (env[name] ?? '').trim();
    const ms = raw === '' ? 0 : parseDuration(raw);
    if (ms !== undefined) return ms;
    problems.push(`${name} must be a duration such as ${examples} (0 = none), got "${env[name]}"`);
    return 0;
  };
}

const readMinRestartInterval = durationReader('MIN_RESTART_INTERVAL', '30s, 5m or 1h');
const readSettleWindow = durationReader('SETTLE_WINDOW', '2s, 30s or 1m');

/**
 * Reads and validates the settings. Throws a {@link ConfigError} naming every bad variable.
 * @param env - the environment, usually `process.env`
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];
  // In this order the problems are listed.
  const config: Config = {
    port: parseInteger('PORT', env.PORT, 8080, 1, 65535, problems),
    annotationPrefix: readAnnotationPrefix(env, problems),
    matchLabels: readMatchLabels(env, problems),
    watchNamespaces: readWatchNamespaces(env, problems),
    dryRun: parseBoolean('DRY_RUN', env.DRY_RUN, false, problems),
    logLevel: readLogLevel(env, problems),
    configKinds: readConfigKinds(env, problems),
    workloadSelector: readWorkloadSelector(env, problems),
    patchConcurrency: parseInteger('PATCH_CONCURRENCY', env.PATCH_CONCURRENCY, 4, 1, 64, problems),
    apiTimeoutMs: parseInteger('API_TIMEOUT_MS', env.API_TIMEOUT_MS, 10_000, 100, 300_000, problems),
    shutdownDelayMs: parseInteger('SHUTDOWN_DELAY_MS', env.SHUTDOWN_DELAY_MS, 0, 0, 300_000, problems),
    shutdownTimeoutMs: parseInteger(
      'SHUTDOWN_TIMEOUT_MS',
      env.SHUTDOWN_TIMEOUT_MS,
      10_000,
      0,
      300_000,
      problems,
    ),
    auth: readAuth(env, problems),
    minRestartIntervalMs: readMinRestartInterval(env, problems),
    settleWindowMs: readSettleWindow(env, problems),
    restartOnDelete: parseBoolean('RESTART_ON_DELETE', env.RESTART_ON_DELETE, false, problems),
    maxConcurrentRollouts: parseInteger(
      'MAX_CONCURRENT_ROLLOUTS',
      env.MAX_CONCURRENT_ROLLOUTS,
      0,
      0,
      100_000,
      problems,
    ),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

const SERVICE_ACCOUNT_USER = 'system:serviceaccount:';

/** Problem with one `AUTH_ALLOWED_SUBJECTS` entry, or undefined when it is a plausible username. */
function subjectProblem(subject: string): string | undefined {
  if (/[\s"']/.test(subject)) return `"${subject}" contains spaces or quotes`;
  if (!subject.startsWith(SERVICE_ACCOUNT_USER)) return undefined;
  const [namespace = '', name = '', ...rest] = subject.slice(SERVICE_ACCOUNT_USER.length).split(':');
  if (rest.length > 0 || !isNamespaceName(namespace) || !isDnsSubdomain(name)) {
    return `"${subject}" is not system:serviceaccount:<namespace>:<name>`;
  }
  return undefined;
}

/** `AUTH_ALLOWED_SUBJECTS`: a comma list of usernames, or undefined for the defaults. */
function readAllowedSubjects(raw: string, problems: string[]): string[] | undefined {
  if (raw === '') return undefined;
  const subjects = list(raw);
  const bad = subjects.map(subjectProblem).filter((p): p is string => p !== undefined);
  if (bad.length > 0 || subjects.length === 0) {
    problems.push(`AUTH_ALLOWED_SUBJECTS must be a comma list of usernames: ${bad.join('; ') || raw}`);
  }
  return [...new Set(subjects)];
}

/** `AUTH_AUDIENCE` and `AUTH_ALLOWED_SUBJECTS`; authentication is on when the audience is set. */
const readAuth: Reader<AuthSettings | undefined> = (env, problems) => {
  const audience = (env.AUTH_AUDIENCE ?? '').trim();
  const rawSubjects = (env.AUTH_ALLOWED_SUBJECTS ?? '').trim();
  if (audience === '') {
    if (rawSubjects !== '') problems.push('AUTH_ALLOWED_SUBJECTS is set but AUTH_AUDIENCE is not');
    return undefined;
  }
  if (/[\s,"']/.test(audience) || audience.length > 1024) {
    problems.push(`AUTH_AUDIENCE must be one audience without spaces, commas or quotes, got "${audience}"`);
  }
  return { audience, allowedSubjects: readAllowedSubjects(rawSubjects, problems) };
};
