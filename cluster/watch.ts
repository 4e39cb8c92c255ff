/**
 * A minimal watch client for tooling: streams the watch events of one collection and stamps each with the
 * moment its bytes arrived, so a benchmark can time when a change became visible to a watcher.
 */
import { request, type Agent } from 'node:https';
import type { KubeTarget } from './kube.js';

/** One watch event as the API server sends it, plus its arrival time. */
export interface WatchEvent<T> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
  /** `process.hrtime.bigint()` when the chunk holding the event was received. */
  receivedAt: bigint;
}

/** A running watch. */
export interface CollectionWatch {
  /** Closes the watch; no events are delivered afterwards. */
  stop(): void;
}

interface ObjectMeta {
  metadata?: { resourceVersion?: string };
}

/**
 * Watches `collectionPath` (e.g. `/apis/apps/v1/namespaces/demo/deployments`) from `resourceVersion` and calls
 * `onEvent` for every event. When the server ends the watch (its timeout), it resumes from the last
 * resourceVersion seen (bookmarks keep it current). `onError` receives a 410 Gone or a failure to reconnect.
 */
export function watchCollection<T extends ObjectMeta>(
  target: KubeTarget,
  collectionPath: string,
  resourceVersion: string,
  onEvent: (event: WatchEvent<T>) => void,
  onError: (error: Error) => void,
  agent?: Agent,
): CollectionWatch {
  let stopped = false;
  let lastVersion = resourceVersion;
  let current: ReturnType<typeof request> | undefined;

  const open = (): void => {
    const url = new URL(collectionPath, target.server);
    url.searchParams.set('watch', 'true');
    url.searchParams.set('allowWatchBookmarks', 'true');
    url.searchParams.set('resourceVersion', lastVersion);
    current = request(
      url,
      {
        method: 'GET',
        ca: Buffer.from(target.caData, 'base64'),
        ...(agent ? { agent } : {}),
        headers: { Authorization: `Bearer ${target.token}`, Accept: 'application/json' },
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          onError(new Error(`watch ${collectionPath}: HTTP ${res.statusCode}`));
          return;
        }
        let pending = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const receivedAt = process.hrtime.bigint();
          pending += chunk;
          let newline;
          while ((newline = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, newline);
            pending = pending.slice(newline + 1);
            if (line.trim() === '') continue;
            const event = JSON.parse(line) as Omit<WatchEvent<T>, 'receivedAt'>;
            if (event.type === 'ERROR') {
              onError(new Error(`watch ${collectionPath}: ${JSON.stringify(event.object)}`));
              stop();
              return;
            }
            lastVersion = event.object.metadata?.resourceVersion ?? lastVersion;
            if (event.type !== 'BOOKMARK') onEvent({ ...event, receivedAt });
          }
        });
        res.on('end', () => {
          if (!stopped) open();
        });
      },
    );
    current.on('error', (error) => {
      if (!stopped) onError(error);
    });
    current.end();
  };

  const stop = (): void => {
    stopped = true;
    current?.destroy();
  };
  open();
  return { stop };
}
