import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import request from 'supertest';

import { createApp } from '../../../app/src/app.js';
import { loadConfig, type AppConfig } from '../../../app/src/config.js';
import { HealthState } from '../../../app/src/health.js';
import { createLogger } from '../../../app/src/logger.js';
import type { MessageSource } from '../../../app/src/message-file.js';

const config = (env: Record<string, string> = {}): AppConfig =>
  loadConfig({ SERVICE_NAME: 'helloworld-test', ENVIRONMENT: 'test', ENV_MESSAGE: 'Hello from env', ...env });

describe('createApp', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'helloworld-app-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('GET / renders the service and environment in an escaped <h1>', async () => {
    const app = createApp({
      config: config({ SERVICE_NAME: '<script>x</script>', ENVIRONMENT: 'a&b', ENV_MESSAGE: '"hi" <b>' }),
    });
    const res = await request(app).get('/').expect(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toContain('<h1>&lt;script&gt;x&lt;/script&gt; (a&amp;b)</h1>');
    expect(res.text).toContain('<p>&quot;hi&quot; &lt;b&gt;</p>');
    expect(res.text).not.toContain('<script>');
    expect(res.headers['content-security-policy']).toBe("default-src 'none'");
  });

  it('GET / names the default service and environment', async () => {
    const res = await request(createApp({ config: loadConfig({}) }))
      .get('/')
      .expect(200);
    expect(res.text).toContain('<h1>helloworld (local)</h1>');
  });

  it('GET /message answers ENV_MESSAGE as text/plain', async () => {
    const res = await request(createApp({ config: config() }))
      .get('/message')
      .expect(200);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.text).toBe('Hello from env');
  });

  it('GET /message answers 404 JSON when ENV_MESSAGE is not set', async () => {
    const res = await request(createApp({ config: loadConfig({}) }))
      .get('/message')
      .expect(404);
    expect(res.body).toEqual({ error: 'message not configured', detail: 'ENV_MESSAGE is not set' });
  });

  it('GET /messageFromFile follows file changes', async () => {
    const file = path.join(dir, 'MESSAGE');
    await writeFile(file, 'from the file\n');
    const app = createApp({ config: config({ MESSAGE_FILE: file }) });
    const first = await request(app).get('/messageFromFile').expect(200);
    expect(first.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(first.text).toBe('from the file');
    await writeFile(file, 'changed content');
    await request(app).get('/messageFromFile').expect(200, 'changed content');
  });

  it('GET /messageFromFile reads MESSAGE from a dotenv file', async () => {
    const file = path.join(dir, 'helloworld.env');
    await writeFile(file, 'A=1\nMESSAGE=dotenv value\n');
    await request(createApp({ config: config({ MESSAGE_FILE: file }) }))
      .get('/messageFromFile')
      .expect(200, 'dotenv value');
  });

  it.each<[string, (dir: string) => Promise<Record<string, string>>, number, string]>([
    ['MESSAGE_FILE unset', () => Promise.resolve({}), 404, 'message not configured'],
    [
      'missing file',
      (d) => Promise.resolve({ MESSAGE_FILE: path.join(d, 'MESSAGE') }),
      404,
      'message file not found',
    ],
    [
      'missing key',
      async (d) => {
        await writeFile(path.join(d, 'x.env'), 'OTHER=1\n');
        return { MESSAGE_FILE: path.join(d, 'x.env') };
      },
      404,
      'message key not found',
    ],
    ['unreadable (a directory)', (d) => Promise.resolve({ MESSAGE_FILE: d }), 500, 'message file unreadable'],
  ])('GET /messageFromFile with %s answers %i JSON', async (_name, setup, status, error) => {
    const app = createApp({ config: config(await setup(dir)) });
    const res = await request(app).get('/messageFromFile').expect(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({ error, detail: expect.any(String) as string });
    expect(res.text).not.toMatch(/\n\s+at /);
  });

  it('answers 500 JSON without a stack trace when the message source throws', async () => {
    const lines: string[] = [];
    const failing: MessageSource = { read: () => Promise.reject(new Error('boom at /secret/path')) };
    const app = createApp({
      config: config(),
      messageSource: failing,
      logger: createLogger({ write: (line) => lines.push(line) }),
    });
    const res = await request(app).get('/messageFromFile').expect(500);
    expect(res.body).toEqual({ error: 'internal error', detail: 'unexpected error' });
    expect(res.text).not.toContain('boom');
    expect(lines.map((l) => JSON.parse(l) as { msg: string })).toContainEqual(
      expect.objectContaining({ msg: 'request failed', error: 'boom at /secret/path' }),
    );
  });

  it('answers unknown routes with 404 JSON', async () => {
    const res = await request(createApp({ config: config() }))
      .get('/nope')
      .expect(404);
    expect(res.body).toEqual({ error: 'not found', detail: 'no route for GET /nope' });
  });

  it('serves liveness, and readiness until shutdown begins', async () => {
    const health = new HealthState();
    const app = createApp({ config: config(), health });
    await request(app).get('/health/liveness').expect(200, { status: 'ok' });
    await request(app).get('/health/readiness').expect(200, { status: 'ready' });
    health.beginShutdown();
    await request(app).get('/health/readiness').expect(503, { status: 'shutting down' });
    await request(app).get('/health/liveness').expect(200);
  });

  it('logs one JSON line per request, probes at debug level', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', write: (line) => lines.push(line) });
    const app = createApp({ config: config(), logger });
    await request(app).get('/message').set('User-Agent', 'jest');
    await request(app).get('/health/readiness');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toEqual({
      time: expect.any(String) as string,
      level: 'info',
      msg: 'request',
      method: 'GET',
      path: '/message',
      status: 200,
      durationMs: expect.any(Number) as number,
      userAgent: 'jest',
    });
  });

  it('sets nosniff and no X-Powered-By', async () => {
    const res = await request(createApp({ config: config() })).get('/message');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });
});
