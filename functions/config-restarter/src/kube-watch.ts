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
export type WatchEnd = { reason: 'closed' } | { reason: 'expired' } | { reason: 'failed'; error: Error };

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

/** Starts one watch request. */
export function startWatch(request: WatchRequest): WatchHandle {
  const stopper = new AbortController();
  const signal = AbortSignal.any([
    stopper.signal,
    AbortSignal.timeout(request.timeoutSeconds * 1000 + OVERDUE_MS),
  ]);
  let resolveEnded: (end: WatchEnd) => void = () => undefined;
  const ended = new Promise<WatchEnd>((resolve) => {
    resolveEnded = resolve;
  });
  let done = false;
  let stopped = false;
  const end = (outcome: WatchEnd): void => {
    if (done) return;
    done = true;
    stopper.abort();
    resolveEnded(outcome);
  };
  const failed = (detail: string): void => {
    if (stopped) return end({ reason: 'closed' });
    const overdue = signal.aborted && !stopper.signal.aborted;
    const why = overdue ? `the server kept the watch open past its ${request.timeoutSeconds} s` : detail;
    end({ reason: 'failed', error: request.failure(0, why) });
  };

  /** One line of the stream: an event, or an ERROR that ends the watch. */
  const onLine = (line: string): void => {
    let event: { type?: string; object?: unknown };
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      return failed(`unreadable watch event: ${line.slice(0, 100)}`);
    }
    if (event.type === 'ERROR') {
      const status = (event.object ?? {}) as ApiStatus;
      if (isExpired(status)) return end({ reason: 'expired' });
      return end({
        reason: 'failed',
        error: request.failure(status.code ?? 0, status.message ?? 'watch error'),
      });
    }
    if (event.type && EVENT_TYPES.has(event.type)) {
      request.onEvent(event.type as WatchEventType, event.object as KubeObject);
    }
  };

  request.open(request.query, signal).then(
    async (res) => {
      if (res.statusCode !== 200) {
        const status = await statusOf(res).catch((): ApiStatus => ({ message: 'no detail' }));
        if (res.statusCode === 410 || isExpired(status)) return end({ reason: 'expired' });
        return end({
          reason: 'failed',
          error: request.failure(res.statusCode ?? 0, status.message ?? 'no detail'),
        });
      }
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        pending += chunk;
        for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n')) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line) onLine(line);
          if (done) return;
        }
      });
      res.on('end', () => end({ reason: 'closed' }));
      res.on('error', (error) => failed(error.message));
      res.on('close', () => {
        if (!res.complete) failed('watch connection closed mid-stream');
      });
    },
    (error: Error) => failed(error.message),
  );

  return {
    ended,
    stop() {
      stopped = true;
      end({ reason: 'closed' });
    },
  };
}
