import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import path from 'node:path';
import yaml from 'js-yaml';

/** Everything needed to talk to the apiserver as one identity (bearer token). */
export interface KubeTarget {
  /** e.g. `https://127.0.0.1:41234` */
  server: string;
  /** Base64 of the PEM CA bundle (kubeconfig `certificate-authority-data`). */
  caData: string;
  /** Bearer token. */
  token: string;
}

/** Input of {@link writeKubeconfig}. */
export interface KubeconfigSpec extends KubeTarget {
  /** Default namespace of the context. */
  namespace?: string;
  /** Name of the cluster/user/context entries (default `local`). */
  name?: string;
}

/** Response of {@link kubeRequest}: parsed JSON when the body is JSON, else the raw text. */
export interface KubeResponse<T = unknown> {
  status: number;
  body: T;
}

/** Error for a non-2xx answer; `body` holds the apiserver's Status object when there is one. */
export class KubeRequestError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    method: string,
    urlPath: string,
  ) {
    const message =
      typeof body === 'object' && body !== null && 'message' in body ? String(body.message) : String(body);
    super(`${method} ${urlPath} -> ${status}: ${message}`);
    this.name = 'KubeRequestError';
  }
}

/**
 * A keep-alive HTTPS agent trusting the target's CA: pass it to {@link kubeRequest} to reuse connections
 * when sending many requests (as a client library would).
 */
export function keepAliveAgent(target: KubeTarget, maxSockets = 16): Agent {
  return new Agent({ keepAlive: true, maxSockets, ca: Buffer.from(target.caData, 'base64') });
}

/**
 * One HTTPS request to the apiserver with the target's token and CA. Rejects with {@link KubeRequestError} on a
 * non-2xx status unless `allowStatus` lists it. Objects are sent as JSON unless `contentType` says otherwise.
 */
export function kubeRequest<T = unknown>(
  target: KubeTarget,
  method: string,
  urlPath: string,
  body?: unknown,
  options: { contentType?: string; allowStatus?: number[]; timeoutMs?: number; agent?: Agent } = {},
): Promise<KubeResponse<T>> {
  const url = new URL(urlPath, target.server);
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: Buffer.from(target.caData, 'base64'),
        ...(options.agent ? { agent: options.agent } : {}),
        headers: {
          Authorization: `Bearer ${target.token}`,
          Accept: 'application/json',
          ...(payload === undefined
            ? {}
            : {
                'Content-Type': options.contentType ?? 'application/json',
                'Content-Length': Buffer.byteLength(payload),
              }),
        },
        timeout: options.timeoutMs ?? 15_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          if ((res.headers['content-type'] ?? '').includes('json')) {
            try {
              parsed = JSON.parse(text);
            } catch {
              // Keep the raw text: a truncated body is still useful in an error message.
            }
          }
          const status = res.statusCode ?? 0;
          if ((status >= 200 && status < 300) || options.allowStatus?.includes(status)) {
            resolve({ status, body: parsed as T });
          } else {
            reject(new KubeRequestError(status, parsed, method, urlPath));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string; namespace?: string } }[];
  clusters?: { name: string; cluster: { server: string; 'certificate-authority-data'?: string } }[];
  users?: { name: string; user: { token?: string } }[];
}

/**
 * Reads a token kubeconfig as written by {@link writeKubeconfig} (current context, inline CA data, bearer token).
 */
export function readKubeconfig(file: string): KubeconfigSpec {
  const config = yaml.load(readFileSync(file, 'utf8')) as KubeconfigFile;
  const contextName = config['current-context'];
  const context = config.contexts?.find((c) => c.name === contextName)?.context;
  const cluster = config.clusters?.find((c) => c.name === context?.cluster)?.cluster;
  const user = config.users?.find((u) => u.name === context?.user)?.user;
  if (!context || !cluster?.server || !cluster['certificate-authority-data'] || !user?.token) {
    throw new Error(`${file}: expected a current context with server, certificate-authority-data and token`);
  }
  return {
    server: cluster.server,
    caData: cluster['certificate-authority-data'],
    token: user.token,
    namespace: context.namespace,
    name: contextName,
  };
}

/** Writes a kubeconfig (mode 0600) with one cluster, one token user and one context, and makes it current. */
export function writeKubeconfig(file: string, spec: KubeconfigSpec): void {
  const name = spec.name ?? 'local';
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    preferences: {},
    clusters: [{ name, cluster: { server: spec.server, 'certificate-authority-data': spec.caData } }],
    users: [{ name, user: { token: spec.token } }],
    contexts: [
      {
        name,
        context: { cluster: name, user: name, ...(spec.namespace ? { namespace: spec.namespace } : {}) },
      },
    ],
    'current-context': name,
  };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, yaml.dump(config, { lineWidth: -1 }), { mode: 0o600 });
}

/**
 * Mints a bound token for an existing ServiceAccount with the TokenRequest API
 * (`POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`), authenticated with the admin kubeconfig.
 * The token authenticates as `system:serviceaccount:<ns>:<name>` (groups `system:serviceaccounts` and
 * `system:serviceaccounts:<ns>`), so it carries exactly the RBAC granted to that ServiceAccount.
 * The apiserver enforces a minimum of 600 seconds.
 */
export async function createServiceAccountToken(
  adminKubeconfigPath: string,
  namespace: string,
  serviceAccount: string,
  expirationSeconds = 3600,
): Promise<string> {
  const admin = readKubeconfig(adminKubeconfigPath);
  const { body } = await kubeRequest<{ status: { token: string } }>(
    admin,
    'POST',
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
  );
  return body.status.token;
}

/**
 * Writes a kubeconfig that acts as the given ServiceAccount (token from {@link createServiceAccountToken}),
 * defaulting to its namespace. Returns the token.
 */
export async function writeServiceAccountKubeconfig(
  adminKubeconfigPath: string,
  file: string,
  namespace: string,
  serviceAccount: string,
  expirationSeconds = 3600,
): Promise<string> {
  const admin = readKubeconfig(adminKubeconfigPath);
  const token = await createServiceAccountToken(
    adminKubeconfigPath,
    namespace,
    serviceAccount,
    expirationSeconds,
  );
  writeKubeconfig(file, {
    server: admin.server,
    caData: admin.caData,
    token,
    namespace,
    name: serviceAccount,
  });
  return token;
}

/** The identity the apiserver sees for `target` (SelfSubjectReview). */
export async function whoAmI(target: KubeTarget): Promise<{ username: string; groups: string[] }> {
  const { body } = await kubeRequest<{ status: { userInfo: { username: string; groups?: string[] } } }>(
    target,
    'POST',
    '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  );
  return { username: body.status.userInfo.username, groups: body.status.userInfo.groups ?? [] };
}
