/**
 * Settings of the function, read once from the environment and validated before anything starts.
 * `loadConfig` is pure: it never reads files or talks to the network, so it is trivially testable.
 */
import { parseDuration } from './duration.js';

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
  /** A confirmed deletion restarts the workloads referencing the object (`RESTART_ON_DELETE`, default false). */
  restartOnDelete: boolean;
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

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// DNS subdomain: object names, and the prefix before "/" of annotation and label keys.
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Label key: optional DNS-subdomain prefix, then a name of up to 63 characters.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** True when `value` is a DNS subdomain (an object name, an annotation prefix). */
export function isDnsSubdomain(value: string): boolean {
  return value.length <= 253 && DNS_SUBDOMAIN.test(value);
}

/** True when `value` is a valid Kubernetes namespace name. */
export function isNamespaceName(value: string): boolean {
  return value.length <= 63 && DNS_LABEL.test(value);
}

/** True when `value` is a valid Kubernetes label key (`[prefix/]name`). */
export function isLabelKey(value: string): boolean {
  const slash = value.lastIndexOf('/');
  const prefix = slash >= 0 ? value.slice(0, slash) : undefined;
  const name = slash >= 0 ? value.slice(slash + 1) : value;
  if (prefix !== undefined && !isDnsSubdomain(prefix)) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
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

/**
 * Reads and validates the settings. Throws a {@link ConfigError} naming every bad variable.
 * @param env - the environment, usually `process.env`
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const problems: string[] = [];

  const port = parseInteger('PORT', env.PORT, 8080, 1, 65535, problems);

  const annotationPrefix = (env.ANNOTATION_PREFIX ?? '').trim() || 'rolling.restart.controller';
  if (!isDnsSubdomain(annotationPrefix)) {
    problems.push(
      `ANNOTATION_PREFIX must be a DNS subdomain such as "example.com", got "${annotationPrefix}"`,
    );
  }

  const matchLabels = env.MATCH_LABELS === undefined ? ['app', 'env'] : list(env.MATCH_LABELS);
  const badLabels = matchLabels.filter((key) => !isLabelKey(key));
  if (badLabels.length > 0) {
    problems.push(`MATCH_LABELS has invalid label keys: ${badLabels.join(', ')}`);
  }

  let watchNamespaces: WatchNamespaces = { mode: 'own' };
  const rawNamespaces = (env.WATCH_NAMESPACES ?? '').trim();
  if (rawNamespaces === '*') {
    watchNamespaces = { mode: 'all' };
  } else if (rawNamespaces !== '') {
    const namespaces = list(rawNamespaces);
    const bad = namespaces.filter((ns) => !isNamespaceName(ns));
    if (bad.length > 0 || namespaces.length === 0) {
      problems.push(
        `WATCH_NAMESPACES must be "*" or a comma list of namespace names, got invalid: ${bad.join(', ') || rawNamespaces}`,
      );
    } else {
      watchNamespaces = { mode: 'list', namespaces: [...new Set(namespaces)] };
    }
  }

  const dryRun = parseBoolean('DRY_RUN', env.DRY_RUN, false, problems);

  const rawLevel = (env.LOG_LEVEL ?? '').trim().toLowerCase() || 'info';
  const logLevel = (LOG_LEVELS as readonly string[]).includes(rawLevel) ? (rawLevel as LogLevel) : 'info';
  if (logLevel !== rawLevel)
    problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);

  const rawKinds = env.CONFIG_KINDS === undefined ? ['ConfigMap'] : list(env.CONFIG_KINDS);
  const configKinds = rawKinds.filter((kind): kind is ConfigKind =>
    (CONFIG_KINDS as readonly string[]).includes(kind),
  );
  if (configKinds.length !== rawKinds.length || configKinds.length === 0) {
    problems.push(
      `CONFIG_KINDS must be a comma list of ${CONFIG_KINDS.join(', ')}, got "${env.CONFIG_KINDS}"`,
    );
  }

  const workloadSelector = (env.WORKLOAD_SELECTOR ?? '').trim() || undefined;
  // Full selector grammar is the API server's job; refuse what can never be one (spaces inside terms, quotes).
  if (workloadSelector && !/^[A-Za-z0-9_.\-/!=,() ]+$/.test(workloadSelector)) {
    problems.push(
      `WORKLOAD_SELECTOR must be a label selector such as "restart=enabled", got "${workloadSelector}"`,
    );
  }

  const patchConcurrency = parseInteger('PATCH_CONCURRENCY', env.PATCH_CONCURRENCY, 4, 1, 64, problems);
  const apiTimeoutMs = parseInteger('API_TIMEOUT_MS', env.API_TIMEOUT_MS, 10_000, 100, 300_000, problems);
  const shutdownDelayMs = parseInteger('SHUTDOWN_DELAY_MS', env.SHUTDOWN_DELAY_MS, 0, 0, 300_000, problems);
  const shutdownTimeoutMs = parseInteger(
    'SHUTDOWN_TIMEOUT_MS',
    env.SHUTDOWN_TIMEOUT_MS,
    10_000,
    0,
    300_000,
    problems,
  );

  const auth = parseAuth(env, problems);
  const rawInterval = (env.MIN_RESTART_INTERVAL ?? '').trim();
  const minRestartIntervalMs = rawInterval === '' ? 0 : parseDuration(rawInterval);
  if (minRestartIntervalMs === undefined) {
    problems.push(
      `MIN_RESTART_INTERVAL must be a duration such as 30s, 5m or 1h (0 = none), got "${env.MIN_RESTART_INTERVAL}"`,
    );
  }
  const restartOnDelete = parseBoolean('RESTART_ON_DELETE', env.RESTART_ON_DELETE, false, problems);

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    port,
    annotationPrefix,
    matchLabels,
    watchNamespaces,
    dryRun,
    logLevel,
    configKinds: [...new Set(configKinds)],
    workloadSelector,
    patchConcurrency,
    apiTimeoutMs,
    shutdownDelayMs,
    shutdownTimeoutMs,
    auth,
    minRestartIntervalMs: minRestartIntervalMs ?? 0,
    restartOnDelete,
  };
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

/** `AUTH_AUDIENCE` and `AUTH_ALLOWED_SUBJECTS`; authentication is on when the audience is set. */
function parseAuth(env: NodeJS.ProcessEnv, problems: string[]): AuthSettings | undefined {
  const audience = (env.AUTH_AUDIENCE ?? '').trim();
  const rawSubjects = (env.AUTH_ALLOWED_SUBJECTS ?? '').trim();
  if (audience === '') {
    if (rawSubjects !== '') problems.push('AUTH_ALLOWED_SUBJECTS is set but AUTH_AUDIENCE is not');
    return undefined;
  }
  if (/[\s,"']/.test(audience) || audience.length > 1024) {
    problems.push(`AUTH_AUDIENCE must be one audience without spaces, commas or quotes, got "${audience}"`);
  }
  if (rawSubjects === '') return { audience, allowedSubjects: undefined };
  const subjects = list(rawSubjects);
  const bad = subjects.map(subjectProblem).filter((p): p is string => p !== undefined);
  if (bad.length > 0 || subjects.length === 0) {
    problems.push(
      `AUTH_ALLOWED_SUBJECTS must be a comma list of usernames: ${bad.join('; ') || rawSubjects}`,
    );
  }
  return { audience, allowedSubjects: [...new Set(subjects)] };
}
