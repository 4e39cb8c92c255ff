/* eslint max-lines: ["error", 320] -- the one module that talks to the API server holds every call it makes */
/**
 * The only module that talks to the Kubernetes API server: the calls the function makes (reads, paged
 * lists, watches, merge patches, Events), each mapped to a {@link KubeApiError} that names the request when it
 * fails. The bytes travel through kube-transport.ts (deadlines, cancellation, socket pools) with the
 * credentials of kube-credentials.ts; watches are read by kube-watch.ts; paths come from kube-paths.ts.
 */
import { ApiRecovery, unavailable } from './api-recovery.js';
import { startWatch, type WatchEventType, type WatchHandle } from './kube-watch.js';
import { listAll, type Page } from './kube-list.js';
import { basePath, configCall, workloadCall, type Target } from './kube-paths.js';
import { createApiTransport, type ApiAnswer, type ApiTransport, type Query } from './kube-transport.js';
import type { ConfigKind } from './config.js';
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

export type { WatchEventType, WatchHandle } from './kube-watch.js';

/** Options of a workload watch. */
export interface WatchOptions {
  labelSelector?: string | undefined;
  /** Start after this resourceVersion (from a list or an earlier event). */
  resourceVersion: string;
  /** The server closes the watch after this long; the caller watches again from the last version. */
  timeoutSeconds: number;
  onEvent(type: WatchEventType, object: KubeObject): void;
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
  /** Creates a core v1 Event (workload-events.ts builds it) in its namespace. */
  createEvent(event: KubeObject & { metadata: { namespace: string } }, options?: CallOptions): Promise<void>;
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
    /** A 403 of an API server that was unavailable moments ago: part of the outage (see api-recovery.ts). */
    readonly recovering = false,
  ) {
    super(
      `${verb} ${resource}${objectName ? ` "${objectName}"` : ''}${describeNamespace(namespace)}` +
        ` failed${status ? ` with HTTP ${status}` : ''}: ${detail}`,
    );
    this.name = 'KubeApiError';
  }

  /** Worth retrying later: rate limited, server errors, timeouts, connection errors. */
  get transient(): boolean {
    return unavailable(this.status) || this.recovering;
  }

  /** Denied by RBAC. */
  get forbidden(): boolean {
    return this.status === 403 && !this.recovering;
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
}

/** One API request. */
interface Call extends Target {
  verb: 'get' | 'list' | 'patch' | 'create';
  path: string;
  query?: Query;
  body?: { contentType: string; payload: unknown };
}

const METHODS = { get: 'GET', list: 'GET', patch: 'PATCH', create: 'POST' } as const;

/** The API client over one {@link ApiAccess}. */
class KubeClient implements ClusterClient {
  private readonly transport: ApiTransport;
  private readonly pageSize: number;
  private readonly fieldManager: string;
  private readonly recovery: ApiRecovery;

  constructor(access: ApiAccess, options: KubeClientOptions) {
    this.recovery = new ApiRecovery();
    this.transport = createApiTransport(access, options);
    this.pageSize = options.pageSize ?? 250;
    this.fieldManager = options.fieldManager ?? FIELD_MANAGER;
  }

  getConfig(ref: ConfigRef, options: CallOptions = {}): Promise<ConfigObject | undefined> {
    return this.getOrUndefined<ConfigObject>(configCall(ref.kind, ref.namespace, ref.name), options);
  }

  async listConfigs(
    kind: ConfigKind,
    namespace: string | undefined,
    options: CallOptions = {},
  ): Promise<ConfigObject[]> {
    return (await this.list(configCall(kind, namespace), undefined, (o) => o as ConfigObject, options)).items;
  }

  async serves(kind: WorkloadKind, options: CallOptions = {}): Promise<boolean> {
    const resource = `discovery of ${kind.group || 'core'}/${kind.version}`;
    const discovery = await this.getOrUndefined<{ resources?: { name?: string }[] }>(
      { path: basePath(kind.group, kind.version), resource, namespace: '' },
      options,
    );
    return (discovery?.resources ?? []).some((entry) => entry.name === kind.plural);
  }

  listWorkloads<T>(
    kind: WorkloadKind,
    namespace: string | undefined,
    options: ListOptions<T>,
  ): Promise<ListResult<T>> {
    return this.list(workloadCall(kind, namespace), options.labelSelector, options.map, options);
  }

  watchWorkloads(kind: WorkloadKind, namespace: string | undefined, watch: WatchOptions): WatchHandle {
    const { path, resource } = workloadCall(kind, namespace);
    return startWatch({
      open: (query, signal) => this.transport.stream(path, query, signal),
      query: {
        watch: '1',
        resourceVersion: watch.resourceVersion,
        allowWatchBookmarks: 'true',
        timeoutSeconds: String(watch.timeoutSeconds),
        labelSelector: watch.labelSelector,
      },
      timeoutSeconds: watch.timeoutSeconds,
      onEvent: (type, object) => watch.onEvent(type, object),
      failure: (status, detail) => {
        this.recovery.saw(status);
        return new KubeApiError(status, 'watch', resource, namespace, undefined, detail);
      },
    });
  }

  getWorkload(
    kind: WorkloadKind,
    namespace: string,
    name: string,
    options: CallOptions = {},
  ): Promise<KubeObject | undefined> {
    return this.getOrUndefined<KubeObject>(workloadCall(kind, namespace, name), options);
  }

  async patchWorkload(
    kind: WorkloadKind,
    namespace: string,
    name: string,
    patch: MergePatch,
    options: CallOptions & { dryRun: boolean },
  ): Promise<KubeObject> {
    const query = { fieldManager: this.fieldManager, dryRun: options.dryRun ? 'All' : undefined };
    const body = { contentType: 'application/merge-patch+json', payload: patch };
    const call: Call = { ...workloadCall(kind, namespace, name), verb: 'patch', query, body };
    return (await this.send(call, options)) as KubeObject;
  }

  async createEvent(
    event: KubeObject & { metadata: { namespace: string } },
    options: CallOptions = {},
  ): Promise<void> {
    const namespace = event.metadata.namespace;
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`;
    const body = { contentType: 'application/json', payload: event };
    await this.send({ path, resource: 'events', namespace, verb: 'create', body }, options);
  }

  /** One request; a non-2xx answer or no answer becomes a {@link KubeApiError} naming the request. */
  private async send(call: Call, options: CallOptions): Promise<unknown> {
    const fail = (status: number, detail: string): KubeApiError => {
      this.recovery.saw(status);
      const recovering = status === 403 && this.recovery.recovering();
      const why = recovering
        ? `${detail} (the API server was unavailable moments ago and may not have synced its RBAC caches yet)`
        : detail;
      return new KubeApiError(status, call.verb, call.resource, call.namespace, call.name, why, recovering);
    };
    let answer: ApiAnswer;
    try {
      const { query, body } = call;
      answer = await this.transport.request(METHODS[call.verb], call.path, {
        query,
        body,
        signal: options.signal,
      });
    } catch (error) {
      throw fail(0, (error as Error).message);
    }
    if (answer.status >= 200 && answer.status < 300) return answer.json;
    throw fail(
      answer.status,
      (answer.json as ApiStatus | undefined)?.message ?? (answer.text || 'no detail'),
    );
  }

  private async getOrUndefined<T>(call: Omit<Call, 'verb'>, options: CallOptions): Promise<T | undefined> {
    try {
      return (await this.send({ ...call, verb: 'get' }, options)) as T;
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  /** A paged list (kube-list.ts); a 410 on a continue token starts it again once. */
  private list<T>(
    collection: Target & { path: string },
    labelSelector: string | undefined,
    map: (object: KubeObject) => T,
    options: CallOptions,
  ): Promise<ListResult<T>> {
    const fetchPage = async (token: string | undefined): Promise<Page> => {
      const query = { limit: String(this.pageSize), continue: token, labelSelector };
      return (await this.send({ ...collection, verb: 'list', query }, options)) ?? {};
    };
    const expired = (error: unknown): boolean => error instanceof KubeApiError && error.status === 410;
    return listAll(fetchPage, map, expired);
  }
}

/** Creates the API client: one per process. */
export function createKubeClient(access: ApiAccess, options: KubeClientOptions): ClusterClient {
  return new KubeClient(access, options);
}
