/**
 * How the function reaches the API server: the server URL, TLS settings and an Authorization header.
 *
 * Inside a pod it uses the ServiceAccount files (re-reading the token, which the kubelet rotates), as
 * client-go does. Outside, it reads `KUBECONFIG` / `~/.kube/config` (the same merge rules as kubectl:
 * first file wins per name) and understands static credentials: tokens, token files, client
 * certificates, basic auth. Kubeconfigs that need an exec plugin or an auth provider are handed to
 * `@kubernetes/client-node`'s `KubeConfig`, imported only then: that module pulls in the whole generated
 * API model (about 75 MB of resident memory) which the function otherwise never needs.
 */
/* eslint-disable max-depth, max-lines-per-function, complexity -- fromKubeconfig follows kubectl's merge and precedence rules in one pass */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';

/** Where a pod finds its ServiceAccount credentials. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/** How long a token read from a file is reused before the file is read again. */
const TOKEN_FILE_TTL_MS = 60_000;

/** TLS settings of the connection to the API server. */
export interface TlsSettings {
  ca?: string | Buffer | undefined;
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
  /** False only when the kubeconfig says `insecure-skip-tls-verify: true`. */
  rejectUnauthorized: boolean;
  servername?: string | undefined;
}

/** Everything needed to send a request to the API server. */
export interface ApiAccess {
  server: URL;
  tls: TlsSettings;
  /** The namespace of the current context (in a pod: the ServiceAccount's). */
  namespace: string | undefined;
  /** The `Authorization` header value for the next request (tokens are re-read when they rotate). */
  authorization(): Promise<string | undefined>;
  /** Where the credentials came from, for the start-up log line. */
  source: string;
}

interface NamedCluster {
  name?: string;
  cluster?: {
    server?: string;
    'certificate-authority'?: string;
    'certificate-authority-data'?: string;
    'insecure-skip-tls-verify'?: boolean;
    'tls-server-name'?: string;
    'proxy-url'?: string;
  };
}
interface NamedUser {
  name?: string;
  user?: {
    token?: string;
    tokenFile?: string;
    'client-certificate'?: string;
    'client-certificate-data'?: string;
    'client-key'?: string;
    'client-key-data'?: string;
    username?: string;
    password?: string;
    exec?: unknown;
    'auth-provider'?: unknown;
  };
}
interface NamedContext {
  name?: string;
  context?: { cluster?: string; user?: string; namespace?: string };
}
interface KubeconfigFile {
  'current-context'?: string;
  clusters?: NamedCluster[];
  users?: NamedUser[];
  contexts?: NamedContext[];
}

/** Reads a file's token at most once per {@link TOKEN_FILE_TTL_MS}. */
function tokenFromFile(file: string): () => Promise<string> {
  let cached: { token: string; readAt: number } | undefined;
  return () => {
    const now = Date.now();
    if (!cached || now - cached.readAt > TOKEN_FILE_TTL_MS) {
      cached = { token: readFileSync(file, 'utf8').trim(), readAt: now };
    }
    return Promise.resolve(`Bearer ${cached.token}`);
  };
}

/** The in-cluster ServiceAccount, as `KubeConfig.loadFromCluster` reads it. */
function inCluster(env: NodeJS.ProcessEnv, dir: string): ApiAccess {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = env.KUBERNETES_SERVICE_PORT ?? '443';
  const server = new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`);
  let namespace: string | undefined;
  try {
    namespace = readFileSync(path.join(dir, 'namespace'), 'utf8').trim() || undefined;
  } catch {
    namespace = undefined;
  }
  return {
    server,
    tls: { ca: readFileSync(path.join(dir, 'ca.crt')), rejectUnauthorized: true },
    namespace,
    authorization: tokenFromFile(path.join(dir, 'token')),
    source: 'in-cluster ServiceAccount',
  };
}

/** Merges kubeconfig files like kubectl: the first file to name a cluster, user or context wins. */
function mergeKubeconfigs(files: string[]): { config: KubeconfigFile; dirOf: Map<object, string> } {
  const config: Required<KubeconfigFile> = { 'current-context': '', clusters: [], users: [], contexts: [] };
  const dirOf = new Map<object, string>();
  for (const file of files) {
    let parsed: KubeconfigFile;
    try {
      parsed = yaml.load(readFileSync(file, 'utf8')) ?? {};
    } catch (error) {
      throw new Error(`cannot read kubeconfig ${file}: ${(error as Error).message}`);
    }
    config['current-context'] ||= parsed['current-context'] ?? '';
    for (const key of ['clusters', 'users', 'contexts'] as const) {
      for (const entry of parsed[key] ?? []) {
        const list = config[key] as { name?: string }[];
        if (list.some((existing) => existing.name === entry.name)) continue;
        list.push(entry);
        dirOf.set(entry, path.dirname(path.resolve(file)));
      }
    }
  }
  return { config, dirOf };
}

/** Reads `*-data` (base64) or a file path relative to the kubeconfig that named it. */
function material(data: string | undefined, file: string | undefined, dir: string): Buffer | undefined {
  if (data) return Buffer.from(data, 'base64');
  if (file) return readFileSync(path.resolve(dir, file));
  return undefined;
}

/** Credentials from kubeconfig files; exec plugins and auth providers go through client-node. */
async function fromKubeconfig(env: NodeJS.ProcessEnv): Promise<ApiAccess> {
  const files = (env.KUBECONFIG || path.join(os.homedir(), '.kube', 'config'))
    .split(path.delimiter)
    .filter((file) => file.length > 0);
  const { config, dirOf } = mergeKubeconfigs(files);
  const contextName = config['current-context'];
  const context = config.contexts?.find((entry) => entry.name === contextName);
  if (!context?.context) throw new Error(`kubeconfig ${files.join(path.delimiter)} has no current context`);
  const namedCluster = config.clusters?.find((entry) => entry.name === context.context?.cluster);
  const cluster = namedCluster?.cluster;
  if (!namedCluster || !cluster?.server) {
    throw new Error(`kubeconfig context "${contextName}" names no cluster with a server`);
  }
  const namedUser = config.users?.find((entry) => entry.name === context.context?.user);
  const user = namedUser?.user ?? {};
  const source = `kubeconfig ${files.join(path.delimiter)}, context ${contextName}`;
  if (user.exec || user['auth-provider'] || cluster['proxy-url']) return viaClientNode(env, source);

  const clusterDir = dirOf.get(namedCluster) ?? process.cwd();
  const userDir = (namedUser && dirOf.get(namedUser)) ?? process.cwd();
  let authorization: () => Promise<string | undefined> = () => Promise.resolve(undefined);
  if (user.token) {
    const header = `Bearer ${user.token}`;
    authorization = () => Promise.resolve(header);
  } else if (user.tokenFile) {
    authorization = tokenFromFile(path.resolve(userDir, user.tokenFile));
  } else if (user.username !== undefined && user.password !== undefined) {
    const header = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
    authorization = () => Promise.resolve(header);
  }
  return {
    server: new URL(cluster.server),
    tls: {
      ca: material(cluster['certificate-authority-data'], cluster['certificate-authority'], clusterDir),
      cert: material(user['client-certificate-data'], user['client-certificate'], userDir),
      key: material(user['client-key-data'], user['client-key'], userDir),
      rejectUnauthorized: cluster['insecure-skip-tls-verify'] !== true,
      servername: cluster['tls-server-name'],
    },
    namespace: context.context.namespace || undefined,
    authorization,
    source,
  };
}

/** Kubeconfigs with exec plugins or auth providers: client-node runs the plugin and caches its token. */
async function viaClientNode(env: NodeJS.ProcessEnv, source: string): Promise<ApiAccess> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  if (env.KUBECONFIG) kc.loadFromFile(env.KUBECONFIG.split(path.delimiter)[0] ?? env.KUBECONFIG);
  else kc.loadFromDefault();
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`${source}: no current cluster`);
  const probe: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean } = {};
  await kc.applyToHTTPSOptions(probe);
  return {
    server: new URL(cluster.server),
    tls: {
      ca: probe.ca,
      cert: probe.cert,
      key: probe.key,
      rejectUnauthorized: probe.rejectUnauthorized !== false,
      servername: cluster.tlsServerName,
    },
    namespace: kc.getContextObject(kc.getCurrentContext())?.namespace ?? undefined,
    async authorization() {
      const options: { headers?: Record<string, unknown> } = {};
      await kc.applyToHTTPSOptions(options);
      const header = options.headers?.Authorization ?? options.headers?.authorization;
      return typeof header === 'string' ? header : undefined;
    },
    source: `${source} (credential plugin)`,
  };
}

/**
 * Loads credentials the way a platform engineer expects: the in-cluster ServiceAccount inside a pod,
 * otherwise `KUBECONFIG` or `~/.kube/config`.
 * @param serviceAccountDir - where the ServiceAccount files are (tests point it elsewhere)
 */
export async function loadApiAccess(
  env: NodeJS.ProcessEnv = process.env,
  serviceAccountDir = SERVICE_ACCOUNT_DIR,
): Promise<ApiAccess> {
  if (env.KUBERNETES_SERVICE_HOST && !env.KUBECONFIG) return inCluster(env, serviceAccountDir);
  return fromKubeconfig(env);
}
