/**
 * The function's own failure type: what failed, whether a retry later can succeed, and the cause. Every
 * failure an event meets is one of these; the act layer maps API errors onto it where it meets them
 * (event-run.ts, settle.ts, restarter.ts), so the HTTP layer (reply.ts) answers from this type alone.
 */

/** Whether the sender should deliver the event again later (the condition may pass) or not (it will not). */
export type Retry = 'later' | 'never';

/** What failed, and whether a retry later can succeed. One row per kind of failure. */
export const FAILURE_KINDS = {
  /** The API server answered 429 or 5xx, did not answer within the deadline, or could not be reached. */
  'api-unavailable': 'later',
  /** RBAC denied a request: the Roles must change first. */
  'api-forbidden': 'never',
  /** Any other API error answer (e.g. 422 for a patch the server refuses). */
  'api-refused': 'never',
  /** The warm index had not finished its first list within `API_TIMEOUT_MS` (a cold start). */
  'index-not-listed': 'later',
  /** A workload left alone because an earlier API call of the same event failed transiently. */
  'not-attempted': 'later',
  /** A workload changed under every patch (resourceVersion conflicts) until the attempts ran out. */
  conflicts: 'later',
} as const satisfies Record<string, Retry>;

/** A kind of failure (a row of {@link FAILURE_KINDS}). */
export type FailureKind = keyof typeof FAILURE_KINDS;

/** A failure of the function's work: its kind, a message saying what failed and why, and the cause. */
export class Failure extends Error {
  /** Whether a later delivery of the event can succeed. */
  readonly retry: Retry;

  constructor(
    readonly kind: FailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'Failure';
    this.retry = FAILURE_KINDS[kind];
  }
}
