/**
 * The HTTP contract as one table: what every way a request can end is answered with (status, headers,
 * body). Pure; app.ts sends what these functions return. README.md "HTTP contract" lists the same rows,
 * and test/unit/config-restarter/reply.test.ts checks the two against each other row by row.
 */
import { CloudEvent, HTTP } from 'cloudevents';
import type { Notice } from './event.js';
import type { Failure } from './failure.js';
import type { Outcome } from './outcome.js';
import type { IndexState } from './workload-index.js';

/** Type of the reply CloudEvent. */
export const REPLY_EVENT_TYPE = 'config-restarter.decisions';
/** Type of the reply CloudEvent to an event about a followed workload whose rollout ended. */
export const OUTCOME_EVENT_TYPE = 'config-restarter.outcome';
/** Source of the reply CloudEvent. */
export const REPLY_EVENT_SOURCE = '/config-restarter';

/** Seconds a sender is asked to wait before it delivers a failed event again. */
const RETRY_AFTER_SECONDS = '5';

/** An answer: status, headers, and a JSON body (an object) or a ready body (a string). */
export interface Reply {
  status: number;
  headers: Record<string, string>;
  body: object | string;
}

/** The `error` of a JSON error body. */
export type ErrorCode =
  | 'bad_request'
  | 'unauthenticated'
  | 'sender_not_allowed'
  | 'namespace_not_watched'
  | 'forbidden'
  | 'unavailable'
  | 'api_error'
  | 'internal';

/** A request answered before (or instead of) the restarter. */
export type Refusal =
  /** Not a valid CloudEvent, invalid attributes, contradictions, bad names, an unreadable body. */
  | { result: 'invalid'; detail: string }
  /** The body is over the limit. */
  | { result: 'too-large'; detail: string }
  /** The body's `Content-Encoding` or charset is not supported. */
  | { result: 'unsupported-encoding'; detail: string }
  /** Another path or method. */
  | { result: 'not-found' }
  /** Authentication on, and no token, or one the API server does not accept for the audience. */
  | { result: 'unauthenticated'; detail: string }
  /** Authentication on, and a valid token of a sender that is not allowed. */
  | { result: 'sender-not-allowed'; detail: string }
  /** Authentication on, and the TokenReview could not be done. */
  | { result: 'review-failed'; detail: string }
  /** A bug. */
  | { result: 'internal' };

function errorReply(
  status: number,
  error: ErrorCode,
  detail: string,
  headers: Record<string, string> = {},
  extra: object = {},
): Reply {
  return { status, headers, body: { error, detail, ...extra } };
}

const RETRY_LATER = { 'Retry-After': RETRY_AFTER_SECONDS };

/** Every refusal, by result. */
const REFUSALS: { [R in Refusal['result']]: (refusal: Extract<Refusal, { result: R }>) => Reply } = {
  invalid: (r) => errorReply(400, 'bad_request', r.detail),
  'too-large': (r) => errorReply(413, 'bad_request', r.detail),
  'unsupported-encoding': (r) => errorReply(415, 'bad_request', r.detail),
  'not-found': () => errorReply(404, 'bad_request', 'not found: CloudEvents go to POST /'),
  // Knative senders do not retry a 401; the challenge names the scheme.
  unauthenticated: (r) => errorReply(401, 'unauthenticated', r.detail, { 'WWW-Authenticate': 'Bearer' }),
  // As Knative Eventing's own receivers answer an authenticated sender that is not allowed.
  'sender-not-allowed': (r) => errorReply(403, 'sender_not_allowed', r.detail),
  'review-failed': (r) => errorReply(503, 'unavailable', r.detail, RETRY_LATER),
  internal: () => errorReply(500, 'internal', 'internal error; see the function logs'),
};

/**
 * A failure: one a retry can fix -> 503 + Retry-After (senders retry; patches are idempotent); one it
 * cannot -> 500 naming it (`forbidden` for RBAC, `api_error` for any other API answer).
 */
function failureReply(failure: Failure, extra: object): Reply {
  if (failure.retry === 'later') return errorReply(503, 'unavailable', failure.message, RETRY_LATER, extra);
  const code: ErrorCode = failure.kind === 'api-forbidden' ? 'forbidden' : 'api_error';
  return errorReply(500, code, failure.message, {}, extra);
}

/** Of several workloads' failures, the one the answer names: forbidden first (no retry fixes it), then transient. */
function worstFailure(outcome: Outcome): Failure | undefined {
  const errors = outcome.failures.map((f) => f.error);
  return (
    errors.find((e) => e.kind === 'api-forbidden') ?? errors.find((e) => e.retry === 'later') ?? errors[0]
  );
}

/** 200 with a binary-mode CloudEvent of `type` carrying `data`. */
function cloudEventReply(notice: Notice | undefined, type: string, data: object): Reply {
  const reply = new CloudEvent({
    type,
    source: REPLY_EVENT_SOURCE,
    ...(notice?.event.subject ? { subject: notice.event.subject } : {}),
    datacontenttype: 'application/json',
    data,
  });
  const message = HTTP.binary(reply);
  return { status: 200, headers: message.headers as Record<string, string>, body: message.body as string };
}

/**
 * 200 with a CloudEvent: the outcome of one rollout (an event about a followed workload), or every decision
 * (and the outcomes a resync or a superseding restart wrote).
 */
function decisionsReply(notice: Notice | undefined, outcome: Outcome): Reply {
  const [rollout] = outcome.rollouts ?? [];
  if (notice?.type === 'rollout' && rollout) {
    return cloudEventReply(notice, OUTCOME_EVENT_TYPE, { eventId: notice.event.id, ...rollout });
  }
  return cloudEventReply(notice, REPLY_EVENT_TYPE, {
    eventId: notice?.event.id,
    eventType: notice?.event.type,
    result: outcome.result,
    reason: outcome.reason,
    restarted: outcome.decisions.filter((d) => d.action === 'restart').length,
    decisions: outcome.decisions,
    ...(outcome.rollouts?.length ? { outcomes: outcome.rollouts } : {}),
  });
}

/** The answer to what the restarter made of an event. */
function outcomeReply(notice: Notice | undefined, outcome: Outcome): Reply {
  const eventId = notice?.event.id;
  switch (outcome.result) {
    case 'ignored':
      return { status: 202, headers: {}, body: { result: 'ignored', reason: outcome.reason, eventId } };
    case 'refused':
      return errorReply(403, 'namespace_not_watched', outcome.reason, {}, { eventId });
    case 'failed':
      return failureReply(outcome.failure!, { eventId });
    case 'processed': {
      const failure = worstFailure(outcome);
      if (!failure) return decisionsReply(notice, outcome);
      return failureReply(failure, {
        eventId,
        decisions: outcome.decisions,
        failures: outcome.failures.map((f) => ({ workload: f.workload, error: f.error.message })),
      });
    }
  }
}

/**
 * The answer to a `POST /`: to what the restarter made of the event (`notice`), or to a request answered
 * before it (a {@link Refusal}, `notice` undefined when the request was not a valid CloudEvent).
 */
export function toReply(notice: Notice | undefined, outcome: Outcome | Refusal): Reply {
  if (!isRefusal(outcome)) return outcomeReply(notice, outcome);
  return (REFUSALS[outcome.result] as (refusal: Refusal) => Reply)(outcome);
}

function isRefusal(outcome: Outcome | Refusal): outcome is Refusal {
  return Object.hasOwn(REFUSALS, outcome.result);
}

/** `GET /health/liveness`: the process is up. */
export function livenessReply(): Reply {
  return { status: 200, headers: {}, body: { status: 'ok' } };
}

/** `GET /health/readiness`: 200 until shutdown began, then 503; with the index's state when there is one. */
export function readinessReply(ready: boolean, index: IndexState | undefined): Reply {
  const summary = index && {
    synced: index.synced,
    workloads: index.workloads,
    lastRelist: index.lastRelist ?? null,
    shards: index.shards,
  };
  const body = { status: ready ? 'ready' : 'shutting down', ...(summary ? { index: summary } : {}) };
  return { status: ready ? 200 : 503, headers: {}, body };
}
