/**
 * The only module that talks to the Kubernetes API server.
 *
 * `@kubernetes/client-node` loads the kubeconfig (in-cluster ServiceAccount, KUBECONFIG or
 * ~/.kube/config) and produces the authentication headers for every request (it re-reads rotated
 * ServiceAccount tokens). Its generated clients build a new TLS agent per request, so requests go
 * through one keep-alive agent per process here instead, with a timeout, pagination and error
 * mapping that the rest of the function relies on.
 */
import http from 'node:http';
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import type { ConfigKind } from './config.js';
import type { MergePatch } from './decision-types.js';
import type { ConfigObject, ConfigRef, KubeObject } from './model.js';
import type { WorkloadKind } from './workload-kinds.js';

/** What the function needs from the API server. Unit tests stub this interface. */
export interface ClusterClient {
  /** Reads a ConfigMap or Secret; undefined when it does not exist. */
  getConfig(ref: ConfigRef): Promise<ConfigObject | undefined>;
  /** Lists ConfigMaps or Secrets of a namespace, or of all namespaces when `namespace` is undefined. */
  listConfigs(kind: ConfigKind, namespace: string | undefined): Promise<ConfigObject[]>;
  /**
   * Lists the workloads of a kind in a namespace, filtered by the API server with `labelSelector` when
   * given; undefined when the API does not serve the kind.
   */
  listWorkloads(
    kind: WorkloadKind,
    namespace: string,
    labelSelector?: string,
  ): Promise<KubeObject[] | undefined>;
  /** Reads one workload; undefined when it does not exist. */
  getWorkload(kind: WorkloadKind, namespace: string, name: string): Promise<KubeObject | undefined>;
  /** Applies a JSON merge patch; with `dryRun` the server validates it and persists nothing. */
  patchWorkload(
    kind: WorkloadKind,
    namespace: string,
    name: string,
    patch: MergePatch,
    options: { dryRun: boolean },
  ): Promise<KubeObject>;
}

/** An API request that failed, with what was asked so messages can name it. */
export class KubeApiError extends Error {
  constructor(
    /** HTTP status, or 0 when no answer came (connection error, timeout). */
    readonly status: number,
    readonly verb: string,
    /** `plural[.group]`, as in RBAC rules. */
    readonly resource: string,
    readonly namespace: string | undefined,
    readonly objectName: string | undefined,
    /** The API server's message, or the network error's. */
    readonly detail: string,
  ) {
    super(
      `${verb} ${resource}${objectName ? ` "${objectName}"` : ''}${namespace ? ` in namespace "${namespace}"` : ' in all namespaces'}` +
        ` failed${status ? ` with HTTP ${status}` : ''}: ${detail}`,
    );
    this.name = 'KubeApiError';
  }

  /** Worth retrying later: rate limited, server errors, timeouts, connection errors. */
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }

  /** Denied by RBAC. */
  get forbidden(): boolean {
    return this.status === 403;
  }
}

/** Options of {@link createKubeClient}. */
export interface KubeClientOptions {
  /** Timeout of one request in milliseconds. */
  timeoutMs: number;
  /** Page size of list requests. */
  pageSize?: number;
  /** Sockets kept open to the API server. */
  maxSockets?: number;
  /** Value of the `fieldManager` query parameter of patches. */
  fieldManager?: string;
}

/**
 * Loads credentials the way a platform engineer expects: the in-cluster ServiceAccount inside a pod,
 * otherwise `KUBECONFIG` or `~/.kube/config`.
 */
export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (env.KUBERNETES_SERVICE_HOST && !env.KUBECONFIG) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** The namespace of the current kubeconfig context (in a pod: the ServiceAccount's namespace). */
export function currentNamespace(kc: KubeConfig): string | undefined {
  return kc.getContextObject(kc.getCurrentContext())?.namespace ?? undefined;
}

interface ApiStatus {
  message?: string;
  reason?: string;
}

interface ListResponse<T> {
  items?: T[];
  metadata?: { continue?: string };
}

function resourceName(group: string, plural: string): string {
  return group ? `${plural}.${group}` : plural;
}

function basePath(group: string, version: string): string {
  return group ? `/apis/${group}/${version}` : `/api/${version}`;
}

function namespaced(namespace: string | undefined, plural: string): string {
  return namespace ? `/namespaces/${encodeURIComponent(namespace)}/${plural}` : `/${plural}`;
}

/** Creates the API client: one per process. */
export function createKubeClient(kc: KubeConfig, options: KubeClientOptions): ClusterClient {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const server = new URL(cluster.server);
  const pageSize = options.pageSize ?? 250;
  const fieldManager = options.fieldManager ?? 'config-restarter';
  let agent: http.Agent | undefined;

  async function send(
    verb: string,
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    target: { resource: string; namespace: string | undefined; name: string | undefined },
    body?: { contentType: string; payload: unknown },
  ): Promise<{ status: number; json: unknown }> {
    // Headers (and a rotated token) come from client-node; the agent is ours and long-lived.
    const auth: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(auth);
    if (!agent) {
      const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 8 };
      agent =
        server.protocol === 'http:'
          ? new http.Agent(agentOptions)
          : new https.Agent({
              ...agentOptions,
              ca: auth.ca,
              cert: auth.cert,
              key: auth.key,
              ...(auth.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
              ...(auth.servername ? { servername: auth.servername } : {}),
            });
    }
    const url = new URL(server.href.replace(/\/$/, '') + path);
    for (const [key, value] of Object.entries(query))
      if (value !== undefined) url.searchParams.set(key, value);
    const payload = body ? Buffer.from(JSON.stringify(body.payload)) : undefined;
    const headers: http.OutgoingHttpHeaders = {
      ...(auth.headers as http.OutgoingHttpHeaders | undefined),
      Accept: 'application/json',
      'User-Agent': 'config-restarter',
      ...(body && payload ? { 'Content-Type': body.contentType, 'Content-Length': payload.length } : {}),
    };
    if (auth.auth) headers.Authorization = `Basic ${Buffer.from(auth.auth).toString('base64')}`;
    const transport = url.protocol === 'http:' ? http : https;

    const fail = (status: number, detail: string): KubeApiError =>
      new KubeApiError(status, verb, target.resource, target.namespace, target.name, detail);

    return new Promise((resolve, reject) => {
      const request = transport.request(
        url,
        { method, headers, agent, timeout: options.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', (error) => reject(fail(0, error.message)));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            if (status >= 200 && status < 300) resolve({ status, json });
            else {
              const apiStatus = (json ?? {}) as ApiStatus;
              reject(
                fail(status, apiStatus.message ?? (text.slice(0, 300) || res.statusMessage || 'no detail')),
              );
            }
          });
        },
      );
      request.on('timeout', () => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)));
      request.on('error', (error) => reject(fail(0, error.message)));
      if (payload) request.write(payload);
      request.end();
    });
  }

  async function list<T>(
    group: string,
    version: string,
    plural: string,
    namespace: string | undefined,
    labelSelector?: string,
  ): Promise<T[]> {
    const target = { resource: resourceName(group, plural), namespace, name: undefined };
    const path = basePath(group, version) + namespaced(namespace, plural);
    const items: T[] = [];
    let token: string | undefined;
    let restarted = false;
    for (;;) {
      try {
        const { json } = await send(
          'list',
          'GET',
          path,
          { limit: String(pageSize), continue: token, labelSelector },
          target,
        );
        const page = (json ?? {}) as ListResponse<T>;
        items.push(...(page.items ?? []));
        token = page.metadata?.continue || undefined;
        if (!token) return items;
      } catch (error) {
        // An expired continue token (410): start the list again once, from a fresh snapshot.
        if (error instanceof KubeApiError && error.status === 410 && token && !restarted) {
          restarted = true;
          token = undefined;
          items.length = 0;
          continue;
        }
        throw error;
      }
    }
  }

  async function getOrUndefined<T>(run: () => Promise<{ json: unknown }>): Promise<T | undefined> {
    try {
      return (await run()).json as T;
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  const configPlural = (kind: ConfigKind): string => (kind === 'ConfigMap' ? 'configmaps' : 'secrets');

  return {
    getConfig(ref) {
      const plural = configPlural(ref.kind);
      return getOrUndefined<ConfigObject>(() =>
        send(
          'get',
          'GET',
          `/api/v1${namespaced(ref.namespace, plural)}/${encodeURIComponent(ref.name)}`,
          {},
          {
            resource: plural,
            namespace: ref.namespace,
            name: ref.name,
          },
        ),
      );
    },
    listConfigs(kind, namespace) {
      return list<ConfigObject>('', 'v1', configPlural(kind), namespace);
    },
    async listWorkloads(kind, namespace, labelSelector) {
      try {
        return await list<KubeObject>(kind.group, kind.version, kind.plural, namespace, labelSelector);
      } catch (error) {
        // 404 on a list means the API does not serve the kind (e.g. Knative Serving not installed).
        if (error instanceof KubeApiError && error.status === 404) return undefined;
        throw error;
      }
    },
    getWorkload(kind, namespace, name) {
      return getOrUndefined<KubeObject>(() =>
        send(
          'get',
          'GET',
          `${basePath(kind.group, kind.version)}${namespaced(namespace, kind.plural)}/${encodeURIComponent(name)}`,
          {},
          { resource: resourceName(kind.group, kind.plural), namespace, name },
        ),
      );
    },
    async patchWorkload(kind, namespace, name, patch, { dryRun }) {
      const { json } = await send(
        'patch',
        'PATCH',
        `${basePath(kind.group, kind.version)}${namespaced(namespace, kind.plural)}/${encodeURIComponent(name)}`,
        { fieldManager, dryRun: dryRun ? 'All' : undefined },
        { resource: resourceName(kind.group, kind.plural), namespace, name },
        { contentType: 'application/merge-patch+json', payload: patch },
      );
      return json as KubeObject;
    },
  };
}
