/**
 * The HTTP contract of README.md against the code, row by row: the test reads the README's table and, for
 * every row, answers the cases that row describes through the code that answers them (reply.ts's table, the
 * server's answers for requests refused before the app, the metrics route). Each status, error code, header
 * and literal the row names must be what the code answers, every row must have its cases, and every way a
 * request can end must appear in some row, so the documentation and the code cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import request from 'supertest';
import { createApp } from '../../../functions/config-restarter/src/app.js';
import type { Notice } from '../../../functions/config-restarter/src/event.js';
import { apiFailure } from '../../../functions/config-restarter/src/event-run.js';
import { KubeApiError } from '../../../functions/config-restarter/src/kube.js';
import { Failure, FAILURE_KINDS, type FailureKind } from '../../../functions/config-restarter/src/failure.js';
import { silentLogger } from '../../../functions/config-restarter/src/log.js';
import { createMetrics } from '../../../functions/config-restarter/src/metrics.js';
import {
  livenessReply,
  readinessReply,
  toReply,
  type Refusal,
  type Reply,
} from '../../../functions/config-restarter/src/reply.js';
import type { Outcome, ReportedDecision } from '../../../functions/config-restarter/src/outcome.js';
import type { RolloutReport } from '../../../functions/config-restarter/src/rollout.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import { clientErrorResponse, clientErrorStatus } from '../../../functions/config-restarter/src/server.js';

/** The rows of the README's "HTTP contract" table: request -> answer. */
function readmeRows(): Map<string, string> {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const section = readme.split('\n### HTTP contract\n')[1]?.split('\n#')[0] ?? '';
  const lines = section.split('\n').filter((line) => line.startsWith('| '));
  expect(lines[0]).toBe('| request | answer |');
  return new Map(
    lines.slice(1).map((line) => {
      const cells = line.slice(2, -2).split(' | ');
      expect(cells).toHaveLength(2);
      return [cells[0]!, cells[1]!] as const;
    }),
  );
}

/** What a row's answer cell promises. */
interface Promised {
  statuses: number[];
  errors: string[];
  headers: { name: string; value: string | undefined }[];
  /** `"key":"value"` pairs with a literal value (`…` = anything). */
  literals: { key: string; pattern: RegExp }[];
  /** `type: …` / `source: …` of the reply CloudEvent. */
  cloudEvent: { type?: string; source?: string };
}

function promised(answer: string): Promised {
  const all = (regex: RegExp): RegExpExecArray[] => [...answer.matchAll(regex)];
  const literal = (text: string): RegExp =>
    new RegExp(
      `^${text
        .split('…')
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
  return {
    statuses: all(/`(\d{3})[ `]/g).map((m) => Number(m[1])),
    errors: all(/"error":"([a-z_]+)"/g).map((m) => m[1]!),
    headers: all(/`(Retry-After|WWW-Authenticate)(?:: ([^`]+))?`/g).map((m) => ({
      name: m[1]!,
      value: m[2],
    })),
    literals: all(/"(result|detail)":"((?:[^"\\]|\\.)*)"/g).map((m) => ({
      key: m[1]!,
      pattern: literal(JSON.parse(`"${m[2]!}"`) as string),
    })),
    cloudEvent: {
      type: /`type: ([^`]+)`/.exec(answer)?.[1],
      source: /`source: ([^`]+)`/.exec(answer)?.[1],
    },
  };
}

const event = {
  id: 'e1',
  type: 'dev.knative.apiserver.ref.update',
  source: 'https://10.96.0.1:443',
  subject: '/apis/v1/namespaces/helloworld/configmaps/cm',
};
const notice: Notice = {
  type: 'change',
  event,
  action: 'update',
  mode: 'reference',
  ref: { kind: 'ConfigMap', namespace: 'helloworld', name: 'cm' },
};
const workloadW = { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'helloworld', name: 'w' };
/** An event about the followed Deployment `w` (the workloads' ApiServerSource). */
const rolloutNotice: Notice = {
  type: 'rollout',
  event: { ...event, subject: '/apis/apps/v1/namespaces/helloworld/deployments/w' },
  ref: { kind: WORKLOAD_KINDS[0]!, namespace: 'helloworld', name: 'w' },
};
const rolledOut: RolloutReport = {
  workload: workloadW,
  outcome: 'rolled-out',
  configs: { 'ConfigMap/cm': 'sha256:aa' },
  restartedAt: '2026-01-01T00:00:02.000Z',
  changedAt: '2026-01-01T00:00:01.000Z',
  finishedAt: '2026-01-01T00:00:09.000Z',
  seconds: 8,
  message: '2/2 updated, 2 available, 0 old',
};
const restarted: ReportedDecision = {
  workload: workloadW,
  action: 'restart',
  reason: 'ConfigMap helloworld/cm (labels app=helloworld,env=test): content changed',
  configs: ['ConfigMap helloworld/cm'],
  dryRun: false,
  lastWrite: [
    {
      config: 'ConfigMap helloworld/cm',
      fieldManager: 'kubectl-edit',
      operation: 'Update',
      time: '2026-01-01T00:00:00Z',
    },
  ],
};

/** Which results and failure kinds the cases below reach (checked for completeness at the end). */
const reached = new Set<string>();

function outcome(result: Outcome['result'], extra: Partial<Outcome> = {}): Outcome {
  reached.add(`outcome:${result}`);
  return { result, reason: `${result} of ConfigMap helloworld/cm`, decisions: [], failures: [], ...extra };
}
function failure(kind: FailureKind, message: string): Failure {
  reached.add(`failure:${kind}`);
  return new Failure(kind, message);
}
/** The event as a whole failed. */
const failed = (kind: FailureKind, message: string): Reply =>
  toReply(notice, outcome('failed', { failure: failure(kind, message) }));
/** The event was processed and some workloads failed. */
const workloadsFailed = (...errors: Failure[]): Reply =>
  toReply(
    notice,
    outcome('processed', {
      decisions: [restarted],
      failures: errors.map((error) => ({ workload: workloadW, error })),
    }),
  );
function refused(refusal: Refusal): Reply {
  reached.add(`refusal:${refusal.result}`);
  return toReply(undefined, refusal);
}
/** The server's raw answer to a request Node's parser refused, as a reply. */
function serverAnswer(code: string): Reply {
  const raw = clientErrorResponse(clientErrorStatus(code), code);
  const [head, body] = raw.split('\r\n\r\n') as [string, string];
  const [statusLine, ...headerLines] = head.split('\r\n');
  const headers = Object.fromEntries(headerLines.map((line) => line.split(': ') as [string, string]));
  return { status: Number(statusLine!.split(' ')[1]), headers, body: JSON.parse(body) as object };
}
async function metricsAnswer(): Promise<Reply> {
  const restarter = { handle: () => Promise.reject(new Error('not used')) };
  const app = createApp({ restarter, logger: silentLogger, metrics: createMetrics(), isReady: () => true });
  const res = await request(app).get('/metrics');
  return { status: res.status, headers: res.headers, body: res.text };
}

// The README's example names workload "x" in namespace "y".
const forbiddenMessage =
  'patch deployments.apps "x" in namespace "y" failed with HTTP 403: deployments.apps "x" is forbidden';

/** Per README row (its request cell, verbatim): the answers of the cases it describes. */
const CASES: Record<string, () => Reply[] | Promise<Reply[]>> = {
  '`POST /` handled event': () => [
    toReply(notice, outcome('processed', { decisions: [restarted] })),
    toReply(
      notice,
      outcome('processed', { decisions: [restarted], rollouts: [{ ...rolledOut, outcome: 'superseded' }] }),
    ),
  ],
  '`POST /` an event about a followed workload whose rollout has just ended': () => [
    toReply(rolloutNotice, outcome('processed', { rollouts: [rolledOut] })),
  ],
  '`POST /` irrelevant (other type/kind, not opted in, deleted, `delete` unless `RESTART_ON_DELETE`, a `delete` of an object that still exists, a followed workload whose rollout has not ended or that has none)':
    () => [toReply(notice, outcome('ignored')), toReply(rolloutNotice, outcome('ignored'))],
  '`POST /` not a CloudEvent, invalid attributes, contradicting extensions/data, bad names, an unreadable body':
    () => [refused({ result: 'invalid', detail: 'not a CloudEvent: no type' })],
  '`POST /` body over 1 MB': () => [refused({ result: 'too-large', detail: 'request entity too large' })],
  '`POST /` body with a `Content-Encoding` or charset the function cannot read': () => [
    refused({ result: 'unsupported-encoding', detail: 'unsupported content encoding "br"' }),
  ],
  'malformed HTTP (NUL or CR in a header, broken framing) / request head over 1 MiB / head not received in time':
    () => ['HPE_INVALID_HEADER_TOKEN', 'HPE_HEADER_OVERFLOW', 'HPE_HEADER_TIMEOUT'].map(serverAnswer),
  '`POST /` with authentication on and no token, or one the API server does not accept for `AUTH_AUDIENCE`':
    () => [refused({ result: 'unauthenticated', detail: 'no bearer token' })],
  '`POST /` with authentication on and a valid token of a sender not in `AUTH_ALLOWED_SUBJECTS`': () => [
    refused({
      result: 'sender-not-allowed',
      detail:
        'sender "system:serviceaccount:helloworld:other" is authenticated but not allowed (AUTH_ALLOWED_SUBJECTS)',
    }),
  ],
  '`POST /` with authentication on and the TokenReview could not be done': () => [
    refused({ result: 'review-failed', detail: 'create tokenreviews failed: no answer within 2000 ms' }),
  ],
  '`POST /` namespace outside `WATCH_NAMESPACES`': () => [toReply(notice, outcome('refused'))],
  "API answered 429/5xx, timed out or was unreachable (and a 403 within 30 s after that: a restarted API server denies requests until its RBAC caches have synced, `src/api-recovery.ts`); a workload changed under each of its 5 patches (resourceVersion conflicts); a cold instance's index did not list within `API_TIMEOUT_MS`":
    () => [
      failed('api-unavailable', 'get configmaps "cm" in namespace "helloworld" failed with HTTP 503: busy'),
      workloadsFailed(
        failure('api-unavailable', 'patch deployments.apps "w" in namespace "helloworld" failed: timeout'),
        failure(
          'not-attempted',
          'patch deployments.apps "v" in namespace "helloworld" not attempted: timeout',
        ),
      ),
      workloadsFailed(
        failure('conflicts', 'patch deployments.apps "w" … still conflicting after 5 attempts'),
      ),
      failed('index-not-listed', 'the workload index did not finish its first list within 10000 ms'),
      // A recovering API server's 403 is mapped as part of the outage (event-run.ts).
      failed(
        apiFailure(
          new KubeApiError(403, 'get', 'configmaps', 'helloworld', 'cm', 'RBAC: role not found', true),
        ).kind,
        'get configmaps "cm" in namespace "helloworld" failed with HTTP 403: RBAC: role not found',
      ),
    ],
  'RBAC denied a request (a 403 not within 30 s of the API server being unavailable)': () => [
    failed('api-forbidden', forbiddenMessage),
    failed(
      apiFailure(new KubeApiError(403, 'get', 'configmaps', 'helloworld', 'cm', 'denied')).kind,
      forbiddenMessage,
    ),
    // Of several workload failures the answer names the one no retry fixes.
    workloadsFailed(
      failure('api-unavailable', 'patch deployments.apps "v" in namespace "helloworld" failed: timeout'),
      failure('api-forbidden', forbiddenMessage),
    ),
  ],
  'the API server refused a request otherwise (e.g. `422` for a patch)': () => [
    failed(
      'api-refused',
      'patch deployments.apps "w" in namespace "helloworld" failed with HTTP 422: invalid',
    ),
  ],
  'an unexpected error (a bug)': () => [refused({ result: 'internal' })],
  'any other path or method': () => [refused({ result: 'not-found' })],
  '`GET /health/liveness`, `GET /health/readiness`': () => [
    livenessReply(),
    readinessReply(true, undefined),
    readinessReply(false, undefined),
  ],
  '`GET /metrics`': async () => [await metricsAnswer()],
};

const rows = readmeRows();

it('every row of the README table has its cases, and every case its row', () => {
  expect([...rows.keys()].filter((row) => !(row in CASES))).toEqual([]);
  expect(Object.keys(CASES).filter((row) => !rows.has(row))).toEqual([]);
});

describe.each([...rows])('README row: %s', (row, answer) => {
  const promise = promised(answer);
  let replies: Reply[] = [];
  beforeAll(async () => {
    replies = (await CASES[row]?.()) ?? [];
  });
  const body = (reply: Reply): Record<string, unknown> =>
    typeof reply.body === 'string' ? {} : (reply.body as Record<string, unknown>);

  it(`answers with the status(es) it names`, () => {
    expect(promise.statuses.length).toBeGreaterThan(0);
    for (const reply of replies) expect(promise.statuses).toContain(reply.status);
    expect([...new Set(replies.map((r) => r.status))].sort()).toEqual([...new Set(promise.statuses)].sort());
  });

  it('names the error code of every error answer', () => {
    const errors = replies.filter((r) => r.status >= 400);
    if (promise.errors.length === 0) {
      // Rows without an error body: health (readiness' 503 has a status body), metrics, the CloudEvent.
      for (const reply of errors) expect(body(reply).error).toBeUndefined();
      return;
    }
    for (const reply of errors) expect(promise.errors).toContain(body(reply).error);
  });

  it('sends the headers it names, and only rows naming them send them', () => {
    for (const reply of replies) {
      const headers = Object.fromEntries(Object.entries(reply.headers).map(([k, v]) => [k.toLowerCase(), v]));
      for (const { name, value } of promise.headers) {
        expect(headers[name.toLowerCase()]).toBeDefined();
        if (value !== undefined) expect(headers[name.toLowerCase()]).toBe(value);
      }
      for (const name of ['Retry-After', 'WWW-Authenticate']) {
        if (headers[name.toLowerCase()] !== undefined) {
          expect(promise.headers.map((h) => h.name)).toContain(name);
        }
      }
    }
  });

  it('carries the literal values it names', () => {
    for (const { key, pattern } of promise.literals) {
      for (const reply of replies) expect(String(body(reply)[key])).toMatch(pattern);
    }
    const { type, source } = promise.cloudEvent;
    for (const reply of replies) {
      if (type) expect(reply.headers['ce-type']).toBe(type);
      if (source) expect(reply.headers['ce-source']).toBe(source);
    }
  });
});

it('every outcome, refusal and failure kind appears in some row', async () => {
  for (const cases of Object.values(CASES)) await cases();
  const outcomes: Record<Outcome['result'], true> = {
    processed: true,
    ignored: true,
    refused: true,
    failed: true,
  };
  const refusals: Record<Refusal['result'], true> = {
    invalid: true,
    'too-large': true,
    'unsupported-encoding': true,
    'not-found': true,
    unauthenticated: true,
    'sender-not-allowed': true,
    'review-failed': true,
    internal: true,
  };
  const expected = [
    ...Object.keys(outcomes).map((r) => `outcome:${r}`),
    ...Object.keys(refusals).map((r) => `refusal:${r}`),
    ...Object.keys(FAILURE_KINDS).map((k) => `failure:${k}`),
  ];
  expect(expected.filter((name) => !reached.has(name))).toEqual([]);
});

it('a processed event with workload failures lists its decisions and failures in the error body', () => {
  const reply = workloadsFailed(failure('conflicts', 'patch deployments.apps "w" still conflicting'));
  expect(reply.body).toMatchObject({
    error: 'unavailable',
    eventId: 'e1',
    decisions: [restarted],
    failures: [{ workload: workloadW, error: 'patch deployments.apps "w" still conflicting' }],
  });
});
