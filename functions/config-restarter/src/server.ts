/**
 * The HTTP server around the express app: header limits sized to what Knative's queue-proxy lets
 * through, and a `clientError` handler so that requests Node refuses before the app sees them (header
 * overflow, bad framing, NUL or CR in a header) still get the JSON error body of the HTTP contract.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { RequestListener } from 'node:http';
import type { Logger } from './log.js';

/**
 * Largest request head accepted: Knative's queue-proxy is a Go `net/http` server without
 * `MaxHeaderBytes`, so it lets through Go's default of 1 MiB (plus the 4 KiB slack Go reads on top).
 * Node's own default (16 KiB) would refuse requests the proxy forwarded.
 */
export const MAX_HEADER_BYTES = (1 << 20) + 4096;

/** How long a refused connection is still read (and dropped) before it is closed. */
const LINGER_MS = 2_000;

/** Options of {@link createServer}. */
export interface ServerOptions {
  logger: Logger;
  /** Largest request head in bytes (default {@link MAX_HEADER_BYTES}). */
  maxHeaderSize?: number;
  /** Called once per request refused before it reached the app (metrics). */
  onRefused?: (status: number) => void;
}

/** Status of a request Node's parser refused, from the parser's error code. */
export function clientErrorStatus(code: string | undefined): number {
  if (code === 'HPE_HEADER_OVERFLOW') return 431;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT' || code === 'HPE_HEADER_TIMEOUT') return 408;
  return 400;
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

const DETAILS: Record<number, string> = {
  400: 'malformed HTTP request',
  408: 'request not received in time',
  431: 'request headers too large',
};

/** A complete HTTP/1.1 response with the contract's JSON error body; the connection closes after it. */
export function clientErrorResponse(status: number, code: string | undefined): string {
  const body = JSON.stringify({
    error: 'bad_request',
    detail: `${DETAILS[status] ?? 'malformed HTTP request'}${code ? ` (${code})` : ''}`,
  });
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Bad Request'}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

/**
 * Creates the HTTP server for `app` (not listening yet). Every refused request gets a JSON answer;
 * a socket that is gone or already mid-response is just closed.
 */
export function createServer(app: RequestListener, options: ServerOptions): http.Server {
  const server = http.createServer({ maxHeaderSize: options.maxHeaderSize ?? MAX_HEADER_BYTES }, app);
  // Sockets already answered: the parser reports every further chunk as another error. Reading and
  // dropping it (instead of closing at once) lets a client that is still sending see the answer rather
  // than a reset; the socket is closed after LINGER_MS in any case.
  const answered = new WeakSet<Duplex>();
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (answered.has(socket)) return;
    // Peer gone, or a response already started on this socket: nothing sensible can be written.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const status = clientErrorStatus(error.code);
    options.logger.warn('rejected request', { status, error: error.code ?? error.message });
    options.onRefused?.(status);
    answered.add(socket);
    socket.end(clientErrorResponse(status, error.code));
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  });
  return server;
}
