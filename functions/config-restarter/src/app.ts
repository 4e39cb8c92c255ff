/**
 * The HTTP layer: CloudEvents in on `POST /`, a CloudEvent with every decision out, health and
 * metrics endpoints. `createApp` has no side effects: no listening, no environment, no I/O. What each
 * request is answered with is reply.ts's table; this module routes, logs and counts.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import type { AuthCheck, Authenticator } from './auth.js';
import { DecodeError, readCloudEvent, RESYNC_EVENT_TYPE, toNotice, type Notice } from './event.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { livenessReply, readinessReply, toReply, type Refusal, type Reply } from './reply.js';
import type { Outcome } from './outcome.js';
import type { Restarter } from './restarter.js';
import type { IndexState } from './workload-index.js';

/** Dependencies of {@link createApp}. */
export interface AppDeps {
  /** Handles the decoded events (the window timers are the restarter's own business). */
  restarter: Pick<Restarter, 'handle'>;
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

/** Sends a reply: a JSON body as JSON, a ready body (the CloudEvent's) as it is. */
function send(res: Response, reply: Reply): void {
  res.status(reply.status).set(reply.headers);
  if (typeof reply.body === 'string') res.send(reply.body);
  else res.json(reply.body);
}

function category(type: string | undefined): string {
  if (!type) return 'invalid';
  if (type.startsWith('dev.knative.apiserver.')) return 'apiserver';
  if (type === RESYNC_EVENT_TYPE) return 'resync';
  return 'other';
}

/** What an error thrown past the handlers (body-parser's, or a bug) is answered as. */
function refusalOf(error: unknown): Refusal {
  const status = (error as { status?: unknown }).status;
  const detail = error instanceof Error ? error.message : String(error);
  if (status === 413) return { result: 'too-large', detail };
  if (status === 415) return { result: 'unsupported-encoding', detail };
  if (typeof status === 'number' && status >= 400 && status < 500) return { result: 'invalid', detail };
  return { result: 'internal' };
}

/** Creates the express app. */
export function createApp(deps: AppDeps): express.Express {
  const { logger, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');

  app.get('/health/liveness', (_req, res) => send(res, livenessReply()));
  app.get('/health/readiness', (_req, res) => send(res, readinessReply(deps.isReady(), deps.indexState?.())));
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  if (deps.authenticator) app.post('/', authenticate(deps.authenticator, logger, metrics));

  app.post('/', express.text({ type: () => true, limit: deps.bodyLimit ?? '1mb' }), (req, res) =>
    handleEvent(deps, req, res),
  );

  app.use((_req, res) => send(res, toReply(undefined, { result: 'not-found' })));

  // Errors thrown past the handlers: body-parser (413, bad encodings) or a bug. Never a stack trace.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const refusal = refusalOf(error);
    if (refusal.result === 'internal') {
      logger.error('unexpected error', { error: error instanceof Error ? error.message : String(error) });
    }
    send(res, toReply(undefined, refusal));
  });
  return app;
}

/** `POST /`: decode the CloudEvent, hand it to the restarter, answer with what happened. */
async function handleEvent(deps: AppDeps, req: Request, res: Response): Promise<void> {
  const started = process.hrtime.bigint();
  const notice = decodeNotice(deps, req, res);
  if (!notice) return;
  const log = deps.logger.child({ eventId: notice.event.id, eventType: notice.event.type });
  const outcome = await deps.restarter.handle(notice);
  const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  logOutcome(log, outcome, durationSeconds);
  const reply = toReply(notice, outcome);
  countOutcome(deps.metrics, notice, outcome, reply, durationSeconds);
  send(res, reply);
}

/** One line per decision and per failed workload, then what became of the event. */
function logOutcome(log: Logger, outcome: Outcome, durationSeconds: number): void {
  for (const decision of outcome.decisions) log.info('decision', { ...decision });
  for (const f of outcome.failures)
    log.error('patch failed', { workload: f.workload, error: f.error.message });
  if (outcome.failure) {
    const { kind, retry, message } = outcome.failure;
    log.error('event failed', { error: message, failure: kind, retry });
  } else if (outcome.result !== 'processed') {
    log.info(`event ${outcome.result}`, { reason: outcome.reason });
  } else if (outcome.failures.length === 0) {
    log.info('event processed', {
      reason: outcome.reason,
      decisions: outcome.decisions.length,
      durationMs: durationSeconds * 1000,
    });
  }
}

/** Counts the event by its result (the error code when it failed), its duration and its decisions. */
function countOutcome(
  metrics: Metrics,
  notice: Notice,
  outcome: Outcome,
  reply: Reply,
  durationSeconds: number,
): void {
  const eventCategory = category(notice.event.type);
  const result = reply.status >= 500 ? (reply.body as { error: string }).error : outcome.result;
  metrics.events.inc({ category: eventCategory, result });
  metrics.eventDuration.observe({ category: eventCategory }, durationSeconds);
  for (const decision of outcome.decisions) {
    metrics.decisions.inc({
      kind: decision.workload.kind,
      action: decision.action,
      dry_run: String(decision.dryRun),
    });
  }
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
    send(res, toReply(undefined, { result: 'invalid', detail: error.message }));
    return undefined;
  }
}

/** The `category` and `result` labels of `config_restarter_events_total` for each refusal. */
const REFUSAL_LABELS = {
  401: { category: 'unauthenticated', result: 'unauthenticated' },
  403: { category: 'unauthorized', result: 'sender_not_allowed' },
  503: { category: 'unauthenticated', result: 'unavailable' },
} as const;

/** What a failed sender check is answered as. */
function refusalOfCheck(check: Exclude<AuthCheck, { ok: true }>): Refusal {
  switch (check.status) {
    case 401:
      return { result: 'unauthenticated', detail: check.reason };
    case 403:
      return { result: 'sender-not-allowed', detail: check.reason };
    case 503:
      return { result: 'review-failed', detail: check.reason };
  }
}

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
    send(res, toReply(undefined, refusalOfCheck(check)));
  };
}
