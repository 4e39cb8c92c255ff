import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { main, type SignalSource } from '../../../app/src/index.js';
import { silentLogger } from '../../../app/src/logger.js';
import type { MessageResult, MessageSource } from '../../../app/src/message-file.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** GET over a fresh connection (no keep-alive), resolving with status and body. */
function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

/** A message source whose answer the test releases by hand: an in-flight request. */
function slowSource(): MessageSource & { release(): void; started: Promise<void> } {
  let release!: () => void;
  let started!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const startedPromise = new Promise<void>((resolve) => (started = resolve));
  return {
    started: startedPromise,
    release: () => release(),
    read: async (): Promise<MessageResult> => {
      started();
      await gate;
      return { ok: true, message: 'slow answer' };
    },
  };
}

describe('main: graceful shutdown', () => {
  it('flips readiness to 503 on SIGTERM, drains an in-flight request, then exits 0', async () => {
    const signals = new EventEmitter();
    const exits: number[] = [];
    const source = slowSource();
    const running = await main({
      env: { PORT: '0', SHUTDOWN_DELAY_MS: '200' },
      signals: signals as unknown as SignalSource,
      exit: (code) => exits.push(code),
      logger: silentLogger,
      messageSource: source,
    });
    await expect(get(running.port, '/health/readiness')).resolves.toMatchObject({ status: 200 });

    const inFlight = get(running.port, '/messageFromFile');
    await source.started;
    signals.emit('SIGTERM');
    const done = running.shutdown();

    // During the delay the listener is still open and tells the platform to stop routing.
    await expect(get(running.port, '/health/readiness')).resolves.toEqual({
      status: 503,
      body: '{"status":"shutting down"}',
    });
    expect(exits).toEqual([]);

    // The listener closes after the delay, but the in-flight request still completes.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(running.server.listening).toBe(false);
    expect(exits).toEqual([]);
    source.release();
    await expect(inFlight).resolves.toEqual({ status: 200, body: 'slow answer' });
    await expect(done).resolves.toBe(0);
    expect(exits).toEqual([0]);
    expect(signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('cuts connections and exits 1 when draining exceeds SHUTDOWN_TIMEOUT_MS', async () => {
    const exits: number[] = [];
    const source = slowSource();
    const running = await main({
      env: { PORT: '0', SHUTDOWN_TIMEOUT_MS: '100' },
      signals: new EventEmitter() as unknown as SignalSource,
      exit: (code) => exits.push(code),
      logger: silentLogger,
      messageSource: source,
    });
    const inFlight = get(running.port, '/messageFromFile').catch((err: Error) => err);
    await source.started;
    await expect(running.shutdown('test')).resolves.toBe(1);
    expect(exits).toEqual([1]);
    // The client sees the connection reset, not an answer.
    await expect(inFlight).resolves.toHaveProperty('code', 'ECONNRESET');
    source.release();
  });

  it('exits 1 and logs every problem on invalid configuration', async () => {
    const exits: number[] = [];
    const lines: unknown[] = [];
    await expect(
      main({
        env: { PORT: 'x', LOG_LEVEL: 'loud' },
        exit: (code) => exits.push(code),
        logger: { ...silentLogger, error: (msg, fields) => lines.push({ msg, ...fields }) },
      }),
    ).rejects.toThrow('invalid configuration');
    expect(exits).toEqual([1]);
    expect(lines).toEqual([
      {
        msg: 'invalid configuration',
        problems: [expect.stringMatching(/^PORT/), expect.stringMatching(/^LOG_LEVEL/)],
      },
    ]);
  });

  it('as a process: serves, answers 503 after SIGTERM and exits 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'app/src/index.ts')], {
      cwd: repoRoot,
      env: {
        ...process.env,
        PORT: '0',
        SHUTDOWN_DELAY_MS: '500',
        ENV_MESSAGE: 'from process',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const logs: Record<string, unknown>[] = [];
    const listening = new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'listening') resolve(entry.port as number);
      });
      child.on('exit', () => reject(new Error('exited before listening')));
    });
    try {
      const port = await listening;
      await expect(get(port, '/message')).resolves.toEqual({ status: 200, body: 'from process' });
      child.kill('SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 150));
      await expect(get(port, '/health/readiness')).resolves.toMatchObject({ status: 503 });
      await expect(exited).resolves.toBe(0);
      expect(logs.map((l) => l.msg)).toEqual(['listening', 'request', 'shutting down', 'drained, exiting']);
      expect(logs[1]).toMatchObject({ level: 'info', method: 'GET', path: '/message', status: 200 });
    } finally {
      child.kill('SIGKILL');
    }
  }, 20_000);
});
