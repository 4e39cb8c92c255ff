/**
 * The API call behind sender authentication: a TokenReview (`authentication.k8s.io/v1`). Self-contained
 * so that it can be rewired onto any client: {@link createTokenReviewer} needs only a `post(path, body)`;
 * {@link createKubePost} builds one from a kubeconfig with a hard per-request deadline.
 */
import type { TokenReviewer, TokenReviewResult } from './auth.js';
import { createApiTransport } from './kube.js';
import type { ApiAccess } from './kube-credentials.js';

/** POSTs a JSON body to an API path; resolves with the HTTP status and the parsed answer. */
export type PostJson = (path: string, body: unknown) => Promise<{ status: number; json: unknown }>;

interface TokenReviewStatus {
  status?: {
    authenticated?: boolean;
    user?: { username?: string };
    audiences?: string[];
    error?: string;
  };
  message?: string;
}

/**
 * A {@link TokenReviewer} posting `TokenReview`s through `post`. Needs `create` on
 * `tokenreviews.authentication.k8s.io` (ClusterRole in `knative/components/authentication`). A non-2xx
 * answer rejects: the sender is then answered 503 and retries.
 */
export function createTokenReviewer(post: PostJson): TokenReviewer {
  return async (token, audience) => {
    const { status, json } = await post('/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: [audience] },
    });
    const review = (json ?? {}) as TokenReviewStatus;
    if (status < 200 || status >= 300) {
      throw new Error(`create tokenreviews failed with HTTP ${status}: ${review.message ?? 'no detail'}`);
    }
    return reviewResult(review);
  };
}

/** What the API server's answer says about the token. */
function reviewResult({ status }: TokenReviewStatus): TokenReviewResult {
  return {
    authenticated: status?.authenticated === true,
    username: status?.user?.username,
    audiences: status?.audiences ?? [],
    error: status?.error,
  };
}

/**
 * A {@link PostJson} to the API server of `access` with its credentials (the Authorization header is
 * asked for per request, so rotated ServiceAccount tokens are picked up), through the API module's
 * transport: `timeoutMs` bounds the whole request, connect included.
 */
export function createKubePost(access: ApiAccess, options: { timeoutMs: number }): PostJson {
  const transport = createApiTransport(access, { timeoutMs: options.timeoutMs, maxSockets: 4 });
  return async (path, body) => {
    const { status, json } = await transport.request('POST', path, {
      body: { contentType: 'application/json', payload: body },
    });
    return { status, json };
  };
}
