/**
 * The function as a process (`src/index.ts` through tsx, as `node dist/index.js` runs it): it refuses bad
 * settings naming every variable, and on SIGTERM it stops being ready, finishes the event in flight and exits 0.
 * The "API server" here is a TCP socket that never answers, so an event stays in flight until API_TIMEOUT_MS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import tls from 'node:tls';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const entry = path.join(repoRoot, 'functions/config-restarter/src/index.ts');

function start(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH, HOME: tmpdir(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitFor<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

it('refuses to start with bad settings and names every bad variable', async () => {
  const { exit, output } = start({
    PORT: 'x',
    DRY_RUN: 'perhaps',
    WATCH_NAMESPACES: 'Bad_Name',
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    SERVICE_ACCOUNT_DIR: '/nonexistent',
  });
  expect(await exit).toBe(1);
  for (const variable of ['PORT', 'DRY_RUN', 'WATCH_NAMESPACES']) expect(output()).toContain(variable);
}, 20_000);

it('on SIGTERM: no longer ready, the event in flight is answered, exit 0', async () => {
  // An API server that accepts connections and never answers.
  const silent = net.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const apiPort = (silent.address() as net.AddressInfo).port;
  // The in-cluster contract: service host and port, and a ServiceAccount directory (any CA will do: no TLS
  // handshake ever completes).
  const serviceAccountDir = mkdtempSync(path.join(tmpdir(), 'config-restarter-'));
  writeFileSync(path.join(serviceAccountDir, 'token'), 'x');
  writeFileSync(path.join(serviceAccountDir, 'ca.crt'), tls.rootCertificates[0]!);
  writeFileSync(path.join(serviceAccountDir, 'namespace'), 'helloworld');
  const port = await freePort();
  const fn = start({
    PORT: String(port),
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String(apiPort),
    SERVICE_ACCOUNT_DIR: serviceAccountDir,
    API_TIMEOUT_MS: '1500',
    LOG_LEVEL: 'info',
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => ((await fetch(`${url}/health/readiness`)).ok ? true : undefined), 'readiness');
    const wire = JSON.parse(
      readFileSync(path.join(repoRoot, 'test/fixtures/events/ref-update.json'), 'utf8'),
    ) as { headers: Record<string, string>; body: string };
    const inFlight = fetch(url, { method: 'POST', headers: wire.headers, body: wire.body });
    // Let the event reach the (silent) API server, then stop the function while it waits.
    await new Promise((resolve) => setTimeout(resolve, 300));
    fn.child.kill('SIGTERM');
    await waitFor(
      () => Promise.resolve(fn.output().includes('shutting down') ? true : undefined),
      'shutdown log',
    );
    // No longer ready: readiness answers 503, or the listener is already closed to new connections.
    const readiness = await fetch(`${url}/health/readiness`).then(
      (res) => res.status,
      () => 'refused',
    );
    expect([503, 'refused']).toContain(readiness);
    const answer = await inFlight;
    // The API never answered: the event is reported as retryable, not dropped.
    expect(answer.status).toBe(503);
    expect(((await answer.json()) as { error: string }).error).toBe('unavailable');
    expect(await fn.exit).toBe(0);
    const lines = fn
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg: string });
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['listening', 'shutting down', 'event failed', 'drained']),
    );
  } finally {
    fn.child.kill('SIGKILL');
    silent.close();
  }
}, 30_000);

it('refuses to start without its ServiceAccount files, naming the missing file', async () => {
  const { exit, output } = start({
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    SERVICE_ACCOUNT_DIR: '/nonexistent/serviceaccount',
  });
  expect(await exit).toBe(1);
  expect(output()).toContain('failed to start');
  expect(output()).toContain('/nonexistent/serviceaccount/ca.crt');
}, 20_000);

it('with SHUTDOWN_DELAY_MS: readiness answers 503 while the listener is still open, then exit 0', async () => {
  const silent = net.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const serviceAccountDir = mkdtempSync(path.join(tmpdir(), 'config-restarter-'));
  writeFileSync(path.join(serviceAccountDir, 'token'), 'x');
  writeFileSync(path.join(serviceAccountDir, 'ca.crt'), tls.rootCertificates[0]!);
  const port = await freePort();
  const fn = start({
    PORT: String(port),
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String((silent.address() as net.AddressInfo).port),
    SERVICE_ACCOUNT_DIR: serviceAccountDir,
    SHUTDOWN_DELAY_MS: '1500',
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => ((await fetch(`${url}/health/readiness`)).ok ? true : undefined), 'readiness');
    fn.child.kill('SIGTERM');
    const during = await waitFor(async () => {
      const res = await fetch(`${url}/health/readiness`);
      return res.status === 503 ? ((await res.json()) as { status: string }) : undefined;
    }, 'readiness 503');
    expect(during.status).toBe('shutting down');
    expect(await fn.exit).toBe(0);
  } finally {
    fn.child.kill('SIGKILL');
    silent.close();
  }
}, 30_000);
