/**
 * Property-based fuzzing of the HTTP layer over real TCP (fast-check, fixed seed): whatever arrives, the
 * function answers, never with a 5xx, always with a JSON body or a CloudEvent, and never writes to the
 * (stub) cluster: the only opted-in ConfigMap is already recorded on its workload, so even a well-formed
 * event that slips through restarts nothing.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import fc from 'fast-check';
import { contentHash } from '../../../functions/config-restarter/src/hash.js';
import { silentLogger } from '../../../functions/config-restarter/src/log.js';
import { createServer } from '../../../functions/config-restarter/src/server.js';
import { contractViolation, fuzzRequests } from '../../support/http-fuzz.js';
import { rawExchange } from '../../support/raw-http.js';
import { configMap, FakeCluster, RESOURCE, workload } from './fake-cluster.js';
import { stubApp } from './stub-app.js';

const SEED = 20261122;
const RUNS = 1200;
const labels = { app: 'helloworld', env: 'test' };

let server: Server;
let stopIndex: () => void = () => undefined;
let port: number;
let cluster: FakeCluster;

beforeAll(async () => {
  cluster = new FakeCluster();
  const cm = cluster.put('configmaps', configMap('helloworld-config-test', { MESSAGE: 'hi' }, { labels }));
  const record = JSON.stringify({ 'configmap/helloworld-config-test': contentHash('ConfigMap', cm) });
  cluster.put(
    RESOURCE.Deployment!,
    workload('Deployment', 'helloworld-test', {
      labels,
      annotations: { 'rolling.restart.controller/configHashes': record },
    }),
  );
  const stub = await stubApp(cluster);
  stopIndex = stub.stop;
  const app = stub.app;
  server = createServer(app, { logger: silentLogger });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  stopIndex();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

it(`answers ${RUNS} generated hostile requests: no 5xx, JSON or a CloudEvent, no API write`, async () => {
  const statuses = new Map<number, number>();
  const categories = new Set<string>();
  let slowest = 0;
  await fc.assert(
    fc.asyncProperty(
      fuzzRequests({ namespace: 'helloworld', configMap: 'helloworld-config-test' }),
      async (req) => {
        const answer = await rawExchange(port, req.bytes, { halfClose: req.halfClose, timeoutMs: 10_000 });
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        categories.add(req.category.split(':')[0]!);
        slowest = Math.max(slowest, answer.ms);
        const violation = contractViolation(answer);
        if (violation) throw new Error(`${req.category}: ${violation}`);
      },
    ),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  const writes = cluster.calls.filter((c) => c.verb === 'patch');
  process.stdout.write(
    `fuzz (stub cluster, seed ${SEED}): ${RUNS} requests, statuses ${JSON.stringify(
      Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])),
    )}, API reads ${cluster.calls.length - writes.length}, API writes ${writes.length}, slowest ${slowest} ms\n`,
  );
  expect(writes).toEqual([]);
  expect([...statuses.keys()].filter((s) => s >= 500)).toEqual([]);
  // The generator reached the layers it is meant to: refusals before the app, decode errors, handled events.
  expect([...statuses.keys()]).toEqual(expect.arrayContaining([200, 202, 400, 404]));
  expect(categories).toEqual(new Set(['event', 'random-bytes', 'random-text']));
  // Still serving.
  expect((await fetch(`http://127.0.0.1:${port}/health/liveness`)).status).toBe(200);
}, 300_000);
