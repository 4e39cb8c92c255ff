/**
 * Sender authentication: the authenticator's decisions (table), its cache, Knative's OIDC identity names,
 * and the HTTP layer answering 401 (not authenticated) or 403 (authenticated, not allowed) before the body
 * is read or the API server is asked anything.
 */
import request from 'supertest';
import {
  createAuthenticator,
  defaultAllowedSubjects,
  knativeChildName,
  knativeOidcSubject,
  type TokenReviewResult,
} from '../../../functions/config-restarter/src/auth.js';
import { createTokenReviewer } from '../../../functions/config-restarter/src/token-review.js';
import { configMap, FakeCluster, RESOURCE, workload } from './fake-cluster.js';
import { stubApp } from './stub-app.js';

const AUDIENCE = 'serving.knative.dev/service/helloworld/config-restarter';
const SOURCE = 'system:serviceaccount:helloworld:config-restarter-resync-oidc-sources.knative.dev-pingsource';

/** A JWT-shaped token (the reviewer stub decides; only `exp` is read locally). */
function jwt(claims: Record<string, unknown>): string {
  const part = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'RS256' })}.${part(claims)}.c2lnbmF0dXJl`;
}

const VALID = jwt({ sub: SOURCE, aud: [AUDIENCE], exp: Math.floor(Date.now() / 1000) + 3600 });
const OTHER_AUDIENCE = jwt({ sub: SOURCE, aud: ['other'] });
const STRANGER = jwt({ sub: 'system:serviceaccount:helloworld:someone-else', aud: [AUDIENCE] });

/** Stands in for the API server's TokenReview: knows the three tokens above. */
function reviewStub(calls: string[]) {
  return (token: string, audience: string): Promise<TokenReviewResult> => {
    calls.push(token);
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString() || '{}') as {
      sub?: string;
      aud?: string[];
    };
    if (![VALID, OTHER_AUDIENCE, STRANGER].includes(token)) {
      return Promise.resolve({ authenticated: false, error: 'invalid bearer token' });
    }
    if (!claims.aud?.includes(audience)) {
      return Promise.resolve({ authenticated: false, error: 'token audiences are invalid' });
    }
    return Promise.resolve({ authenticated: true, username: claims.sub, audiences: [audience] });
  };
}

describe('authenticator', () => {
  it.each([
    ['no header', undefined, 401, 'no bearer token'],
    ['Basic credentials', 'Basic YWxpY2U6c2VjcmV0', 401, 'not a bearer token'],
    ['an empty bearer', 'Bearer ', 401, 'not a bearer token'],
    ['a token with spaces', 'Bearer a b', 401, 'not a bearer token'],
    ['garbage', 'Bearer garbage', 401, 'token not valid'],
    ['a token for another audience', `Bearer ${OTHER_AUDIENCE}`, 401, 'token not valid'],
    ['an oversized token', `Bearer ${'a'.repeat(20_000)}`, 401, 'too long'],
  ])('refuses %s with 401', async (_what, header, status, reason) => {
    const calls: string[] = [];
    const auth = createAuthenticator({
      review: reviewStub(calls),
      audience: AUDIENCE,
      allowedSubjects: [SOURCE],
    });
    const check = await auth.check(header);
    expect(check).toEqual({ ok: false, status, reason: expect.stringContaining(reason) as string });
  });

  it('refuses a valid token of an identity that is not allowed with 403, naming it, and caches nothing', async () => {
    const calls: string[] = [];
    const auth = createAuthenticator({
      review: reviewStub(calls),
      audience: AUDIENCE,
      allowedSubjects: [SOURCE],
    });
    const refusal = {
      ok: false,
      status: 403,
      subject: 'system:serviceaccount:helloworld:someone-else',
      reason: expect.stringContaining('authenticated but not allowed') as string,
    };
    expect(await auth.check(`Bearer ${STRANGER}`)).toEqual(refusal);
    expect(await auth.check(`Bearer ${STRANGER}`)).toEqual(refusal);
    expect(calls).toEqual([STRANGER, STRANGER]);
  });

  it('accepts a token of an allowed identity for the audience', async () => {
    const auth = createAuthenticator({
      review: reviewStub([]),
      audience: AUDIENCE,
      allowedSubjects: [SOURCE],
    });
    expect(await auth.check(`Bearer ${VALID}`)).toEqual({ ok: true, subject: SOURCE });
  });

  it('refuses a review that does not confirm the audience', async () => {
    const auth = createAuthenticator({
      review: () => Promise.resolve({ authenticated: true, username: SOURCE, audiences: [] }),
      audience: AUDIENCE,
      allowedSubjects: [SOURCE],
    });
    expect(await auth.check(`Bearer ${VALID}`)).toMatchObject({ ok: false, status: 401 });
  });

  it('answers 503 when the review cannot be done (the sender retries)', async () => {
    const auth = createAuthenticator({
      review: () => Promise.reject(new Error('connect ECONNREFUSED')),
      audience: AUDIENCE,
      allowedSubjects: [SOURCE],
    });
    expect(await auth.check(`Bearer ${VALID}`)).toMatchObject({ ok: false, status: 503 });
  });

  it('caches positive reviews by token, bounded, up to the TTL and never past the token expiry', async () => {
    let now = 1_000_000;
    const calls: string[] = [];
    const shortLived = jwt({ sub: SOURCE, aud: [AUDIENCE], exp: (now + 5_000) / 1000 });
    const review = (token: string, audience: string): Promise<TokenReviewResult> => {
      calls.push(token);
      return Promise.resolve({ authenticated: true, username: SOURCE, audiences: [audience] });
    };
    const auth = createAuthenticator({
      review,
      audience: AUDIENCE,
      allowedSubjects: [SOURCE],
      cacheTtlMs: 60_000,
      cacheSize: 2,
      now: () => now,
    });
    await auth.check(`Bearer ${VALID}`);
    await auth.check(`Bearer ${VALID}`);
    expect(calls).toEqual([VALID]);
    await auth.check(`Bearer ${shortLived}`);
    now += 6_000; // past the short-lived token's exp, within the TTL
    await auth.check(`Bearer ${shortLived}`);
    expect(calls).toEqual([VALID, shortLived, shortLived]);
    // The expired token is not cached again; two more tokens push the oldest entry (VALID) out.
    await auth.check('Bearer other-1');
    await auth.check('Bearer other-2');
    await auth.check(`Bearer ${VALID}`);
    expect(calls.filter((t) => t === VALID).length).toBe(2);
    now += 61_000; // past the TTL
    await auth.check(`Bearer ${VALID}`);
    expect(calls.filter((t) => t === VALID).length).toBe(3);
  });

  it('never caches refusals', async () => {
    const calls: string[] = [];
    const auth = createAuthenticator({
      review: reviewStub(calls),
      audience: AUDIENCE,
      allowedSubjects: [SOURCE],
    });
    await auth.check(`Bearer ${STRANGER}`);
    await auth.check(`Bearer ${STRANGER}`);
    expect(calls).toEqual([STRANGER, STRANGER]);
  });
});

describe('Knative OIDC identities', () => {
  it('names them like knative.dev/pkg kmeta.ChildName (hashed past 63 characters)', () => {
    expect(knativeChildName('short', '-suffix')).toBe('short-suffix');
    // parent + suffix > 63 and the suffix leaves no room for the hash: md5 of the whole, then the suffix's start.
    expect(knativeChildName('config-restarter-source', '-oidc-sources.knative.dev-ApiServerSource')).toBe(
      'config-restarter-sourcee203382cddce8e899c753215fb6a0fd6-oidc-so',
    );
    // parent + suffix > 63 with room for the hash: truncated parent + md5(parent) + suffix.
    expect(knativeChildName('a'.repeat(62), '-x')).toBe(
      `${'a'.repeat(29)}${'24612f0ce2c9d2cf2b022ef1e027a54f'}-x`,
    );
  });

  it('lists the project senders in the given namespace', () => {
    expect(defaultAllowedSubjects('helloworld')).toEqual([
      knativeOidcSubject('helloworld', 'sources.knative.dev', 'ApiServerSource', 'config-restarter-source'),
      knativeOidcSubject(
        'helloworld',
        'sources.knative.dev',
        'ApiServerSource',
        'config-restarter-workloads',
      ),
      SOURCE,
      'system:serviceaccount:helloworld:config-restarter-oidc-eventing.knative.dev-trigger',
    ]);
  });
});

describe('token reviewer', () => {
  it('posts a TokenReview with the audience and reads the status', async () => {
    const posted: unknown[] = [];
    const review = createTokenReviewer((path, body) => {
      posted.push({ path, body });
      return Promise.resolve({
        status: 201,
        json: { status: { authenticated: true, user: { username: SOURCE }, audiences: [AUDIENCE] } },
      });
    });
    expect(await review('t0ken', AUDIENCE)).toEqual({
      authenticated: true,
      username: SOURCE,
      audiences: [AUDIENCE],
      error: undefined,
    });
    expect(posted).toEqual([
      {
        path: '/apis/authentication.k8s.io/v1/tokenreviews',
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token: 't0ken', audiences: [AUDIENCE] },
        },
      },
    ]);
  });

  it('rejects on a refused review (RBAC), so the sender is answered 503', async () => {
    const review = createTokenReviewer(() =>
      Promise.resolve({ status: 403, json: { message: 'tokenreviews is forbidden' } }),
    );
    await expect(review('t', AUDIENCE)).rejects.toThrow('HTTP 403: tokenreviews is forbidden');
  });
});

describe('HTTP with authentication on', () => {
  const labels = { app: 'helloworld', env: 'test' };
  const headers = {
    'ce-specversion': '1.0',
    'ce-type': 'dev.knative.apiserver.ref.update',
    'ce-source': 'https://10.96.0.1:443',
    'ce-subject': '/apis/v1/namespaces/helloworld/configmaps/helloworld-config-test',
    'ce-id': '9d7b2f7e-1f0e-4c55-9d55-52c1f7b0a001',
    'ce-kind': 'ConfigMap',
    'ce-apiversion': 'v1',
    'ce-name': 'helloworld-config-test',
    'ce-namespace': 'helloworld',
    'content-type': 'application/json',
  };
  const body = JSON.stringify({
    kind: 'ConfigMap',
    namespace: 'helloworld',
    name: 'helloworld-config-test',
    apiVersion: 'v1',
  });

  const stops: (() => void)[] = [];
  afterEach(() => {
    for (const stop of stops.splice(0)) stop();
  });

  async function setup() {
    const cluster = new FakeCluster();
    cluster.put('configmaps', configMap('helloworld-config-test', { MESSAGE: 'hi' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'helloworld-test', { labels }));
    const reviews: string[] = [];
    const { app, stop } = await stubApp(cluster, {
      auth: {
        settings: { audience: AUDIENCE, allowedSubjects: [SOURCE] },
        reviewTokens: reviewStub(reviews),
      },
    });
    stops.push(stop);
    return { app, cluster, reviews };
  }

  it.each([
    ['no token', undefined],
    ['garbage', 'Bearer garbage'],
    ['a token for another audience', `Bearer ${OTHER_AUDIENCE}`],
  ])('answers %s with 401 JSON and asks the cluster nothing', async (_what, authorization) => {
    const { app, cluster } = await setup();
    const req = request(app).post('/').set(headers);
    const res = await (authorization ? req.set('Authorization', authorization) : req).send(body);
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(res.body).toEqual({ error: 'unauthenticated', detail: expect.any(String) as string });
    expect(cluster.calls).toEqual([]);
  });

  it('answers a valid token of a sender that is not allowed with 403 JSON and asks the cluster nothing', async () => {
    const { app, cluster } = await setup();
    const res = await request(app)
      .post('/')
      .set(headers)
      .set('Authorization', `Bearer ${STRANGER}`)
      .send(body);
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBeUndefined();
    expect(res.body).toEqual({
      error: 'sender_not_allowed',
      detail: expect.stringContaining('"system:serviceaccount:helloworld:someone-else"') as string,
    });
    expect(cluster.calls).toEqual([]);
    expect((await request(app).get('/metrics')).text).toContain(
      'config_restarter_events_total{category="unauthorized",result="sender_not_allowed"} 1',
    );
  });

  it('refuses before reading the body: an oversized body still gets 401, not 413', async () => {
    const { app } = await setup();
    const res = await request(app)
      .post('/')
      .set(headers)
      .send('x'.repeat(2 * 1024 * 1024));
    expect(res.status).toBe(401);
  });

  it('handles the event for an allowed sender, and leaves health and metrics open', async () => {
    const { app, cluster } = await setup();
    expect((await request(app).post('/').set(headers).send(body)).status).toBe(401);
    const res = await request(app).post('/').set(headers).set('Authorization', `Bearer ${VALID}`).send(body);
    expect(res.status).toBe(200);
    expect(cluster.calls.filter((c) => c.verb === 'patch').length).toBe(1);
    expect((await request(app).get('/health/readiness')).status).toBe(200);
    expect((await request(app).get('/metrics')).text).toContain(
      'config_restarter_events_total{category="unauthenticated"',
    );
  });
});
