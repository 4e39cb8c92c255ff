/**
 * The HTTP server over raw sockets: requests Node refuses before the app sees them still get the JSON
 * error body of the contract, and header sizes Knative's queue-proxy lets through are accepted.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { silentLogger } from '../../../functions/config-restarter/src/log.js';
import {
  clientErrorStatus,
  createServer,
  MAX_HEADER_BYTES,
} from '../../../functions/config-restarter/src/server.js';
import { rawExchange, rawRequest, type RawAnswer } from '../../support/raw-http.js';
import { configMap, FakeCluster, RESOURCE, workload } from './fake-cluster.js';
import { stubApp } from './stub-app.js';

const labels = { app: 'helloworld', env: 'test' };
const EVENT_HEADERS: [string, string][] = [
  ['Host', 'localhost'],
  ['ce-specversion', '1.0'],
  ['ce-type', 'dev.knative.apiserver.ref.update'],
  ['ce-source', 'https://10.96.0.1:443'],
  ['ce-subject', '/apis/v1/namespaces/helloworld/configmaps/helloworld-config-test'],
  ['ce-id', 'e6c1a0de-8d0f-4c39-9a63-0c6b0b3b9a01'],
  ['ce-kind', 'ConfigMap'],
  ['ce-apiversion', 'v1'],
  ['ce-name', 'helloworld-config-test'],
  ['ce-namespace', 'helloworld'],
  ['Content-Type', 'application/json'],
];
const EVENT_BODY = JSON.stringify({
  kind: 'ConfigMap',
  namespace: 'helloworld',
  name: 'helloworld-config-test',
  apiVersion: 'v1',
});

let server: Server;
let stopIndex: () => void = () => undefined;
let port: number;
let cluster: FakeCluster;
const refused: number[] = [];

beforeAll(async () => {
  cluster = new FakeCluster();
  cluster.put('configmaps', configMap('helloworld-config-test', { MESSAGE: 'hi' }, { labels }));
  cluster.put(RESOURCE.Deployment!, workload('Deployment', 'helloworld-test', { labels }));
  const stub = await stubApp(cluster, { dryRun: true });
  stopIndex = stub.stop;
  const app = stub.app;
  server = createServer(app, { logger: silentLogger, onRefused: (status) => refused.push(status) });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  stopIndex();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function expectJsonError(answer: RawAnswer, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(answer.body)).toEqual({ error: 'bad_request', detail: expect.any(String) as string });
}

const event = (extra: [string, string][] = [], body = EVENT_BODY): Buffer =>
  rawRequest(
    'POST',
    '/',
    [...EVENT_HEADERS, ...extra, ['Content-Length', String(Buffer.byteLength(body))]],
    body,
  );

describe('config-restarter HTTP server', () => {
  it('accepts headers of several hundred KiB, as Knative queue-proxy forwards them (Node refuses 16 KiB)', async () => {
    const answer = await rawExchange(port, event([['x-padding', 'p'.repeat(512 * 1024)]]));
    expect(answer.status).toBe(200);
    expect(answer.headers['ce-type']).toBe('config-restarter.decisions');
  });

  it('answers headers over the limit with 431 and the JSON error body', async () => {
    const answer = await rawExchange(port, event([['x-padding', 'p'.repeat(MAX_HEADER_BYTES + 1)]]));
    expectJsonError(answer, 431);
    expect(refused).toContain(431);
  });

  it.each([
    ['NUL in a header value', event([['x-bad', 'a\u0000b']])],
    ['a bare CR in a header value', event([['x-bad', 'a\rb']])],
    // Refused at the first header while 600 KiB are still on their way: the answer must not be lost to a reset.
    [
      'NUL early in a large head',
      event([
        ['x-bad', 'a\u0000b'],
        ['x-padding', 'p'.repeat(600 * 1024)],
      ]),
    ],
    ['a header without a colon', Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nno-colon-here\r\n\r\n')],
    ['a header name with a space', event([['bad name', 'x']])],
    ['a garbage request line', Buffer.from('\u0001\u0002 GARBAGE\r\n\r\n')],
    ['an unknown HTTP version', Buffer.from('POST / HTTP/7.0\r\nHost: x\r\n\r\n')],
    [
      'Content-Length that is not a number',
      rawRequest('POST', '/', [...EVENT_HEADERS, ['Content-Length', 'ten']], EVENT_BODY),
    ],
    [
      'two different Content-Length values',
      rawRequest(
        'POST',
        '/',
        [...EVENT_HEADERS, ['Content-Length', '5'], ['Content-Length', '6']],
        EVENT_BODY,
      ),
    ],
    [
      'Content-Length together with Transfer-Encoding',
      rawRequest(
        'POST',
        '/',
        [...EVENT_HEADERS, ['Content-Length', '5'], ['Transfer-Encoding', 'chunked']],
        '0\r\n\r\n',
      ),
    ],
  ])('answers %s with 400 and the JSON error body', async (_what, request) => {
    expectJsonError(await rawExchange(port, request), 400);
  });

  it('answers a broken chunked body with a JSON 400, and no patch is sent', async () => {
    const patches = cluster.calls.filter((c) => c.verb === 'patch').length;
    const answer = await rawExchange(
      port,
      rawRequest('POST', '/', [...EVENT_HEADERS, ['Transfer-Encoding', 'chunked']], '5\r\n{"kin\r\nzz\r\n'),
    );
    expect(answer.status).toBe(400);
    expect(() => JSON.parse(answer.body) as unknown).not.toThrow();
    expect(cluster.calls.filter((c) => c.verb === 'patch').length).toBe(patches);
  });

  it('keeps serving after all of that', async () => {
    const answer = await rawExchange(port, event());
    expect(answer.status).toBe(200);
  });

  it.each([
    ['HPE_HEADER_OVERFLOW', 431],
    ['HPE_INVALID_HEADER_TOKEN', 400],
    ['ERR_HTTP_REQUEST_TIMEOUT', 408],
    [undefined, 400],
  ])('maps parser error %s to %i', (code, status) => {
    expect(clientErrorStatus(code)).toBe(status);
  });
});
