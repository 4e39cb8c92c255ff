/**
 * The API server's cluster egress (EgressSelectorConfiguration `cluster`, HTTP CONNECT over a Unix socket): kubelet
 * logs/exec/port-forward, Service and pod proxying, webhooks. Loopback destinations (the webhooks, behind
 * ExternalName Services pointing at `localhost`) are dialled here, in the API server's namespace; every other
 * destination (the node IP, pod and Service IPs) from inside the node's network namespace, through one short-lived
 * `nsenter --net=<netns> socat` per connection. Run as its own process:
 * `node egress-proxy.ts <socket> <netns path>` (with tsx's loader in NODE_OPTIONS).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

/** A parsed `CONNECT host:port HTTP/1.1` request line. */
export interface ConnectTarget {
  host: string;
  port: number;
}

/** Parses the request head of a CONNECT request; undefined for anything else. */
export function parseConnect(head: string): ConnectTarget | undefined {
  const match = /^CONNECT (\[[0-9a-fA-F:.]+\]|[^\s:]+):(\d{1,5}) HTTP\/1\.[01]\r\n/.exec(head);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port };
}

/** Whether the destination is the API server's own loopback (dialled directly, not from the node namespace). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Opens the tunnel's far end: a socket on loopback, or socat's stdio inside the node namespace. */
function dial(target: ConnectTarget, netnsPath: string, onReady: () => void, onFail: (why: string) => void) {
  if (isLoopback(target.host)) {
    const socket = connect({ host: target.host, port: target.port }, onReady);
    socket.once('error', (err) => onFail(err.message));
    return { readable: socket, writable: socket, close: () => socket.destroy() };
  }
  const child = spawn(
    'nsenter',
    [`--net=${netnsPath}`, '--', 'socat', '-', `TCP:${target.host}:${target.port},connect-timeout=5`],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  // socat exits when either side closes: writes racing with that must not take the proxy down.
  child.stdin.on('error', () => child.kill('SIGTERM'));
  child.stdout.on('error', () => child.kill('SIGTERM'));
  child.once('spawn', onReady);
  child.once('error', (err) => onFail(err.message));
  child.once('exit', (code) => {
    if (code !== 0 && stderr) onFail(stderr.trim());
  });
  return { readable: child.stdout, writable: child.stdin, close: () => child.kill('SIGTERM') };
}

function handle(client: Socket, netnsPath: string): void {
  let head = '';
  const onData = (chunk: Buffer): void => {
    head += chunk.toString('latin1');
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > 8192) client.destroy();
      return;
    }
    client.off('data', onData);
    client.pause();
    const rest = Buffer.from(head.slice(end + 4), 'latin1');
    const target = parseConnect(head);
    if (!target) {
      client.end('HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    let answered = false;
    const far = dial(
      target,
      netnsPath,
      () => {
        answered = true;
        client.write('HTTP/1.1 200 Connection established\r\n\r\n');
        if (rest.length > 0) far.writable.write(rest);
        client.pipe(far.writable);
        far.readable.pipe(client);
        client.resume();
      },
      (why) => {
        if (!answered) client.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Length: ${why.length}\r\n\r\n${why}`);
        else client.destroy();
      },
    );
    far.readable.once('end', () => client.end());
    far.writable.on('error', () => client.destroy());
    client.once('close', () => far.close());
    client.once('error', () => far.close());
  };
  client.on('data', onData);
  client.once('error', () => client.destroy());
}

/** Listens on `socketPath` until SIGTERM. */
export function runEgressProxy(socketPath: string, netnsPath: string): void {
  rmSync(socketPath, { force: true });
  const server = createServer((client) => handle(client, netnsPath));
  server.listen(socketPath);
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [socketPath, netnsPath] = process.argv.slice(2);
  if (!socketPath || !netnsPath) {
    process.stderr.write('usage: egress-proxy.ts <socket> <netns path>\n');
    process.exit(2);
  }
  runEgressProxy(socketPath, netnsPath);
}
