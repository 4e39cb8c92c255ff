/**
 * Generated hostile requests for the function's HTTP layer (fast-check): random bytes, broken JSON,
 * oversized and contradictory ce-* headers, invalid names, path traversal, unicode, wrong methods, all
 * serialised by hand so nothing is cleaned up by an HTTP client on the way. Plus the check every answer
 * must pass: no 5xx, and a JSON body or a CloudEvent.
 */
import fc from 'fast-check';
import { rawRequest, type RawAnswer } from './raw-http.js';

/** One generated request: what it tries, and the bytes on the wire. */
export interface FuzzRequest {
  category: string;
  bytes: Buffer;
  /**
   * Close the sending side after writing: for bytes that may never complete a request head, so the server
   * sees the end instead of waiting for more. Complete requests keep the connection open, as real clients do
   * (Node drops the answer to a request whose client half-closed before it was answered).
   */
  halfClose: boolean;
}

/** What the generated events are about; tests put these objects into the cluster. */
export interface FuzzTarget {
  namespace: string;
  configMap: string;
}

const TYPES = [
  'dev.knative.apiserver.ref.add',
  'dev.knative.apiserver.ref.update',
  'dev.knative.apiserver.ref.delete',
  'dev.knative.apiserver.resource.update',
  'dev.knative.apiserver.resource.add',
  'dev.knative.sources.ping',
];

const unicode = fc.string({ unit: 'binary', maxLength: 40 });
const badNames = fc.constantFrom(
  '',
  'UPPER',
  '../../etc/passwd',
  '..%2F..%2Fkube-system',
  'a'.repeat(300),
  'name with space',
  'ünïcødé',
  '\u202eevil',
  'kube-system',
  'default',
  '%00',
  'a/b',
);

/** A name: mostly the target's, sometimes invalid, sometimes another valid one. */
function nameOf(valid: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(valid) },
    { weight: 2, arbitrary: badNames },
    { weight: 1, arbitrary: fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?$/) },
    { weight: 1, arbitrary: unicode },
  );
}

/** A header value as bytes on the wire would carry it (may hold CR, LF, NUL: bad framing on purpose). */
const headerValue = (valid: string): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(valid) },
    { weight: 1, arbitrary: unicode },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }).map((n) => valid.repeat(n)) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', '\u0000', 'a\rb', 'a\nX-Injected: 1') },
  );

function eventRequest(target: FuzzTarget): fc.Arbitrary<FuzzRequest> {
  return fc
    .record({
      method: fc.oneof(
        { weight: 8, arbitrary: fc.constant('POST') },
        { weight: 2, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'FOO') },
      ),
      path: fc.oneof(
        { weight: 8, arbitrary: fc.constant('/') },
        {
          weight: 2,
          arbitrary: fc.constantFrom(
            '/../../etc/passwd',
            '/%2e%2e/%2e%2e/',
            '//',
            '/metrics/../',
            '/health/../metrics',
            '/?a=b',
            '*',
            'http://evil.example/',
          ),
        },
        { weight: 1, arbitrary: unicode.map((s) => `/${encodeURIComponent(s)}`) },
      ),
      type: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: unicode }),
      kind: fc.oneof(
        { weight: 5, arbitrary: fc.constant('ConfigMap') },
        { weight: 1, arbitrary: fc.constantFrom('Secret', 'Deployment', 'configmap', '') },
      ),
      name: nameOf(target.configMap),
      namespace: nameOf(target.namespace),
      subjectName: nameOf(target.configMap),
      subjectNamespace: nameOf(target.namespace),
      dataName: nameOf(target.configMap),
      dataNamespace: nameOf(target.namespace),
      id: fc.oneof(fc.uuid(), fc.constant(''), unicode),
      specversion: fc.oneof({ weight: 6, arbitrary: fc.constant('1.0') }, { weight: 1, arbitrary: unicode }),
      contentType: fc.oneof(
        { weight: 5, arbitrary: fc.constant('application/json') },
        {
          weight: 2,
          arbitrary: fc.constantFrom(
            'application/cloudevents+json',
            'application/cloudevents-batch+json',
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
            'application/json; charset=utf-16',
          ),
        },
        { weight: 1, arbitrary: unicode },
      ),
      body: fc.oneof(
        { weight: 4, arbitrary: fc.constant('valid') },
        { weight: 2, arbitrary: fc.constant('truncated') },
        { weight: 1, arbitrary: fc.constant('forged-resource') },
        { weight: 1, arbitrary: fc.json() },
        { weight: 1, arbitrary: unicode },
        {
          weight: 1,
          arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b).toString('latin1')),
        },
      ),
      duplicate: fc.option(
        fc.constantFrom('ce-name', 'ce-namespace', 'ce-type', 'ce-subject', 'content-length'),
      ),
      oversized: fc.option(fc.integer({ min: 16 * 1024, max: 256 * 1024 }), { freq: 10 }),
      framing: fc.constantFrom('length', 'length', 'length', 'chunked', 'none', 'wrong-length'),
      lie: fc.constantFrom('ce-name', 'ce-namespace', 'ce-subject', 'none', 'none'),
    })
    .chain((r) =>
      fc.record({
        r: fc.constant(r),
        nameValue: headerValue(r.name),
        namespaceValue: headerValue(r.namespace),
        typeValue: headerValue(r.type),
      }),
    )
    .map(({ r, nameValue, namespaceValue, typeValue }) => {
      const data = { kind: r.kind, namespace: r.dataNamespace, name: r.dataName, apiVersion: 'v1' };
      let body: string;
      switch (r.body) {
        case 'valid':
          body = JSON.stringify(data);
          break;
        case 'truncated':
          body = JSON.stringify(data).slice(0, 20);
          break;
        case 'forged-resource':
          body = JSON.stringify({
            ...data,
            metadata: { name: r.dataName, namespace: r.dataNamespace, annotations: { forged: 'true' } },
            data: { MESSAGE: 'forged' },
          });
          break;
        default:
          body = r.body;
      }
      const headers: [string, string][] = [
        ['Host', 'config-restarter.helloworld.svc'],
        ['ce-specversion', r.specversion],
        ['ce-type', typeValue],
        ['ce-source', 'https://10.96.0.1:443'],
        ['ce-subject', `/apis/v1/namespaces/${r.subjectNamespace}/configmaps/${r.subjectName}`],
        ['ce-id', r.id],
        ['ce-kind', r.kind],
        ['ce-apiversion', 'v1'],
        ['ce-name', r.lie === 'ce-name' ? `${nameValue}-other` : nameValue],
        ['ce-namespace', r.lie === 'ce-namespace' ? 'kube-system' : namespaceValue],
        ['Content-Type', r.contentType],
        ['Kn-Namespace', target.namespace],
      ];
      if (r.duplicate) headers.push([r.duplicate, r.duplicate === 'content-length' ? '3' : 'contradicting']);
      if (r.oversized) headers.push(['ce-padding', 'x'.repeat(r.oversized)]);
      const payload = Buffer.from(body, 'utf8');
      let wire = payload;
      if (r.framing === 'length') headers.push(['Content-Length', String(payload.length)]);
      // Shorter than the body: the rest arrives as the start of a second, malformed request.
      if (r.framing === 'wrong-length')
        headers.push(['Content-Length', String(Math.max(0, payload.length - 5))]);
      if (r.framing === 'chunked') {
        headers.push(['Transfer-Encoding', 'chunked']);
        wire = Buffer.concat([
          Buffer.from(`${payload.length.toString(16)}\r\n`),
          payload,
          Buffer.from('\r\n0\r\n\r\n'),
        ]);
      }
      return {
        category: `event:${r.method}:${r.body}:${r.framing}${r.oversized ? ':oversized' : ''}`,
        bytes: rawRequest(r.method, r.path, headers, wire),
        halfClose: false,
      };
    });
}

/** Counterexamples print as their category and size, not as a megabyte of bytes. */
function printable(request: FuzzRequest): FuzzRequest {
  const head = request.bytes.subarray(0, 200).toString('latin1');
  return Object.assign(request, {
    [fc.toStringMethod]: () => `${request.category} (${request.bytes.length} bytes): ${JSON.stringify(head)}`,
  });
}

/** Every kind of hostile request, weighted towards near-valid events (where the logic is). */
export function fuzzRequests(target: FuzzTarget): fc.Arbitrary<FuzzRequest> {
  return fc
    .oneof(
      { weight: 8, arbitrary: eventRequest(target) },
      {
        weight: 1,
        arbitrary: fc
          .uint8Array({ minLength: 1, maxLength: 2048 })
          .map((b) => ({ category: 'random-bytes', bytes: Buffer.from(b), halfClose: true })),
      },
      {
        weight: 1,
        arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 400 }).map((s) => ({
          category: 'random-text',
          bytes: Buffer.from(`POST / HTTP/1.1\r\n${s}\r\n\r\n`),
          halfClose: true,
        })),
      },
    )
    .map(printable);
}

/** Why `answer` breaks the contract, or undefined when it is fine. */
export function contractViolation(answer: RawAnswer): string | undefined {
  if (!Number.isInteger(answer.status)) return 'no status line';
  if (answer.status >= 500) return `status ${answer.status}`;
  if (answer.status === 200 && answer.headers['ce-type'] === 'config-restarter.decisions') return undefined;
  if (!(answer.headers['content-type'] ?? '').startsWith('application/json')) {
    return `status ${answer.status} with content-type ${answer.headers['content-type']}`;
  }
  try {
    JSON.parse(answer.body);
  } catch {
    return `status ${answer.status} with a body that is not JSON: ${answer.body.slice(0, 100)}`;
  }
  return undefined;
}
