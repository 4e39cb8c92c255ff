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

/** What one exchange sends besides method and path. */
interface Outgoing {
  headers?: http.OutgoingHttpHeaders;
  payload?: Buffer | undefined;
  signal: AbortSignal;
  /** Why the exchange was cut, once `signal` has aborted. */
  why: () => string;
}

/** Reads a whole answer; rejects when the connection ends before it is complete. */
function readAnswer(res: http.IncomingMessage, signal: AbortSignal, why: () => string): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const failed = (detail: string): void => reject(new Error(signal.aborted ? why() : detail));
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('error', (error) => failed(error.message));
    res.on('close', () => {
      if (!res.complete) failed('connection closed mid-answer');
    });
    res.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({
        status: res.statusCode ?? 0,
        json: parseJson(text),
        text: text.slice(0, 300) || res.statusMessage || '',
      });
    });
  });
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

/** The transport over one {@link ApiAccess}: a request pool and, once a watch starts, a watch pool. */
class Transport implements ApiTransport {
  private readonly server: string;
  private readonly protocol: typeof http | typeof https;
  private readonly calls: () => Promise<Connection>;
  private watches: (() => Promise<Connection>) | undefined;

  constructor(
    private readonly access: ApiAccess,
    private readonly timeoutMs: number,
    maxSockets: number,
  ) {
    this.server = access.server.href.replace(/\/$/, '');
    this.protocol = access.server.protocol === 'http:' ? http : https;
    this.calls = access.pool(maxSockets);
  }

  async request(
    method: string,
    path: string,
    { query = {}, body, signal: callSignal }: Parameters<ApiTransport['request']>[2] = {},
  ): Promise<ApiAnswer> {
    if (callSignal?.aborted) throw new Error(abortDetail(callSignal));
    const deadline = AbortSignal.timeout(this.timeoutMs);
    const signal = callSignal ? AbortSignal.any([deadline, callSignal]) : deadline;
    const why = (): string =>
      deadline.aborted ? `no answer within ${this.timeoutMs} ms` : abortDetail(callSignal ?? deadline);
    const payload = body ? Buffer.from(JSON.stringify(body.payload)) : undefined;
    const headers =
      body && payload ? { 'Content-Type': body.contentType, 'Content-Length': payload.length } : {};
    const res = await this.send(method, this.url(path, query), await this.calls(), {
      headers,
      payload,
      signal,
      why,
    });
    return readAnswer(res, signal, why);
  }

  async stream(path: string, query: Query, signal: AbortSignal): Promise<http.IncomingMessage> {
    this.watches ??= this.access.pool(Infinity);
    // The head must come within the request deadline; the body may then stream for as long as it lasts.
    const head = new AbortController();
    const late = `no answer within ${this.timeoutMs} ms`;
    const timer = setTimeout(() => head.abort(new Error(late)), this.timeoutMs);
    const why = (): string => (head.signal.aborted ? late : abortDetail(signal));
    try {
      const connection = await this.watches();
      return await this.send('GET', this.url(path, query), connection, {
        signal: AbortSignal.any([signal, head.signal]),
        why,
      });
    } finally {
      clearTimeout(timer);
    }
  }

  private url(path: string, query: Query): URL {
    const target = new URL(this.server + path);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined) target.searchParams.set(key, value);
    }
    return target;
  }

  /** Sends a request on `connection`; settles on the response head, or rejects with why none came. */
  private send(
    method: string,
    target: URL,
    connection: Connection,
    out: Outgoing,
  ): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers = {
        Accept: 'application/json',
        'User-Agent': 'config-restarter',
        ...connection.headers,
        ...out.headers,
      };
      const request = this.protocol.request(
        target,
        { method, headers, agent: connection.agent, signal: out.signal },
        resolve,
      );
      request.on('error', (error) => reject(new Error(out.signal.aborted ? out.why() : error.message)));
      request.end(out.payload);
    });
  }
}

/** Creates the transport: one request pool of `maxSockets` (default 8) and one watch pool per process. */
export function createApiTransport(
  access: ApiAccess,
  options: { timeoutMs: number; maxSockets?: number },
): ApiTransport {
  return new Transport(access, options.timeoutMs, options.maxSockets ?? 8);
}
