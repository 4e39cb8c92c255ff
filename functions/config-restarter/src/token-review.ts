/**
 * The API call behind sender authentication: a TokenReview (`authentication.k8s.io/v1`). Self-contained
 * so that it can be rewired onto any client: {@link createTokenReviewer} needs only a `post(path, body)`;
 * {@link createKubePost} builds one from a kubeconfig with a hard per-request deadline.
 */
import http from 'node:http';
import https from 'node:https';
import type { TokenReviewer } from './auth.js';
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
    return {
      authenticated: review.status?.authenticated === true,
      username: review.status?.user?.username,
      audiences: review.status?.audiences ?? [],
      error: review.status?.error,
    };
  };
}

/**
 * A {@link PostJson} to the API server of `access` with its credentials (the Authorization header is
 * asked for per request, so rotated ServiceAccount tokens are picked up). `timeoutMs` bounds the whole
 * request, connect included.
 */
export function createKubePost(access: ApiAccess, options: { timeoutMs: number }): PostJson {
  const server = access.server;
  const { tls } = access;
  const agent =
    server.protocol === 'http:'
      ? new http.Agent({ keepAlive: true, maxSockets: 4 })
      : new https.Agent({
          keepAlive: true,
          maxSockets: 4,
          ca: tls.ca,
          cert: tls.cert,
          key: tls.key,
          rejectUnauthorized: tls.rejectUnauthorized,
          ...(tls.servername ? { servername: tls.servername } : {}),
        });

  return async (path, body) => {
    const authorization = await access.authorization();
    const payload = Buffer.from(JSON.stringify(body));
    const headers: http.OutgoingHttpHeaders = {
      Accept: 'application/json',
      'Content-Type': 'application/json',
      'Content-Length': payload.length,
      'User-Agent': 'config-restarter',
      ...(authorization ? { Authorization: authorization } : {}),
    };
    const url = new URL(server.href.replace(/\/$/, '') + path);
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise((resolve, reject) => {
      const request = transport.request(url, { method: 'POST', headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          clearTimeout(timer);
          let json: unknown;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      });
      // A deadline for the whole exchange, not a socket idle timeout.
      const timer = setTimeout(
        () => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      request.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      request.end(payload);
    });
  };
}
