import { readFileSync } from 'node:fs';
import request from 'supertest';
import { HTTP } from 'cloudevents';
import { REPLY_EVENT_TYPE } from '../../../functions/config-restarter/src/reply.js';
import { createLogger, silentLogger } from '../../../functions/config-restarter/src/log.js';
import type { WireRequest } from '../../../cluster/apiserver-event.js';
import { configMap, FakeCluster, RESOURCE, stopStarted, workload } from './fake-cluster.js';
import { stubApp } from './stub-app.js';

afterEach(stopStarted);

const fixture = (name: string): WireRequest =>
  JSON.parse(
    readFileSync(new URL(`../../fixtures/events/${name}.json`, import.meta.url), 'utf8'),
  ) as WireRequest;
const labels = { app: 'helloworld', env: 'test' };

async function setup(options: { ready?: boolean; logLines?: string[]; dryRun?: boolean } = {}) {
  const cluster = new FakeCluster();
  cluster.put('configmaps', configMap('helloworld-config-test', { MESSAGE: 'hi' }, { labels }));
  cluster.put(RESOURCE.Service!, workload('Service', 'helloworld-test', { labels }));
  const logger = options.logLines
    ? createLogger('info', (line) => options.logLines!.push(line))
    : silentLogger;
  // `cluster.calls` then holds what events cause, not the index's own list and watch.
  const { app, index } = await stubApp(cluster, {
    dryRun: options.dryRun ?? false,
    logger,
    isReady: () => options.ready ?? true,
    bodyLimit: '10kb',
  });
  return { app, cluster, index };
}

const post = (app: Awaited<ReturnType<typeof setup>>['app'], wire: WireRequest) =>
  request(app).post('/').set(wire.headers).send(wire.body);

describe('config-restarter HTTP', () => {
  it('answers a handled event with a binary-mode CloudEvent listing every decision', async () => {
    const { app, cluster } = await setup();
    const res = await post(app, fixture('ref-update'));
    expect(res.status).toBe(200);
    const reply = HTTP.toEvent({ headers: res.headers, body: res.text });
    expect(Array.isArray(reply)).toBe(false);
    const event = reply as Exclude<typeof reply, unknown[]>;
    expect(res.headers['ce-type']).toBe(REPLY_EVENT_TYPE);
    expect(event.subject).toBe('/apis/v1/namespaces/helloworld/configmaps/helloworld-config-test');
    expect(event.data).toMatchObject({
      eventId: '5508cafb-3332-4709-a1b1-a8657111d82c',
      result: 'processed',
      restarted: 1,
      decisions: [
        {
          workload: { kind: 'Service', name: 'helloworld-test', apiVersion: 'serving.knative.dev/v1' },
          action: 'restart',
          dryRun: false,
        },
      ],
    });
    const ksvc = cluster.read(RESOURCE.Service!, 'helloworld', 'helloworld-test');
    expect(JSON.stringify(ksvc?.spec)).toContain('rolling.restart.controller/restartTimestamp');
  });

  it('accepts structured mode', async () => {
    const { app } = await setup();
    const wire = fixture('ref-update');
    const body = {
      specversion: '1.0',
      id: 'structured-1',
      type: wire.headers['ce-type'],
      source: wire.headers['ce-source'],
      kind: 'ConfigMap',
      name: 'helloworld-config-test',
      namespace: 'helloworld',
      data: JSON.parse(wire.body) as unknown,
    };
    const res = await request(app)
      .post('/')
      .set('Content-Type', 'application/cloudevents+json')
      .send(JSON.stringify(body));
    expect(res.status).toBe(200);
    expect(res.headers['ce-type']).toBe(REPLY_EVENT_TYPE);
  });

  it.each<[string, (w: WireRequest) => WireRequest, number, string]>([
    [
      'a plain JSON POST',
      () => ({ headers: { 'Content-Type': 'application/json' }, body: '{"hello":"world"}' }),
      400,
      'not a CloudEvent',
    ],
    ['an empty body without headers', () => ({ headers: {}, body: '' }), 400, 'not a CloudEvent'],
    [
      'a missing ce-source',
      (w) => {
        delete w.headers['ce-source'];
        return w;
      },
      400,
      'source',
    ],
    ['malformed JSON data', (w) => ({ ...w, body: '{"kind":' }), 400, ''],
    [
      'a contradicting extension',
      (w) => {
        w.headers['ce-namespace'] = 'other';
        return w;
      },
      400,
      'contradicts',
    ],
  ])('answers %s with 400 and a JSON error', async (_name, mutate, status, detail) => {
    const { app, cluster } = await setup();
    const res = await post(app, mutate(fixture('ref-update')));
    expect(res.status).toBe(status);
    expect(res.body).toMatchObject({ error: 'bad_request' });
    expect(String((res.body as { detail: string }).detail)).toContain(detail);
    expect(cluster.calls.filter((c) => c.verb === 'patch')).toEqual([]);
  });

  it.each([
    [
      'another event type',
      (w: WireRequest) => {
        w.headers['ce-type'] = 'com.example.unrelated';
        return w;
      },
    ],
    ['a delete', () => fixture('ref-delete')],
    ['a Secret while only ConfigMaps are enabled', () => fixture('secret-ref-update')],
  ])('acknowledges %s as ignored (202) and touches nothing', async (_name, make) => {
    const { app, cluster } = await setup();
    const res = await post(app, make(fixture('ref-update')));
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ result: 'ignored' });
    expect(cluster.calls.filter((c) => c.verb === 'patch')).toEqual([]);
  });

  it('refuses an event about an unwatched namespace with 403', async () => {
    const { app, cluster } = await setup();
    const wire = fixture('ref-update');
    wire.headers['ce-namespace'] = 'kube-system';
    wire.body = JSON.stringify({
      kind: 'ConfigMap',
      namespace: 'kube-system',
      name: 'helloworld-config-test',
      apiVersion: 'v1',
    });
    const res = await post(app, wire);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: 'namespace_not_watched' });
    expect(cluster.calls).toEqual([]);
  });

  it.each([429, 500, 502, 503, 504, 0])(
    'answers 503 with Retry-After when the API answers %s',
    async (status) => {
      const { app, cluster } = await setup();
      cluster.failures.push({ verb: 'get', resource: 'configmaps', status });
      const res = await post(app, fixture('ref-update'));
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect(res.body).toMatchObject({ error: 'unavailable' });
    },
  );

  it('answers a workload that changed under every patch with 503 and Retry-After, listing it', async () => {
    const { app, cluster } = await setup();
    cluster.beforePatch = (resource, namespace, name) => {
      cluster.put(resource, cluster.read(resource, namespace, name)!);
    };
    const res = await post(app, fixture('ref-update'));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBeDefined();
    expect(res.body).toMatchObject({
      error: 'unavailable',
      failures: [{ workload: { kind: 'Service', name: 'helloworld-test' } }],
    });
    expect((res.body as { detail: string }).detail).toContain('still conflicting after 5 attempts');
  });

  it('answers a forbidden patch with an error naming verb, resource and namespace', async () => {
    const { app, cluster } = await setup();
    cluster.failures.push({ verb: 'patch', resource: 'services.serving.knative.dev', status: 403 });
    const res = await post(app, fixture('ref-update'));
    expect(res.status).toBe(500);
    expect(res.body).toMatchObject({ error: 'forbidden' });
    expect((res.body as { detail: string }).detail).toMatch(
      /patch services\.serving\.knative\.dev "helloworld-test" in namespace "helloworld"/,
    );
  });

  it('answers a forbidden read with an error naming it', async () => {
    const { app, cluster } = await setup();
    cluster.failures.push({ verb: 'get', resource: 'configmaps', status: 403 });
    const res = await post(app, fixture('ref-update'));
    expect(res.status).toBe(500);
    expect((res.body as { detail: string }).detail).toMatch(
      /get configmaps "helloworld-config-test" in namespace "helloworld"/,
    );
  });

  it('refuses a body over the limit with a JSON 413', async () => {
    const { app } = await setup();
    const wire = fixture('resource-update');
    wire.body = JSON.stringify({ ...(JSON.parse(wire.body) as object), data: { big: 'x'.repeat(20_000) } });
    const res = await post(app, wire);
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: 'bad_request' });
  });

  it('logs one JSON line per decision and never the object data', async () => {
    const logLines: string[] = [];
    const { app } = await setup({ logLines });
    await post(app, fixture('resource-update'));
    const lines = logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const decisions = lines.filter((l) => l.msg === 'decision');
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      level: 'info',
      eventId: 'a1e7c0de-0000-4000-8000-000000000003',
      action: 'restart',
    });
    expect(logLines.join('\n')).not.toContain('Hello from the test environment');
  });

  it('serves health, readiness and metrics', async () => {
    const { app } = await setup();
    await post(app, fixture('ref-update'));
    expect((await request(app).get('/health/liveness')).status).toBe(200);
    expect((await request(app).get('/health/readiness')).status).toBe(200);
    const metrics = await request(app).get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain(
      'config_restarter_events_total{category="apiserver",result="processed"} 1',
    );
    expect(metrics.text).toContain(
      'config_restarter_decisions_total{kind="Service",action="restart",dry_run="false"} 1',
    );
  });

  it('answers readiness 503 while shutting down', async () => {
    const { app } = await setup({ ready: false });
    expect((await request(app).get('/health/readiness')).status).toBe(503);
    expect((await request(app).get('/health/liveness')).status).toBe(200);
  });

  it('reports dry-run decisions without changing the workload', async () => {
    const { app, cluster } = await setup({ dryRun: true });
    const before = JSON.stringify(cluster.read(RESOURCE.Service!, 'helloworld', 'helloworld-test'));
    const res = await post(app, fixture('ref-update'));
    expect(res.status).toBe(200);
    expect(res.text).toContain('dry run');
    expect(JSON.stringify(cluster.read(RESOURCE.Service!, 'helloworld', 'helloworld-test'))).toBe(before);
  });
});
