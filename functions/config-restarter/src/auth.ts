/**
 * Sender authentication. With Knative Eventing's `authentication-oidc` feature on, sources and Brokers
 * attach `Authorization: Bearer <token>` to every delivery: a ServiceAccount token the API server issued
 * (TokenRequest) for the sink's audience to a per-sender ServiceAccount. The function asks the API server
 * whether the token is valid for its audience (TokenReview, through the injected {@link TokenReviewer})
 * and accepts only configured usernames. Positive reviews are cached briefly, by token hash.
 */
import { createHash } from 'node:crypto';

/** What a TokenReview said about a token. */
export interface TokenReviewResult {
  authenticated: boolean;
  /** e.g. `system:serviceaccount:helloworld:config-restarter-resync-oidc-sources.knative.dev-pingsource` */
  username?: string;
  /** Audiences the token was found valid for (the intersection with the requested ones). */
  audiences?: string[];
  /** The authenticator's reason when not authenticated. */
  error?: string;
}

/** Reviews a bearer token for one audience (the real one posts a TokenReview to the API server). */
export type TokenReviewer = (token: string, audience: string) => Promise<TokenReviewResult>;

/**
 * Outcome of {@link Authenticator.check}: 401 when the sender is not authenticated (no token, or one the API
 * server does not accept for the audience), 403 when it is, but is not an allowed sender (as Knative
 * Eventing's own receivers answer, knative.dev/eventing pkg/auth/verifier.go).
 */
export type AuthCheck =
  | { ok: true; subject: string }
  | { ok: false; status: 401; reason: string }
  | { ok: false; status: 403; subject: string; reason: string }
  /** The review itself failed (API server unreachable): the sender should retry. */
  | { ok: false; status: 503; reason: string };

/** Checks the `Authorization` header of a delivery. */
export interface Authenticator {
  check(authorization: string | undefined): Promise<AuthCheck>;
}

/** Options of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  review: TokenReviewer;
  audience: string;
  allowedSubjects: readonly string[];
  /** Longest time a positive review is reused (default 60 s); never past the token's `exp`. */
  cacheTtlMs?: number;
  /** Most reviews kept (default 256); the oldest go first. */
  cacheSize?: number;
  /** Clock, for tests. */
  now?: () => number;
}

const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/;
/** Tokens longer than this are refused without asking the API server. */
const MAX_TOKEN_LENGTH = 16 * 1024;

/** The `exp` claim (ms since epoch) of a JWT, read without verifying: the API server verified it. */
function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

type Refused = Extract<AuthCheck, { ok: false; status: 401 }>;
type NotAdmitted = Extract<AuthCheck, { ok: false; status: 401 | 403 }>;

const refused = (reason: string): Refused => ({ ok: false, status: 401, reason });

/** The bearer token of an `Authorization` header, or why there is none the function would review. */
function bearerToken(authorization: string | undefined): string | Refused {
  const match = BEARER.exec(authorization ?? '');
  if (!match) return refused(authorization ? 'Authorization is not a bearer token' : 'no bearer token');
  const token = match[1]!;
  return token.length > MAX_TOKEN_LENGTH ? refused('token too long') : token;
}

/** Why a review does not admit the sender (401: not authenticated; 403: not allowed), or undefined. */
function reviewProblem(
  result: TokenReviewResult,
  audience: string,
  allowed: ReadonlySet<string>,
): NotAdmitted | undefined {
  if (!result.authenticated || !result.username) {
    return refused(`token not valid: ${result.error ?? 'not authenticated'}`);
  }
  // A client that asks for audiences must check the API server found the token valid for one.
  if (!(result.audiences ?? []).includes(audience))
    return refused(`token not issued for audience "${audience}"`);
  if (!allowed.has(result.username)) {
    return {
      ok: false,
      status: 403,
      subject: result.username,
      reason: `sender "${result.username}" is authenticated but not allowed (AUTH_ALLOWED_SUBJECTS)`,
    };
  }
  return undefined;
}

/** Accepted reviews by token hash, each until the earlier of the TTL and the token's `exp`; oldest go first. */
class ReviewCache {
  private readonly entries = new Map<string, { subject: string; until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly size: number,
    private readonly now: () => number,
  ) {}

  get(key: string): string | undefined {
    const cached = this.entries.get(key);
    if (cached && cached.until > this.now()) return cached.subject;
    if (cached) this.entries.delete(key);
    return undefined;
  }

  remember(key: string, subject: string, token: string): void {
    const until = Math.min(this.now() + this.ttlMs, jwtExpiry(token) ?? Number.POSITIVE_INFINITY);
    if (until <= this.now()) return;
    this.entries.delete(key);
    this.entries.set(key, { subject, until });
    while (this.entries.size > this.size) this.entries.delete(this.entries.keys().next().value!);
  }
}

/** Creates the authenticator; the cache is per instance. */
export function createAuthenticator(options: AuthenticatorOptions): Authenticator {
  const allowed = new Set(options.allowedSubjects);
  const cache = new ReviewCache(
    options.cacheTtlMs ?? 60_000,
    options.cacheSize ?? 256,
    options.now ?? Date.now,
  );

  return {
    async check(authorization) {
      const token = bearerToken(authorization);
      if (typeof token !== 'string') return token;
      const key = createHash('sha256').update(token).digest('hex');
      const cached = cache.get(key);
      if (cached !== undefined) return { ok: true, subject: cached };
      let result: TokenReviewResult;
      try {
        result = await options.review(token, options.audience);
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        return { ok: false, status: 503, reason: `token review failed: ${detail}` };
      }
      const problem = reviewProblem(result, options.audience, allowed);
      if (problem) return problem;
      cache.remember(key, result.username!, token);
      return { ok: true, subject: result.username! };
    },
  };
}

const LONGEST_NAME = 63;
const MD5_HEX_LENGTH = 32;

/**
 * Knative's `kmeta.ChildName(parent, suffix)` (knative.dev/pkg): `parent + suffix`, or with an md5 hash
 * when that exceeds 63 characters. Knative names the per-sender OIDC ServiceAccounts with it.
 */
export function knativeChildName(parent: string, suffix: string): string {
  const head = LONGEST_NAME - MD5_HEX_LENGTH;
  if (parent.length <= LONGEST_NAME - suffix.length) return parent + suffix;
  if (head - suffix.length <= 0) {
    const hash = createHash('md5')
      .update(parent + suffix)
      .digest('hex');
    let name = parent.slice(0, head) + hash;
    if (name.length < LONGEST_NAME) name += suffix.slice(0, LONGEST_NAME - name.length);
    return name.replace(/[^a-zA-Z0-9]+$/, '');
  }
  const hash = createHash('md5').update(parent).digest('hex');
  return parent.slice(0, head - suffix.length) + hash + suffix;
}

/**
 * Username of the OIDC identity Knative Eventing creates for a sender object (knative.dev/eventing
 * `pkg/auth` GetOIDCServiceAccountNameForResource): `<name>-oidc-<group>-<kind>`, lower case.
 */
export function knativeOidcSubject(namespace: string, group: string, kind: string, name: string): string {
  const account = knativeChildName(name, `-oidc-${group}-${kind}`).toLowerCase();
  return `system:serviceaccount:${namespace}:${account}`;
}

/**
 * The senders of the project's manifests (`knative/`): the ApiServerSources `config-restarter-source` and
 * `config-restarter-workloads`, the PingSource `config-restarter-resync` and, in the Broker variant, the
 * Trigger `config-restarter`.
 */
export function defaultAllowedSubjects(namespace: string): string[] {
  return [
    knativeOidcSubject(namespace, 'sources.knative.dev', 'ApiServerSource', 'config-restarter-source'),
    knativeOidcSubject(namespace, 'sources.knative.dev', 'ApiServerSource', 'config-restarter-workloads'),
    knativeOidcSubject(namespace, 'sources.knative.dev', 'PingSource', 'config-restarter-resync'),
    knativeOidcSubject(namespace, 'eventing.knative.dev', 'Trigger', 'config-restarter'),
  ];
}
