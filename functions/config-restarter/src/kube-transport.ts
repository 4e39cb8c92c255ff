/**
 * The HTTP exchange with the API server, for the API client (kube.ts) and the TokenReview posts
 * (token-review.ts): requests with a real deadline (connect, TLS and the whole answer: an `AbortSignal`,
 * not a socket idle timeout) and the caller's cancel signal, and streaming GETs for watches on a pool of
 * their own, so a long-lived watch never takes a socket from the request pool.
 */
import http from 'node:http';
import https from 'node:https';
import type { ApiAccess, Connection } from './kube-credentials.js';

/** One answer of the API server, whatever its status. */
export interface ApiAnswer {
  status: number;
  /** The parsed JSON body, or undefined when it is none. */
  json: unknown;
  /** The body's start, for messages when it is not JSON. */
  text: string;
}

/** Query parameters; undefined values are left out. */
export type Query = Record<string, string | undefined>;

/** The HTTP exchange with the API server. */
export interface ApiTransport {
  /**
   * Sends one request with a real deadline and the caller's signal. Resolves with any status; rejects
   * only when no complete answer came (the error says why).
   */
  request(
    method: string,
    path: string,
    options?: {
      query?: Query;
      body?: { contentType: string; payload: unknown };
      signal?: AbortSignal | undefined;
    },
  ): Promise<ApiAnswer>;
  /**
   * Opens a long-lived GET (a watch) on the watch pool. Resolves with the response once its head arrived
   * (within the request deadline), whatever its status; `signal` ends it at any time.
   */
  stream(path: string, query: Query, signal: AbortSignal): Promise<http.IncomingMessage>;
}

/** The reason a caller gave when it cancelled a call. */
function abortDetail(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return `cancelled: ${reason.message}`;
  return typeof reason === 'string' ? `cancelled: ${reason}` : 'cancelled';
}

/** Creates the transport: one request pool of `maxSockets` (default 8) and one watch pool per process. */
export function createApiTransport(
  access: ApiAccess,
  options: { timeoutMs: number; maxSockets?: number },
): ApiTransport {
  const server = access.server.href.replace(/\/$/, '');
  const protocol = access.server.protocol === 'http:' ? http : https;
  const calls = access.pool(options.maxSockets ?? 8);
  let watches: (() => Promise<Connection>) | undefined;

  function url(path: string, query: Query): URL {
    const target = new URL(server + path);
    for (const [key, value] of Object.entries(query))
      if (value !== undefined) target.searchParams.set(key, value);
    return target;
  }

  /** Sends a request on `connection`; settles on the response head, or rejects with why none came. */
  function send(
    method: string,
    target: URL,
    connection: Connection,
    extra: { headers?: http.OutgoingHttpHeaders; payload?: Buffer | undefined; signal: AbortSignal },
    describeAbort: () => string,
  ): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers = {
        Accept: 'application/json',
        'User-Agent': 'config-restarter',
        ...connection.headers,
        ...extra.headers,
      };
      const request = protocol.request(
        target,
        { method, headers, agent: connection.agent, signal: extra.signal },
        resolve,
      );
      request.on('error', (error) =>
        reject(new Error(extra.signal.aborted ? describeAbort() : error.message)),
      );
      request.end(extra.payload);
    });
  }

  return {
    async request(method, path, { query = {}, body, signal: callSignal } = {}) {
      if (callSignal?.aborted) throw new Error(abortDetail(callSignal));
      const deadline = AbortSignal.timeout(options.timeoutMs);
      const signal = callSignal ? AbortSignal.any([deadline, callSignal]) : deadline;
      const why = (): string =>
        deadline.aborted ? `no answer within ${options.timeoutMs} ms` : abortDetail(callSignal ?? deadline);
      const payload = body ? Buffer.from(JSON.stringify(body.payload)) : undefined;
      const headers =
        body && payload ? { 'Content-Type': body.contentType, 'Content-Length': payload.length } : {};
      const res = await send(method, url(path, query), await calls(), { headers, payload, signal }, why);
      return new Promise<ApiAnswer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        const failed = (detail: string): void => reject(new Error(signal.aborted ? why() : detail));
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error) => failed(error.message));
        res.on('close', () => {
          if (!res.complete) failed('connection closed mid-answer');
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text: text.slice(0, 300) || res.statusMessage || '' });
        });
      });
    },
    async stream(path, query, signal) {
      watches ??= access.pool(Infinity);
      // The head must come within the request deadline; the body may then stream for as long as it lasts.
      const head = new AbortController();
      const timer = setTimeout(
        () => head.abort(new Error(`no answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      const both = AbortSignal.any([signal, head.signal]);
      try {
        return await send('GET', url(path, query), await watches(), { signal: both }, () =>
          head.signal.aborted ? `no answer within ${options.timeoutMs} ms` : abortDetail(signal),
        );
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
