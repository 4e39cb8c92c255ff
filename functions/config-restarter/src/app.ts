/**
 * The HTTP layer: CloudEvents in on `POST /`, a CloudEvent with every decision out, health and
 * metrics endpoints. `createApp` has no side effects: no listening, no environment, no I/O.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { CloudEvent, HTTP } from 'cloudevents';
import type { Authenticator } from './auth.js';
import { DecodeError, readCloudEvent, RESYNC_EVENT_TYPE, toNotice, type Notice } from './event.js';
import { KubeApiError } from './kube.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { Outcome, Restarter } from './restarter.js';
import type { IndexState } from './workload-index.js';

/** Type of the reply CloudEvent. */
export const REPLY_EVENT_TYPE = 'config-restarter.decisions';
/** Source of the reply CloudEvent. */
export const REPLY_EVENT_SOURCE = '/config-restarter';

/** Dependencies of {@link createApp}. */
export interface AppDeps {
  restarter: Restarter;
  logger: Logger;
  metrics: Metrics;
  /** False once shutdown began: readiness answers 503 so no new traffic arrives. */
  isReady: () => boolean;
  /** State of the warm workload index, shown by readiness. */
  indexState?: () => IndexState;
  /** Largest accepted request body (default `1mb`). */
  bodyLimit?: string;
  /** Sender authentication; when given, `POST /` without an accepted token gets 401 before anything else. */
  authenticator?: Authenticator;
}

type ErrorCode =
  | 'bad_request'
  | 'unauthenticated'
  | 'sender_not_allowed'
  | 'namespace_not_watched'
  | 'forbidden'
  | 'unavailable'
  | 'api_error'
  | 'internal';

function sendError(
  res: Response,
  status: number,
  error: ErrorCode,
  detail: string,
  extra: object = {},
): void {
  res.status(status).json({ error, detail, ...extra });
}

function category(type: string | undefined): string {
  if (!type) return 'invalid';
  if (type.startsWith('dev.knative.apiserver.')) return 'apiserver';
  if (type === RESYNC_EVENT_TYPE) return 'resync';
  return 'other';
}

/** Creates the express app. */
export function createApp(deps: AppDeps): express.Express {
  const { logger, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');

  app.get('/health/liveness', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/health/readiness', (_req, res) => {
    const index = deps.indexState?.();
    const summary = index && {
      synced: index.synced,
      workloads: index.workloads,
      lastRelist: index.lastRelist ?? null,
      shards: index.shards,
    };
    if (deps.isReady()) res.json({ status: 'ready', ...(summary ? { index: summary } : {}) });
    else res.status(503).json({ status: 'shutting down', ...(summary ? { index: summary } : {}) });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  if (deps.authenticator) app.post('/', authenticate(deps.authenticator, logger, metrics));

  app.post('/', express.text({ type: () => true, limit: deps.bodyLimit ?? '1mb' }), (req, res) =>
    handleEvent(deps, req, res),
  );

  app.use((_req, res) => sendError(res, 404, 'bad_request', 'not found: CloudEvents go to POST /'));

  // Errors thrown past the handlers: body-parser (413, bad encodings) or a bug. Never a stack trace.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const status = (error as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      sendError(res, status, 'bad_request', (error as Error).message);
      return;
    }
    logger.error('unexpected error', { error: error instanceof Error ? error.message : String(error) });
    sendError(res, 500, 'internal', 'internal error; see the function logs');
  });
  return app;
}

/** `POST /`: decode the CloudEvent, hand it to the restarter, answer with what happened. */
async function handleEvent(deps: AppDeps, req: Request, res: Response): Promise<void> {
  const { logger, metrics } = deps;
  const started = process.hrtime.bigint();
  const notice = decodeNotice(deps, req, res);
  if (!notice) return;
  const eventCategory = category(notice.event.type);
  const log = logger.child({ eventId: notice.event.id, eventType: notice.event.type });
  const elapsedSeconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  const finish = (result: string): void => {
    metrics.events.inc({ category: eventCategory, result });
    metrics.eventDuration.observe({ category: eventCategory }, elapsedSeconds());
  };

  let outcome: Outcome;
  try {
    outcome = await deps.restarter.handle(notice);
  } catch (error) {
    if (!(error instanceof KubeApiError)) throw error;
    log.error('event failed', {
      error: error.message,
      status: error.status,
      verb: error.verb,
      resource: error.resource,
      namespace: error.namespace,
    });
    finish(sendApiFailure(res, error, { eventId: notice.event.id }));
    return;
  }
  for (const decision of outcome.decisions) {
    metrics.decisions.inc({
      kind: decision.workload.kind,
      action: decision.action,
      dry_run: String(decision.dryRun),
    });
    log.info('decision', { ...decision });
  }
  if (outcome.result !== 'processed') {
    log.info(`event ${outcome.result}`, { reason: outcome.reason });
    finish(outcome.result);
    if (outcome.result === 'refused') {
      sendError(res, 403, 'namespace_not_watched', outcome.reason, { eventId: notice.event.id });
    } else {
      res.status(202).json({ result: 'ignored', reason: outcome.reason, eventId: notice.event.id });
    }
    return;
  }
  const failure = worstFailure(outcome);
  if (failure) {
    for (const f of outcome.failures)
      log.error('patch failed', { workload: f.workload, error: f.error.message });
    finish(
      sendApiFailure(res, failure.error, {
        eventId: notice.event.id,
        decisions: outcome.decisions,
        failures: outcome.failures.map((f) => ({ workload: f.workload, error: f.error.message })),
      }),
    );
    return;
  }
  log.info('event processed', {
    reason: outcome.reason,
    decisions: outcome.decisions.length,
    durationMs: elapsedSeconds() * 1000,
  });
  finish('processed');
  sendDecisions(res, notice, outcome);
}

/** The request as a notice, or undefined after answering 400 for what is not a valid CloudEvent. */
function decodeNotice(deps: AppDeps, req: Request, res: Response): Notice | undefined {
  const body = typeof req.body === 'string' ? req.body : '';
  try {
    return toNotice(readCloudEvent(req.headers, body));
  } catch (error) {
    if (!(error instanceof DecodeError)) throw error;
    deps.metrics.events.inc({ category: 'invalid', result: 'invalid' });
    deps.logger.warn('rejected request', { error: error.message, contentType: req.headers['content-type'] });
    sendError(res, 400, 'bad_request', error.message);
    return undefined;
  }
}

/** Answers 200 with a binary-mode CloudEvent listing every decision. */
function sendDecisions(res: Response, notice: Notice, outcome: Outcome): void {
  const reply = new CloudEvent({
    type: REPLY_EVENT_TYPE,
    source: REPLY_EVENT_SOURCE,
    ...(notice.event.subject ? { subject: notice.event.subject } : {}),
    datacontenttype: 'application/json',
    data: {
      eventId: notice.event.id,
      eventType: notice.event.type,
      result: outcome.result,
      reason: outcome.reason,
      restarted: outcome.decisions.filter((d) => d.action === 'restart').length,
      decisions: outcome.decisions,
    },
  });
  const message = HTTP.binary(reply);
  res
    .status(200)
    .set(message.headers as Record<string, string>)
    .send(message.body);
}

/** The `category` and `result` labels of `config_restarter_events_total` for each refusal. */
const REFUSAL_LABELS = {
  401: { category: 'unauthenticated', result: 'unauthenticated' },
  403: { category: 'unauthorized', result: 'sender_not_allowed' },
  503: { category: 'unauthenticated', result: 'unavailable' },
} as const;

/**
 * Middleware in front of `POST /`: checks the bearer token before the body is read or any other API
 * call is made. 401 for a missing or refused token, 403 for a valid token of a sender that is not allowed
 * (neither is retried by Knative senders), 503 when the review itself could not be done.
 */
function authenticate(
  authenticator: Authenticator,
  logger: Logger,
  metrics: Metrics,
): express.RequestHandler {
  return async (req, res, next) => {
    const check = await authenticator.check(req.headers.authorization);
    if (check.ok) {
      next();
      return;
    }
    metrics.events.inc(REFUSAL_LABELS[check.status]);
    logger.warn('refused sender', {
      reason: check.reason,
      status: check.status,
      ...(check.status === 403 ? { subject: check.subject } : {}),
    });
    if (check.status === 401) {
      res.set('WWW-Authenticate', 'Bearer');
      sendError(res, 401, 'unauthenticated', check.reason);
    } else if (check.status === 403) {
      sendError(res, 403, 'sender_not_allowed', check.reason);
    } else {
      res.set('Retry-After', '5');
      sendError(res, 503, 'unavailable', check.reason);
    }
  };
}

/**
 * Answers an API failure: transient -> 503 with Retry-After (senders retry), RBAC -> 500 `forbidden`
 * naming the denial, anything else -> 500 `api_error`. Returns the error code for the metrics.
 */
function sendApiFailure(res: Response, error: KubeApiError, extra: object): ErrorCode {
  if (error.transient) {
    res.set('Retry-After', '5');
    sendError(res, 503, 'unavailable', error.message, extra);
    return 'unavailable';
  }
  const code: ErrorCode = error.forbidden ? 'forbidden' : 'api_error';
  sendError(res, 500, code, error.message, extra);
  return code;
}

/** Forbidden first (a retry cannot fix it), then transient. */
function worstFailure(outcome: Outcome): Outcome['failures'][number] | undefined {
  return (
    outcome.failures.find((f) => f.error.forbidden) ??
    outcome.failures.find((f) => f.error.transient) ??
    outcome.failures[0]
  );
}
