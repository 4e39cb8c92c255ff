/**
 * How the function reaches the API server: its address, and per request the agent (TLS, proxy, sockets)
 * and the credential headers.
 *
 * In production there is one path, the in-cluster contract of the kubelet and client-go:
 * `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT`, and the ServiceAccount directory (`token`,
 * `ca.crt`, `namespace`) at {@link SERVICE_ACCOUNT_DIR} or `SERVICE_ACCOUNT_DIR`. The token is read again
 * whenever the file changes (the kubelet rotates it by swapping the directory's `..data` link). This path
 * loads nothing of `@kubernetes/client-node`: its `KubeConfig` module pulls in the whole generated API
 * model; client-node costs +56 MB of resident memory (BENCHMARKS.md, "Where the time and the memory go").
 *
 * A kubeconfig (`KUBECONFIG` set, or `~/.kube/config` outside a pod: laptop use) goes to client-node's own
 * `KubeConfig`, imported only then. It also builds the agent of every request, so `proxy-url`, TLS
 * settings, exec-plugin tokens and client certificates (run again when they expire) and auth providers all
 * work as client-node implements them.
 */
import { readFileSync, statSync } from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import { isIPv6 } from 'node:net';
import path from 'node:path';

/** Where a pod finds its ServiceAccount credentials (kubelet's projected volume). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** What one request needs besides method and path. */
export interface Connection {
  /** The agent to send it with: TLS settings, proxy, socket pool. */
  agent: http.Agent;
  /** Credential headers (`Authorization`, impersonation). */
  headers: Record<string, string>;
}

/** Where the API server is and how to talk to it. */
export interface ApiAccess {
  readonly server: URL;
  /** The namespace the credentials belong to (in a pod: the ServiceAccount's; else the context's). */
  readonly namespace: string | undefined;
  /** Where the credentials came from, for the start-up log line. */
  readonly source: string;
  /**
   * A pool of requests. The returned function gives the connection of the next request; credentials are
   * asked for per request, so a rotated token or a refreshed client certificate is used from then on.
   * @param maxSockets - sockets kept open for this pool (`Infinity` for watches)
   */
  pool(maxSockets: number): () => Promise<Connection>;
}

/** The token file's content, read again whenever the file (behind the kubelet's symlinks) changes. */
function rotatingToken(file: string): () => string {
  let seen: { version: string; token: string } | undefined;
  return () => {
    const stat = statSync(file);
    const version = `${stat.ino}:${stat.mtimeMs}:${stat.size}`;
    if (seen?.version !== version) seen = { version, token: readFileSync(file, 'utf8').trim() };
    return seen.token;
  };
}

function readOptional(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The in-cluster contract, as client-go's `rest.InClusterConfig` reads it. */
function inCluster(host: string, env: NodeJS.ProcessEnv): ApiAccess {
  const dir = env.SERVICE_ACCOUNT_DIR || SERVICE_ACCOUNT_DIR;
  const port = env.KUBERNETES_SERVICE_PORT || '443';
  const ca = readFileSync(path.join(dir, 'ca.crt'));
  const token = rotatingToken(path.join(dir, 'token'));
  token(); // a missing token fails the start, not the first event
  return {
    server: new URL(`https://${isIPv6(host) ? `[${host}]` : host}:${port}`),
    namespace: readOptional(path.join(dir, 'namespace')),
    source: `in-cluster ServiceAccount (${dir})`,
    pool(maxSockets) {
      const agent = new https.Agent({ keepAlive: true, maxSockets, ca });
      return () => Promise.resolve({ agent, headers: { Authorization: `Bearer ${token()}` } });
    },
  };
}

/** Kubeconfig files through client-node's `KubeConfig`: laptop use, never loaded in a pod. */
async function fromKubeconfig(env: NodeJS.ProcessEnv): Promise<ApiAccess> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  const files = (env.KUBECONFIG ?? '').split(path.delimiter).filter((file) => file.length > 0);
  const [first, ...rest] = files;
  if (first === undefined) {
    kc.loadFromDefault();
  } else {
    // loadFromDefault's own merge of a multi-file KUBECONFIG, over the environment given here.
    kc.loadFromFile(first);
    for (const file of rest) {
      const next = new KubeConfig();
      next.loadFromFile(file);
      kc.mergeConfig(next);
    }
  }
  const cluster = kc.getCurrentCluster();
  const where = files.length > 0 ? files.join(path.delimiter) : '~/.kube/config';
  if (!cluster) throw new Error(`kubeconfig ${where} has no current context with a cluster`);
  return {
    server: new URL(cluster.server),
    namespace: kc.getContextObject(kc.getCurrentContext())?.namespace || undefined,
    source: `kubeconfig ${where}, context ${kc.getCurrentContext()}`,
    // client-node makes a new agent per request (as its own API clients do): proxy-url, TLS and the
    // current exec-plugin certificate are applied by it; there is no socket pool to size.
    pool: () => async () => {
      const options: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(options);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(options.headers ?? {})) {
        if (value !== undefined) headers[name] = String(value);
      }
      if (options.auth) headers.Authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
      return { agent: options.agent as http.Agent, headers };
    },
  };
}

/**
 * Loads the API access: the in-cluster contract when `KUBERNETES_SERVICE_HOST` is set and `KUBECONFIG` is
 * not (a pod), otherwise a kubeconfig (`KUBECONFIG`, or `~/.kube/config`).
 */
export async function loadApiAccess(env: NodeJS.ProcessEnv = process.env): Promise<ApiAccess> {
  const host = env.KUBERNETES_SERVICE_HOST;
  if (host && !env.KUBECONFIG) return inCluster(host, env);
  return fromKubeconfig(env);
}
