/**
 * One shard of the warm index (workload-index.ts): the workloads of one kind in one namespace, or in all.
 * It lists, then watches from the list's resourceVersion; a watch the server closes resumes from the last
 * version seen, an expired one (410 Gone) lists again, failures back off. A kind the API server does not
 * serve (discovery), or an optional kind whose access is denied, is left out and looked up again later.
 */
import { KubeApiError, type ClusterClient } from './kube.js';
import type { Logger } from './log.js';
import type { KubeObject } from './model.js';
import { qualifiedKind, type WorkloadKind } from './workload-kinds.js';

/** Why a shard listed its workloads. */
export type RelistReason = 'initial' | 'expired' | 'failed';

/**
 * `pending`: not listed yet; `watching`: listed and following; `retrying`: the last call failed;
 * `unserved`: the API server does not serve the kind; `forbidden`: a kind whose RBAC comes from an
 * optional component was denied (left out, checked again later).
 */
export type ShardState = 'pending' | 'watching' | 'retrying' | 'unserved' | 'forbidden';

/** A shard and its progress. */
export interface Shard {
  kind: WorkloadKind;
  /** undefined = all namespaces. */
  namespace: string | undefined;
  state: ShardState;
  /** The index entries it holds. */
  ids: Set<string>;
  resourceVersion: string;
  lastError: KubeApiError | undefined;
  /** Listed at least once, or found its kind left out. */
  everSynced: boolean;
  /** Resolved once the shard listed at least once (or found its kind left out). */
  synced: Promise<void>;
  markSynced: () => void;
  /** Resolved at every failed attempt before the first sync, so waiting events can answer at once. */
  attempted: Promise<void>;
  markAttempted: () => void;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** A shard that has not listed yet. */
export function createShard(kind: WorkloadKind, namespace: string | undefined): Shard {
  const synced = deferred();
  const attempted = deferred();
  return {
    kind,
    namespace,
    state: 'pending',
    ids: new Set(),
    resourceVersion: '',
    lastError: undefined,
    everSynced: false,
    synced: synced.promise,
    markSynced: synced.resolve,
    attempted: attempted.promise,
    markAttempted: attempted.resolve,
  };
}

/** What a shard's loop does to the index. */
export interface ShardHost {
  /** Lists the shard's workloads and replaces its entries with them. */
  relist(shard: Shard, reason: RelistReason): Promise<void>;
  /** Applies one watch event. */
  apply(shard: Shard, type: string, object: KubeObject): void;
  /** Drops every entry of the shard. */
  clear(shard: Shard): void;
}

/** Settings of a shard's loop. */
export interface ShardOptions {
  client: ClusterClient;
  labelSelector?: string | undefined;
  logger: Logger;
  /** Server-side lifetime of one watch request. Default 300 s (with jitter). */
  watchTimeoutSeconds?: number;
  /** How soon a kind left out is looked up again. Default 60 s. */
  unservedRecheckMs?: number;
  /** Backoff after a failed list or watch: first and longest wait. Default 500 ms .. 30 s. */
  backoffMs?: { initial: number; max: number };
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    timer.unref();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** Doubling waits between failed attempts, back to the first after a success. */
class Backoff {
  private wait: number;

  constructor(
    private readonly range: { initial: number; max: number },
    private readonly signal: AbortSignal,
  ) {
    this.wait = range.initial;
  }

  get current(): number {
    return this.wait;
  }

  reset(): void {
    this.wait = this.range.initial;
  }

  async pause(): Promise<void> {
    await sleep(this.wait, this.signal);
    this.wait = Math.min(this.wait * 2, this.range.max);
  }
}

/** One shard's life: discover, list, watch; relist on 410; back off on failures. */
class ShardLoop {
  private readonly backoff: Backoff;

  constructor(
    private readonly shard: Shard,
    private readonly host: ShardHost,
    private readonly options: ShardOptions,
    private readonly signal: AbortSignal,
  ) {
    this.backoff = new Backoff(options.backoffMs ?? { initial: 500, max: 30_000 }, signal);
  }

  async run(): Promise<void> {
    let reason: RelistReason | undefined = 'initial';
    while (!this.signal.aborted) {
      if (reason !== undefined) reason = await this.list(reason);
      if (reason === undefined && !this.signal.aborted) reason = await this.watch();
    }
  }

  /** Discovery and a list; the reason to list again, or undefined once listed. */
  private async list(reason: RelistReason): Promise<RelistReason | undefined> {
    const { shard, signal } = this;
    try {
      if (!(await this.options.client.serves(shard.kind, { signal }))) {
        await this.leaveOut('unserved');
        return reason;
      }
      await this.host.relist(shard, reason);
    } catch (error) {
      if (signal.aborted) return reason;
      if (error instanceof KubeApiError && error.forbidden && shard.kind.optionalAccess) {
        // Served but not granted: the optional component is not applied. Leave the kind out.
        await this.leaveOut('forbidden', error);
        return reason;
      }
      await this.failed(error, 'list');
      return shard.resourceVersion ? 'failed' : reason;
    }
    this.synced('watching');
    this.backoff.reset();
    return undefined;
  }

  /** One watch, until it ends; the reason to list again, or undefined to watch again. */
  private async watch(): Promise<RelistReason | undefined> {
    const { shard, signal, options } = this;
    const timeout = options.watchTimeoutSeconds ?? 300;
    const handle = options.client.watchWorkloads(shard.kind, shard.namespace, {
      labelSelector: options.labelSelector,
      resourceVersion: shard.resourceVersion,
      // Jitter, so the shards of many instances do not all rewatch at once.
      timeoutSeconds: Math.round(timeout * (0.8 + Math.random() * 0.4)),
      onEvent: (type, object) => {
        this.host.apply(shard, type, object);
        this.backoff.reset();
      },
    });
    const onStop = (): void => handle.stop();
    signal.addEventListener('abort', onStop, { once: true });
    const watchedSince = Date.now();
    const end = await handle.ended;
    signal.removeEventListener('abort', onStop);
    if (signal.aborted) return undefined;
    if (end.reason === 'expired') return 'expired';
    if (end.reason === 'closed' && Date.now() - watchedSince < 1000) {
      // A server that closes watches at once must not be hammered.
      await this.backoff.pause();
    } else if (end.reason === 'failed') {
      await this.failed(end.error, 'watch');
      // Resume from the last version; if that has expired meanwhile the next watch says so (410).
      if (shard.state === 'retrying') shard.state = 'watching';
    }
    return undefined;
  }

  /** The shard has listed, or knows its kind is left out. */
  private synced(state: ShardState): void {
    this.shard.state = state;
    this.shard.lastError = undefined;
    this.shard.everSynced = true;
    this.shard.markSynced();
  }

  /** Leaves the kind out until the next look (unserved, or optional and denied). */
  private async leaveOut(state: 'unserved' | 'forbidden', error?: KubeApiError): Promise<void> {
    const { shard, options } = this;
    this.host.clear(shard);
    if (shard.state !== state) {
      if (state === 'unserved') {
        options.logger.info('index: kind not served by the API server', { kind: qualifiedKind(shard.kind) });
      } else {
        options.logger.warn('index: kind served but access denied; left out until granted', {
          kind: qualifiedKind(shard.kind),
          namespace: shard.namespace ?? '*',
          grantWith: shard.kind.optionalAccess,
          error: error?.message,
        });
      }
    }
    this.synced(state);
    await sleep(options.unservedRecheckMs ?? 60_000, this.signal);
  }

  /** Records a failed call, then waits before the next attempt. */
  private async failed(error: unknown, what: string): Promise<void> {
    const { shard } = this;
    shard.lastError =
      error instanceof KubeApiError
        ? error
        : new KubeApiError(
            0,
            what,
            shard.kind.plural,
            shard.namespace,
            undefined,
            String((error as Error)?.message ?? error),
          );
    shard.state = 'retrying';
    shard.markAttempted();
    this.options.logger.warn('index: API call failed; retrying', {
      kind: shard.kind.kind,
      namespace: shard.namespace ?? '*',
      error: shard.lastError.message,
      retryInMs: this.backoff.current,
    });
    await this.backoff.pause();
  }
}

/** Runs a shard until `signal` aborts. */
export function runShard(
  shard: Shard,
  host: ShardHost,
  options: ShardOptions,
  signal: AbortSignal,
): Promise<void> {
  return new ShardLoop(shard, host, options, signal).run();
}
