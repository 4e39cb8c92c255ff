/**
 * The only module that talks to the Kubernetes API server.
 *
 * Requests go through {@link createApiTransport}: a keep-alive agent per user (this client, token-review.ts),
 * a real per-request deadline (connect, TLS and the whole answer: an `AbortSignal`, not a socket idle
 * timeout), an optional caller signal that cancels every call of one event at once, pagination and error
 * mapping. Watches use
 * `@kubernetes/client-node`'s `Watch` on an agent of their own, so a long-lived watch never takes a socket
 * from the patch pool.
 */
/* eslint-disable max-lines, max-lines-per-function, complexity -- the transport, the client and the watch adapter share one closure over the agents and credentials: over the size budgets as one unit */
import http from 'node:http';
import https from 'node:https';
import { Watch } from '@kubernetes/client-node/dist/watch.js';
import type { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_SPECS } from './config-kinds.js';
import type { MergePatch } from './decision-types.js';
import type { ApiAccess } from './kube-credentials.js';
import type { ConfigObject, ConfigRef, KubeObject } from './model.js';
import type { WorkloadKind } from './workload-kinds.js';

/** Options of one call. */
export interface CallOptions {
  /** Cancels the call (e.g. the event it serves has already failed). */
  signal?: AbortSignal | undefined;
}

/** Options of a workload list. */
export interface ListOptions<T> extends CallOptions {
  /** Label selector applied by the API server. */
  labelSelector?: string | undefined;
  /** Turns each object into what the caller keeps; applied page by page so whole objects are dropped early. */
  map: (object: KubeObject) => T;
}

/** A list: what the caller kept, and the resourceVersion to watch from. */
export interface ListResult<T> {
  items: T[];
  resourceVersion: string;
}

/** A change seen by a watch. */
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';

/** Why a watch ended: closed by the server (rewatch), expired (410 Gone: relist), or failed. */
export type WatchEnd = { reason: 'closed' } | { reason: 'expired' } | { reason: 'failed'; error: Error };

/** Options of a workload watch. */
export interface WatchOptions {
  labelSelector?: string | undefined;
  /** Start after this resourceVersion (from a list or an earlier event). */
  resourceVersion: string;
  /** The server closes the watch after this long; the caller watches again from the last version. */
  timeoutSeconds: number;
  onEvent(type: WatchEventType, object: KubeObject): void;
}

/** A running watch. */
export interface WatchHandle {
  /** Settles once when the watch ends. */
  ended: Promise<WatchEnd>;
  stop(): void;
}

/** What the function needs from the API server. Unit tests stub this interface. */
export interface ClusterClient {
  /** Reads a ConfigMap or Secret; undefined when it does not exist. */
  getConfig(ref: ConfigRef, options?: CallOptions): Promise<ConfigObject | undefined>;
  /** Lists ConfigMaps or Secrets of a namespace, or of all namespaces when `namespace` is undefined. */
  listConfigs(
    kind: ConfigKind,
    namespace: string | undefined,
    options?: CallOptions,
  ): Promise<ConfigObject[]>;
  /** Whether the API server serves the kind, from discovery (a 404 there means "not installed"). */
  serves(kind: WorkloadKind, options?: CallOptions): Promise<boolean>;
  /** Lists the workloads of a kind in a namespace (all namespaces when undefined), page by page. */
  listWorkloads<T>(
    kind: WorkloadKind,
    namespace: string | undefined,
    options: ListOptions<T>,
  ): Promise<ListResult<T>>;
  /** Watches the workloads of a kind in a namespace (all namespaces when undefined). */
  watchWorkloads(kind: WorkloadKind, namespace: string | undefined, options: WatchOptions): WatchHandle;
  /** Reads one workload; undefined when it does not exist. */
  getWorkload(
    kind: WorkloadKind,
    namespace: string,
    name: string,
    options?: CallOptions,
  ): Promise<KubeObject | undefined>;
  /** Applies a JSON merge patch; with `dryRun` the server validates it and persists nothing. */
  patchWorkload(
    kind: WorkloadKind,
    namespace: string,
    name: string,
    patch: MergePatch,
    options: CallOptions & { dryRun: boolean },
  ): Promise<KubeObject>;
}

/** An API request that failed, with what was asked so messages can name it. */
export class KubeApiError extends Error {
  constructor(
    /** HTTP status, or 0 when no answer came (connection error, timeout, cancelled). */
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
      `${verb} ${resource}${objectName ? ` "${objectName}"` : ''}${describeNamespace(namespace)}` +
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

/** `in namespace "x"`, `in all namespaces`, or nothing for a cluster-wide request (`''`). */
function describeNamespace(namespace: string | undefined): string {
  if (namespace === undefined) return ' in all namespaces';
  return namespace ? ` in namespace "${namespace}"` : '';
}

/**
 * The field manager of every write (`?fieldManager=`): `metadata.managedFields` then names the function as the
 * owner of exactly the annotations it writes, which GitOps tools can be told to leave alone (README, "GitOps").
 */
export const FIELD_MANAGER = 'config-restarter';

/** Options of {@link createKubeClient}. */
export interface KubeClientOptions {
  /** Deadline of one request in milliseconds (connect, TLS, the whole answer). */
  timeoutMs: number;
  /** Page size of list requests. */
  pageSize?: number;
  /** Sockets kept open to the API server for requests (watches have their own). */
  maxSockets?: number;
  /** Value of the `fieldManager` query parameter of patches. */
  fieldManager?: string;
}

interface ApiStatus {
  message?: string;
  reason?: string;
  code?: number;
}

interface ListResponse {
  items?: KubeObject[];
  metadata?: { continue?: string; resourceVersion?: string };
}

interface Target {
  resource: string;
  namespace: string | undefined;
  name: string | undefined;
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

function workloadPath(kind: WorkloadKind, namespace: string | undefined, name?: string): string {
  const collection = basePath(kind.group, kind.version) + namespaced(namespace, kind.plural);
  return name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`;
}

/** One answer of the API server, whatever its status. */
export interface ApiAnswer {
  status: number;
  /** The parsed JSON body, or undefined when it is none. */
  json: unknown;
  /** The body's start, for messages when it is not JSON. */
  text: string;
}

/** The HTTP exchange with the API server, on one keep-alive agent with the credentials of `access`. */
export interface ApiTransport {
  /**
   * Sends one request with a real deadline (connect, TLS and the whole answer) and the caller's signal.
   * Resolves with any status; rejects only when no complete answer came (the error says why).
   */
  request(
    method: string,
    path: string,
    options?: {
      query?: Record<string, string | undefined>;
      body?: { contentType: string; payload: unknown };
      signal?: AbortSignal | undefined;
    },
  ): Promise<ApiAnswer>;
  /** A fresh agent for long-lived requests (watches), so they never take a socket from the pool. */
  longLivedAgent(): http.Agent;
}

/** Creates the transport: one keep-alive pool per process and purpose. */
export function createApiTransport(
  access: ApiAccess,
  options: { timeoutMs: number; maxSockets?: number },
): ApiTransport {
  const server = access.server.href.replace(/\/$/, '');
  const isHttp = access.server.protocol === 'http:';
  const tls = {
    ca: access.tls.ca,
    cert: access.tls.cert,
    key: access.tls.key,
    rejectUnauthorized: access.tls.rejectUnauthorized,
    ...(access.tls.servername ? { servername: access.tls.servername } : {}),
  };
  const makeAgent = (maxSockets: number): http.Agent =>
    isHttp
      ? new http.Agent({ keepAlive: true, maxSockets })
      : new https.Agent({ keepAlive: true, maxSockets, ...tls });
  const agent = makeAgent(options.maxSockets ?? 8);
  const transport = isHttp ? http : https;

  return {
    longLivedAgent: () => makeAgent(Infinity),
    async request(method, path, { query = {}, body, signal: callSignal } = {}) {
      if (callSignal?.aborted) throw new Error(abortDetail(callSignal));
      const url = new URL(server + path);
      for (const [key, value] of Object.entries(query))
        if (value !== undefined) url.searchParams.set(key, value);
      const payload = body ? Buffer.from(JSON.stringify(body.payload)) : undefined;
      const authorization = await access.authorization();
      const headers: http.OutgoingHttpHeaders = {
        Accept: 'application/json',
        'User-Agent': 'config-restarter',
        ...(authorization ? { Authorization: authorization } : {}),
        ...(body && payload ? { 'Content-Type': body.contentType, 'Content-Length': payload.length } : {}),
      };
      const deadline = AbortSignal.timeout(options.timeoutMs);
      const signal = callSignal ? AbortSignal.any([deadline, callSignal]) : deadline;

      return new Promise((resolve, reject) => {
        let settled = false;
        const settle = (run: () => void): void => {
          if (settled) return;
          settled = true;
          run();
        };
        const failed = (detail: string): void =>
          settle(() =>
            reject(
              new Error(
                !signal.aborted
                  ? detail
                  : deadline.aborted
                    ? `no answer within ${options.timeoutMs} ms`
                    : abortDetail(callSignal ?? deadline),
              ),
            ),
          );
        const request = transport.request(url, { method, headers, agent, signal }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('error', (error) => failed(error.message));
          res.on('close', () => {
            if (!res.complete) failed('connection closed mid-answer');
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            const status = res.statusCode ?? 0;
            settle(() => resolve({ status, json, text: text.slice(0, 300) || res.statusMessage || '' }));
          });
        });
        request.on('error', (error) => failed(error.message));
        request.end(payload);
      });
    },
  };
}

/** Creates the API client: one per process. */
export function createKubeClient(access: ApiAccess, options: KubeClientOptions): ClusterClient {
  const pageSize = options.pageSize ?? 250;
  const fieldManager = options.fieldManager ?? FIELD_MANAGER;
  const server = access.server.href.replace(/\/$/, '');
  const transport = createApiTransport(access, options);
  // Watches hold their socket for minutes: a pool of their own, so they never starve requests.
  const watchAgent = transport.longLivedAgent();

  /** One request; a non-2xx answer or no answer becomes a {@link KubeApiError} naming the request. */
  async function send(
    verb: string,
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    target: Target,
    call: CallOptions,
    body?: { contentType: string; payload: unknown },
  ): Promise<unknown> {
    const fail = (status: number, detail: string): KubeApiError =>
      new KubeApiError(status, verb, target.resource, target.namespace, target.name, detail);
    let answer: ApiAnswer;
    try {
      answer = await transport.request(method, path, { query, body, signal: call.signal });
    } catch (error) {
      throw fail(0, (error as Error).message);
    }
    if (answer.status >= 200 && answer.status < 300) return answer.json;
    throw fail(
      answer.status,
      (answer.json as ApiStatus | undefined)?.message ?? (answer.text || 'no detail'),
    );
  }

  async function list<T>(
    group: string,
    version: string,
    plural: string,
    namespace: string | undefined,
    labelSelector: string | undefined,
    map: (object: KubeObject) => T,
    call: CallOptions,
  ): Promise<ListResult<T>> {
    const target = { resource: resourceName(group, plural), namespace, name: undefined };
    const path = basePath(group, version) + namespaced(namespace, plural);
    const items: T[] = [];
    let resourceVersion = '';
    let token: string | undefined;
    let restarted = false;
    for (;;) {
      try {
        const page = ((await send(
          'list',
          'GET',
          path,
          { limit: String(pageSize), continue: token, labelSelector },
          target,
          call,
        )) ?? {}) as ListResponse;
        for (const object of page.items ?? []) items.push(map(object));
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        token = page.metadata?.continue || undefined;
        if (!token) return { items, resourceVersion };
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

  async function getOrUndefined<T>(run: () => Promise<unknown>): Promise<T | undefined> {
    try {
      return (await run()) as T;
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  // The part of client-node's KubeConfig that Watch uses, over our credentials and watch agent.
  const watchConfig = {
    getCurrentCluster: () => ({ name: 'api', server, skipTLSVerify: !access.tls.rejectUnauthorized }),
    applyToFetchOptions: async () => {
      const authorization = await access.authorization();
      return {
        agent: watchAgent,
        headers: { Accept: 'application/json', ...(authorization ? { Authorization: authorization } : {}) },
      };
    },
  } as unknown as KubeConfig;
  const watcher = new Watch(watchConfig);

  function watchWorkloads(
    kind: WorkloadKind,
    namespace: string | undefined,
    watch: WatchOptions,
  ): WatchHandle {
    let controller: AbortController | undefined;
    let stopped = false;
    let expired = false;
    let resolveEnded: (end: WatchEnd) => void = () => undefined;
    const ended = new Promise<WatchEnd>((resolve) => {
      resolveEnded = resolve;
    });
    const started = watcher.watch(
      workloadPath(kind, namespace),
      {
        resourceVersion: watch.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: watch.timeoutSeconds,
        labelSelector: watch.labelSelector,
      },
      (type: string, object: unknown) => {
        if (type === 'ERROR') {
          // The server reports an expired resourceVersion as a Status object inside the stream.
          const status = object as ApiStatus;
          if (status.code === 410 || status.reason === 'Expired' || status.reason === 'Gone') expired = true;
          return;
        }
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED' || type === 'BOOKMARK') {
          watch.onEvent(type, object as KubeObject);
        }
      },
      (error: unknown) => {
        if (expired) resolveEnded({ reason: 'expired' });
        else if (error && !stopped) {
          const status = (error as { statusCode?: number }).statusCode;
          resolveEnded(status === 410 ? { reason: 'expired' } : { reason: 'failed', error: asError(error) });
        } else resolveEnded({ reason: 'closed' });
      },
    );
    started.then(
      (value) => {
        controller = value;
        if (stopped) controller.abort();
      },
      (error: unknown) => resolveEnded({ reason: 'failed', error: asError(error) }),
    );
    return {
      ended,
      stop() {
        stopped = true;
        controller?.abort();
        resolveEnded({ reason: 'closed' });
      },
    };
  }

  return {
    getConfig(ref, call = {}) {
      const plural = CONFIG_KIND_SPECS[ref.kind].plural;
      return getOrUndefined<ConfigObject>(() =>
        send(
          'get',
          'GET',
          `/api/v1${namespaced(ref.namespace, plural)}/${encodeURIComponent(ref.name)}`,
          {},
          { resource: plural, namespace: ref.namespace, name: ref.name },
          call,
        ),
      );
    },
    async listConfigs(kind, namespace, call = {}) {
      const plural = CONFIG_KIND_SPECS[kind].plural;
      const { items } = await list('', 'v1', plural, namespace, undefined, (o) => o as ConfigObject, call);
      return items;
    },
    async serves(kind, call = {}) {
      const discovery = await getOrUndefined<{ resources?: { name?: string }[] }>(() =>
        send(
          'get',
          'GET',
          basePath(kind.group, kind.version),
          {},
          {
            resource: `discovery of ${kind.group || 'core'}/${kind.version}`,
            namespace: '',
            name: undefined,
          },
          call,
        ),
      );
      return (discovery?.resources ?? []).some((resource) => resource.name === kind.plural);
    },
    listWorkloads(kind, namespace, listOptions) {
      return list(
        kind.group,
        kind.version,
        kind.plural,
        namespace,
        listOptions.labelSelector,
        listOptions.map,
        listOptions,
      );
    },
    watchWorkloads,
    getWorkload(kind, namespace, name, call = {}) {
      return getOrUndefined<KubeObject>(() =>
        send(
          'get',
          'GET',
          workloadPath(kind, namespace, name),
          {},
          { resource: resourceName(kind.group, kind.plural), namespace, name },
          call,
        ),
      );
    },
    async patchWorkload(kind, namespace, name, patch, call) {
      return (await send(
        'patch',
        'PATCH',
        workloadPath(kind, namespace, name),
        { fieldManager, dryRun: call.dryRun ? 'All' : undefined },
        { resource: resourceName(kind.group, kind.plural), namespace, name },
        call,
        { contentType: 'application/merge-patch+json', payload: patch },
      )) as KubeObject;
    },
  };
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(JSON.stringify(error));
}

/** The reason a caller gave when it cancelled a call. */
function abortDetail(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  if (reason instanceof Error && reason.name !== 'AbortError') return `cancelled: ${reason.message}`;
  return typeof reason === 'string' ? `cancelled: ${reason}` : 'cancelled';
}
