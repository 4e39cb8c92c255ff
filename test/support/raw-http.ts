/**
 * HTTP/1.1 over a raw TCP socket, for requests no HTTP client would send (NUL or CR in a header, broken
 * framing, 1 MiB of headers, random bytes). Reads the first response and closes the connection.
 */
import net from 'node:net';

/** The first response on a connection. */
export interface RawAnswer {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from connect to the end of the response. */
  ms: number;
}

function parseHead(head: string): { status: number; headers: Record<string, string> } {
  const [statusLine = '', ...lines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status, headers };
}

/** Decodes a complete chunked body, or returns undefined while it is incomplete. */
function dechunk(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset);
    if (lineEnd < 0) return undefined;
    const size = parseInt(data.subarray(offset, lineEnd).toString('latin1'), 16);
    if (Number.isNaN(size)) return undefined;
    if (size === 0) return Buffer.concat(parts);
    const start = lineEnd + 2;
    if (data.length < start + size + 2) return undefined;
    parts.push(data.subarray(start, start + size));
    offset = start + size + 2;
  }
}

/**
 * Sends `request` (written in 64 KiB slices, stopping as soon as the server answers; with `halfClose`
 * the sending side is closed afterwards) and resolves with the first response. Rejects when the server closes without a complete response or after `timeoutMs`.
 */
export function rawExchange(
  port: number,
  request: Buffer | string,
  options: { host?: string; timeoutMs?: number; halfClose?: boolean } = {},
): Promise<RawAnswer> {
  const bytes = typeof request === 'string' ? Buffer.from(request, 'utf8') : request;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, options.host ?? '127.0.0.1');
    let received = Buffer.alloc(0);
    let answered = false;
    let settled = false;
    const timer = setTimeout(
      () => finish(new Error(`no complete answer within ${options.timeoutMs ?? 10_000} ms`)),
      options.timeoutMs ?? 10_000,
    );

    function finish(error?: Error, answer?: RawAnswer): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (answer) resolve(answer);
      else reject(error ?? new Error('connection closed without an answer'));
    }

    /** A complete response in `received`, or undefined. */
    function complete(ended: boolean): RawAnswer | undefined {
      const headEnd = received.indexOf('\r\n\r\n');
      if (headEnd < 0) return undefined;
      const { status, headers } = parseHead(received.subarray(0, headEnd).toString('latin1'));
      const rest = received.subarray(headEnd + 4);
      let body: Buffer | undefined;
      if (headers['content-length'] !== undefined) {
        const length = Number(headers['content-length']);
        if (rest.length >= length) body = rest.subarray(0, length);
      } else if ((headers['transfer-encoding'] ?? '').includes('chunked')) {
        body = dechunk(rest);
      } else if (ended || status === 204 || status === 304) {
        body = rest;
      }
      if (!body) return undefined;
      return { status, headers, body: body.toString('utf8'), ms: Date.now() - started };
    }

    socket.on('data', (chunk: Buffer) => {
      answered = true;
      received = Buffer.concat([received, chunk]);
      const answer = complete(false);
      if (answer) finish(undefined, answer);
    });
    socket.on('end', () => finish(undefined, complete(true)));
    // The server may reset a connection it answered while we were still writing: keep what arrived.
    socket.on('error', (error) => finish(error, complete(true)));
    socket.on('close', () => finish(undefined, complete(true)));
    socket.once('connect', () => {
      void (async () => {
        for (let offset = 0; offset < bytes.length && !answered && !settled; offset += 64 * 1024) {
          const slice = bytes.subarray(offset, offset + 64 * 1024);
          if (!socket.write(slice)) await new Promise((r) => socket.once('drain', r));
        }
        // A request whose body is shorter than announced would otherwise keep the server waiting.
        if (options.halfClose && !settled) socket.end();
      })().catch(() => undefined);
    });
  });
}

/** Serialises a request: `headers` as given (no validation, duplicates allowed), then the body. */
export function rawRequest(
  method: string,
  target: string,
  headers: [string, string][],
  body: Buffer | string = '',
): Buffer {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const head =
    `${method} ${target} HTTP/1.1\r\n` +
    headers.map(([name, value]) => `${name}: ${value}\r\n`).join('') +
    '\r\n';
  return Buffer.concat([Buffer.from(head, 'utf8'), payload]);
}
