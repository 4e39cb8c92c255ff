/**
 * The warm index over the in-memory cluster: list then watch, compact entries found by reference and by
 * labels, relist on 410 Gone, kinds not served, failures before the first list, and its state.
 */
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { silentLogger } from '../../../functions/config-restarter/src/log.js';
import { WorkloadIndex } from '../../../functions/config-restarter/src/workload-index.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import { configMap, FakeCluster, RESOURCE, startIndex, workload } from './fake-cluster.js';

const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app', 'env'] };
const labels = { app: 'helloworld', env: 'test' };
const cmRef = { kind: 'ConfigMap' as const, namespace: 'helloworld', name: 'cm' };
const started: WorkloadIndex[] = [];
afterEach(() => {
  for (const index of started.splice(0)) index.stop();
});

async function synced(cluster: FakeCluster, options: { namespaces?: string[] | undefined } = {}) {
  const index = startIndex(cluster, { ...settings, ...options });
  started.push(index);
  await index.whenSynced(undefined, AbortSignal.timeout(1000));
  return index;
}

const names = (entries: { summary: { name: string } }[]): string[] =>
  entries.map((entry) => entry.summary.name).sort();

describe('WorkloadIndex', () => {
  it('finds the workloads tied by reference or by MATCH_LABELS values, in its namespaces only', async () => {
    const cluster = new FakeCluster();
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'by-labels', { labels }));
    cluster.put(
      RESOURCE.StatefulSet!,
      workload('StatefulSet', 'by-ref', {
        podSpec: { containers: [{ env: [{ valueFrom: { configMapKeyRef: { name: 'cm', key: 'k' } } }] }] },
      }),
    );
    cluster.put(RESOURCE.DaemonSet!, workload('DaemonSet', 'untied', { labels: { app: 'helloworld' } }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'elsewhere', { labels, namespace: 'other' }));
    const index = await synced(cluster);
    expect(names(index.tied(cmRef, labels))).toEqual(['by-labels', 'by-ref']);
    expect(names(index.tied(cmRef, { app: 'helloworld' }))).toEqual(['by-ref']);
    expect(index.state()).toMatchObject({ synced: true, workloads: 3 });
  });

  it('follows additions, changes and deletions through the watch', async () => {
    const cluster = new FakeCluster();
    const index = await synced(cluster);
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    expect(names(index.tied(cmRef, labels))).toEqual(['w']);
    // The labels move away: the label entry goes with them.
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels: { app: 'other', env: 'test' } }));
    expect(index.tied(cmRef, labels)).toEqual([]);
    cluster.remove(RESOURCE.Deployment!, 'helloworld', 'w');
    expect(index.state().workloads).toBe(0);
  });

  it('holds a few fields per workload, not the object', async () => {
    const cluster = new FakeCluster();
    const big = workload('Deployment', 'w', { labels });
    (big.spec as Record<string, unknown>).padding = 'x'.repeat(100_000);
    cluster.put(RESOURCE.Deployment!, big);
    const index = await synced(cluster);
    const [entry] = index.tied(cmRef, labels);
    expect(JSON.stringify(entry?.summary).length).toBeLessThan(1000);
  });

  it('relists when the watch expires (410 Gone), dropping what was deleted meanwhile', async () => {
    const cluster = new FakeCluster();
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'kept', { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'gone', { labels }));
    const relists: string[] = [];
    const index = new WorkloadIndex({
      client: cluster,
      kinds: WORKLOAD_KINDS,
      namespaces: ['helloworld'],
      matchLabels: settings.matchLabels,
      summarize: (kind, object) => summarizeWorkload(settings, kind, object),
      logger: silentLogger,
      onRelist: (reason) => relists.push(reason),
      backoffMs: { initial: 5, max: 20 },
    });
    started.push(index);
    index.start();
    await index.whenSynced(undefined, AbortSignal.timeout(1000));
    cluster.pauseWatches = true; // the deletion is never seen by the old watch
    cluster.remove(RESOURCE.Deployment!, 'helloworld', 'gone');
    cluster.expireWatches();
    const deadline = Date.now() + 1000;
    while (relists.filter((r) => r === 'expired').length < WORKLOAD_KINDS.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // One shard per kind in the one namespace.
    expect(relists.filter((r) => r === 'initial')).toHaveLength(WORKLOAD_KINDS.length);
    expect(relists.filter((r) => r === 'expired')).toHaveLength(WORKLOAD_KINDS.length);
    expect(names(index.tied(cmRef, labels))).toEqual(['kept']);
    expect(index.state().lastRelist).toBeDefined();
  });

  it('treats a kind the API server does not serve (discovery) as synced and empty', async () => {
    const cluster = new FakeCluster();
    cluster.unserved.add(RESOURCE.Service!);
    const index = await synced(cluster);
    expect(index.state().shards.find((s) => s.kind === 'Service.serving.knative.dev')?.state).toBe(
      'unserved',
    );
    expect(index.state().synced).toBe(true);
  });

  it('leaves out a kind of an optional component whose list is denied, and keeps the others', async () => {
    const cluster = new FakeCluster();
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    cluster.put(RESOURCE.Rollout!, workload('Rollout', 'r', { labels }));
    cluster.failures.push({ verb: 'list', resource: RESOURCE.Rollout!, status: 403, times: 1000 });
    const index = await synced(cluster);
    expect(index.state().synced).toBe(true);
    expect(index.state().shards.find((s) => s.kind === 'Rollout.argoproj.io')?.state).toBe('forbidden');
    expect(names(index.tied(cmRef, labels))).toEqual(['w']);
  });

  it('answers a waiting event with the error of a list that failed before the first sync', async () => {
    const cluster = new FakeCluster();
    cluster.failures.push({ verb: 'list', resource: RESOURCE.Deployment!, status: 403, times: 1000 });
    const index = startIndex(cluster, settings);
    started.push(index);
    await expect(index.whenSynced('helloworld', AbortSignal.timeout(1000))).rejects.toMatchObject({
      status: 403,
      verb: 'list',
    });
    expect(index.state().synced).toBe(false);
    expect(index.state().shards.find((s) => s.kind === 'Deployment.apps')).toMatchObject({
      state: 'retrying',
      error: expect.stringContaining('403') as string,
    });
  });

  it('recovers once the failing list succeeds', async () => {
    const cluster = new FakeCluster();
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    cluster.failures.push({ verb: 'list', resource: RESOURCE.Deployment!, status: 503, times: 2 });
    const index = startIndex(cluster, settings);
    started.push(index);
    const deadline = Date.now() + 2000;
    while (!index.state().synced && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(index.state().synced).toBe(true);
    expect(names(index.tied(cmRef, labels))).toEqual(['w']);
  });

  it('keeps the newer of a watched and an observed version', async () => {
    const cluster = new FakeCluster();
    cluster.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    const stored = cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    const index = await synced(cluster);
    const deployment = WORKLOAD_KINDS[0]!;
    const newer = { ...stored, metadata: { ...stored.metadata, resourceVersion: '9999' } };
    index.observe(summarizeWorkload(settings, deployment, newer));
    index.observe(summarizeWorkload(settings, deployment, stored));
    expect(index.get(deployment, 'helloworld', 'w')?.summary.resourceVersion).toBe('9999');
  });
});
