/**
 * Paged lists (kube.ts): every page of one snapshot, mapped page by page so whole objects are dropped early.
 * A continue token that expires mid-list (410 Gone) starts the list again once, from a fresh snapshot.
 */
import type { KubeObject } from './model.js';

/** One page as the API server returns it. */
export interface Page {
  items?: KubeObject[];
  metadata?: { continue?: string; resourceVersion?: string };
}

/** Fetches the page after `token` (the first page when undefined). */
type FetchPage = (token: string | undefined) => Promise<Page>;

/** Every page of one snapshot, or `expired` when a continue token expired and `expired(error)` says so. */
async function snapshot<T>(
  fetchPage: FetchPage,
  map: (object: KubeObject) => T,
  expired: (error: unknown) => boolean,
): Promise<{ items: T[]; resourceVersion: string } | 'expired'> {
  const items: T[] = [];
  let resourceVersion = '';
  let token: string | undefined;
  do {
    const page = await fetchPage(token).catch((error: unknown) => {
      if (token && expired(error)) return 'expired' as const;
      throw error;
    });
    if (page === 'expired') return page;
    for (const object of page.items ?? []) items.push(map(object));
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    token = page.metadata?.continue || undefined;
  } while (token);
  return { items, resourceVersion };
}

/** Lists every page; `expired(error)` tells an expired continue token (410) from other failures. */
export async function listAll<T>(
  fetchPage: FetchPage,
  map: (object: KubeObject) => T,
  expired: (error: unknown) => boolean,
): Promise<{ items: T[]; resourceVersion: string }> {
  const first = await snapshot(fetchPage, map, expired);
  if (first !== 'expired') return first;
  const again = await snapshot(fetchPage, map, () => false);
  if (again === 'expired') throw new Error('unreachable: a second snapshot never restarts');
  return again;
}
