/**
 * One watch request: a streaming GET with `watch=1` whose body is one JSON event per line (what the API
 * server sends, and what client-go's and client-node's watchers read). An expired resourceVersion arrives
 * as a 410 answer or as an `ERROR` event holding a Status; either ends the watch as `expired`.
 */
import type http from 'node:http';
import type { KubeObject } from './model.js';
import type { Query } from './kube-transport.js';

/** A change seen by a watch. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

/** Why a watch ended: closed by the server (rewatch), expired (410 Gone: relist), or failed. */
type WatchEnd = { reason: 'closed' } | { reason: 'expired' } | { reason: 'failed'; error: Error };

/** A running watch. */
export interface WatchHandle {
  /** Settles once when the watch ends. */
  ended: Promise<WatchEnd>;
  stop(): void;
}

interface ApiStatus {
  message?: string;
  reason?: string;
  code?: number;
}

const EVENT_TYPES: ReadonlySet<string> = new Set(['ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK']);

/** How long past its `timeoutSeconds` a watch may stay open before it is given up as hung. */
const OVERDUE_MS = 30_000;

/** What {@link startWatch} needs. */
export interface WatchRequest {
  /** Opens the streaming GET (the transport's `stream`). */
  open(query: Query, signal: AbortSignal): Promise<http.IncomingMessage>;
  query: Query;
  /** The server closes the watch after this long. */
  timeoutSeconds: number;
  onEvent(type: WatchEventType, object: KubeObject): void;
  /** The error of a non-2xx answer (status, the server's message). */
  failure(status: number, detail: string): Error;
}

function isExpired(status: ApiStatus): boolean {
  return status.code === 410 || status.reason === 'Expired' || status.reason === 'Gone';
}

/** Reads a non-2xx answer's Status message. */
async function statusOf(res: http.IncomingMessage): Promise<ApiStatus> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as ApiStatus;
  } catch {
    return { message: res.statusMessage ?? 'no detail' };
  }
}

/** Splits a stream into lines, calling `onLine` for each non-empty one while `more()` holds. */
function eachLine(res: http.IncomingMessage, onLine: (line: string) => void, more: () => boolean): void {
  let pending = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    pending += chunk;
    let start = 0;
    for (
      let newline = pending.indexOf('\n');
      newline >= 0 && more();
      newline = pending.indexOf('\n', start)
    ) {
      const line = pending.slice(start, newline).trim();
      start = newline + 1;
      if (line) onLine(line);
    }
    pending = pending.slice(start);
  });
}

/** One watch request from start to end. */
class WatchRun {
  private readonly stopper = new AbortController();
  /** Aborted by `stop()`, or when the server keeps the watch open well past its `timeoutSeconds`. */
  private readonly signal: AbortSignal;
  private resolveEnded: (end: WatchEnd) => void = () => undefined;
  readonly ended = new Promise<WatchEnd>((resolve) => {
    this.resolveEnded = resolve;
  });
  private done = false;
  private stopped = false;

  constructor(private readonly request: WatchRequest) {
    const overdue = AbortSignal.timeout(request.timeoutSeconds * 1000 + OVERDUE_MS);
    this.signal = AbortSignal.any([this.stopper.signal, overdue]);
    request.open(request.query, this.signal).then(
      (res) => this.onResponse(res),
      (error: Error) => this.failed(error.message),
    );
  }

  stop(): void {
    this.stopped = true;
    this.end({ reason: 'closed' });
  }

  private end(outcome: WatchEnd): void {
    if (this.done) return;
    this.done = true;
    this.stopper.abort();
    this.resolveEnded(outcome);
  }

  private failed(detail: string): void {
    if (this.stopped) return this.end({ reason: 'closed' });
    const overdue = this.signal.aborted && !this.stopper.signal.aborted;
    const why = overdue ? `the server kept the watch open past its ${this.request.timeoutSeconds} s` : detail;
    this.end({ reason: 'failed', error: this.request.failure(0, why) });
  }

  private async onResponse(res: http.IncomingMessage): Promise<void> {
    if (res.statusCode !== 200) {
      const status = await statusOf(res).catch((): ApiStatus => ({ message: 'no detail' }));
      if (res.statusCode === 410 || isExpired(status)) return this.end({ reason: 'expired' });
      const error = this.request.failure(res.statusCode ?? 0, status.message ?? 'no detail');
      return this.end({ reason: 'failed', error });
    }
    eachLine(
      res,
      (line) => this.onLine(line),
      () => !this.done,
    );
    res.on('end', () => this.end({ reason: 'closed' }));
    res.on('error', (error) => this.failed(error.message));
    res.on('close', () => {
      if (!res.complete) this.failed('watch connection closed mid-stream');
    });
  }

  /** One line of the stream: an event, or an ERROR that ends the watch. */
  private onLine(line: string): void {
    let event: { type?: string; object?: unknown };
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      return this.failed(`unreadable watch event: ${line.slice(0, 100)}`);
    }
    if (event.type === 'ERROR') return this.onError(event.object ?? {});
    if (event.type && EVENT_TYPES.has(event.type)) {
      this.request.onEvent(event.type as WatchEventType, event.object as KubeObject);
    }
  }

  private onError(status: ApiStatus): void {
    if (isExpired(status)) return this.end({ reason: 'expired' });
    const error = this.request.failure(status.code ?? 0, status.message ?? 'watch error');
    this.end({ reason: 'failed', error });
  }
}

/** Starts one watch request. */
export function startWatch(request: WatchRequest): WatchHandle {
  const run = new WatchRun(request);
  return { ended: run.ended, stop: () => run.stop() };
}
