/**
 * The API calls of one event share one fate: the first transient failure (timeout, connection error,
 * 429, 5xx) cancels every other call of that event at once, so the sender gets its 503 within one
 * request deadline, whatever the number of workloads. Here the act layer's API errors also become the
 * function's own failures ({@link apiFailure}), which the HTTP layer answers.
 */
import { Failure } from './failure.js';
import { KubeApiError, type CallOptions } from './kube.js';
import type { Metrics } from './metrics.js';

/** An API error as the function's own failure: transient, RBAC or any other answer. */
export function apiFailure(error: KubeApiError): Failure {
  const kind = error.transient ? 'api-unavailable' : error.forbidden ? 'api-forbidden' : 'api-refused';
  return new Failure(kind, error.message, { cause: error });
}

/** One event's API calls. */
export class EventRun {
  private readonly controller = new AbortController();

  constructor(private readonly metrics: Metrics) {}

  /** Cancels the calls of this event. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True once a call of this event failed transiently. */
  get failed(): boolean {
    return this.controller.signal.aborted;
  }

  /** The error that cancelled this event, if any. */
  get cause(): KubeApiError | undefined {
    const reason: unknown = this.controller.signal.reason;
    return reason instanceof KubeApiError ? reason : undefined;
  }

  /** Runs one API call with this event's signal; counts failures and cancels the rest on a transient one. */
  async call<T>(run: (options: CallOptions) => Promise<T>): Promise<T> {
    const cancelledBefore = this.failed;
    try {
      return await run({ signal: this.controller.signal });
    } catch (error) {
      if (error instanceof KubeApiError && !cancelledBefore && !this.failed) {
        this.metrics.apiErrors.inc({
          verb: error.verb,
          resource: error.resource,
          code: String(error.status),
        });
        if (error.transient) this.controller.abort(error);
      }
      throw error;
    }
  }
}
