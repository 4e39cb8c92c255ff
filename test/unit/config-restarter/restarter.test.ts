import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import { parseHashRecord } from '../../../functions/config-restarter/src/records.js';
import { contentHash } from '../../../functions/config-restarter/src/hash.js';
import type { Notice } from '../../../functions/config-restarter/src/event.js';
import type { Outcome } from '../../../functions/config-restarter/src/outcome.js';
import type { RestarterSettings } from '../../../functions/config-restarter/src/restarter.js';
import { silentLogger } from '../../../functions/config-restarter/src/log.js';
import { createMetrics } from '../../../functions/config-restarter/src/metrics.js';
import { createRestarter } from '../../../functions/config-restarter/src/restarter.js';
import { WorkloadIndex } from '../../../functions/config-restarter/src/workload-index.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { configMap, FakeCluster, RESOURCE, startRestarter, stopStarted, workload } from './fake-cluster.js';

afterEach(stopStarted);

const keys = annotationKeys('rolling.restart.controller');
const labels = { app: 'helloworld', env: 'test' };
const event = { id: 'e1', type: 'dev.knative.apiserver.ref.update', source: 'test', subject: undefined };

async function setup(overrides: Partial<RestarterSettings> & { workloadSelector?: string } = {}): Promise<{
  cluster: FakeCluster;
  handle: (notice: Notice) => Promise<Outcome>;
  /** The index's own calls at start (lists and watches); `cluster.calls` then holds the events' calls only. */
  startupCalls: FakeCluster['calls'];
}> {
  const cluster = new FakeCluster();
  const { workloadSelector, ...settings } = overrides;
  const { restarter, startupCalls } = await startRestarter(
    cluster,
    { configKinds: ['ConfigMap', 'Secret'], ...settings },
    workloadSelector ? { workloadSelector } : {},
  );
  return { cluster, handle: (notice) => restarter.handle(notice), startupCalls };
}

const update = (
  name = 'cm',
  action: 'add' | 'update' | 'delete' = 'update',
  namespace = 'helloworld',
): Notice => ({
  type: 'change',
  event,
  action,
  mode: 'reference',
  ref: { kind: 'ConfigMap', namespace, name },
});
const resync: Notice = { type: 'resync', event: { ...event, type: 'dev.knative.sources.ping' } };

const template = (cluster: FakeCluster, kind: string, name: string): Record<string, string> | undefined =>
  (
    cluster.read(RESOURCE[kind]!, 'helloworld', name)?.spec as {
      template: { metadata: { annotations?: Record<string, string> } };
    }
  ).template.metadata.annotations;
const records = (cluster: FakeCluster, kind: string, name: string): Record<string, string> =>
  parseHashRecord(
    cluster.read(RESOURCE[kind]!, 'helloworld', name)?.metadata?.annotations?.[keys.configHashes],
  );

describe('restarter', () => {
  it('restarts every matching opted-in kind and leaves the rest alone', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    for (const kind of ['Deployment', 'StatefulSet', 'DaemonSet', 'Service'] as const) {
      cluster.put(RESOURCE[kind]!, workload(kind, `w-${kind.toLowerCase()}`, { labels }));
    }
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'not-opted-in', { labels, optIn: false }));
    cluster.put(
      RESOURCE.Deployment!,
      workload('Deployment', 'prod', { labels: { app: 'helloworld', env: 'prod' } }),
    );

    const outcome = await handle(update());
    expect(outcome.result).toBe('processed');
    expect(
      outcome.decisions
        .filter((d) => d.action === 'restart')
        .map((d) => d.workload.name)
        .sort(),
    ).toEqual(['w-daemonset', 'w-deployment', 'w-service', 'w-statefulset']);
    for (const kind of ['Deployment', 'StatefulSet', 'DaemonSet', 'Service']) {
      expect(template(cluster, kind, `w-${kind.toLowerCase()}`)?.[keys.restartTimestamp]).toBeDefined();
    }
    expect(template(cluster, 'Deployment', 'not-opted-in')?.[keys.restartTimestamp]).toBeUndefined();
    expect(template(cluster, 'Deployment', 'prod')?.[keys.restartTimestamp]).toBeUndefined();
    expect(outcome.decisions.find((d) => d.workload.name === 'not-opted-in')?.action).toBe('skip');
  });

  it('is idempotent: a duplicate event and a metadata-only edit restart nothing', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    await handle(update());
    const generation = cluster.read(RESOURCE.Deployment!, 'helloworld', 'w')?.metadata?.generation;

    expect((await handle(update())).decisions[0]?.action).toBe('skip');
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels: { ...labels, extra: 'label' } }));
    expect((await handle(update())).decisions[0]?.action).toBe('skip');
    expect(cluster.read(RESOURCE.Deployment!, 'helloworld', 'w')?.metadata?.generation).toBe(generation);

    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v2' }, { labels }));
    expect((await handle(update())).decisions[0]?.action).toBe('restart');
  });

  it('ignores a ConfigMap that has not opted in, a deleted one, and a delete event', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('plain', { A: '1' }, { labels, optIn: false }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    expect(await handle(update('plain'))).toMatchObject({
      result: 'ignored',
      reason: expect.stringContaining('not opted in') as string,
    });
    expect(await handle(update('gone'))).toMatchObject({
      result: 'ignored',
      reason: expect.stringContaining('no longer exists') as string,
    });
    expect(await handle(update('plain', 'delete'))).toMatchObject({ result: 'ignored' });
    expect(cluster.calls.filter((c) => c.verb === 'patch')).toEqual([]);
  });

  it('refuses a namespace outside WATCH_NAMESPACES without any API call', async () => {
    const { cluster, handle } = await setup();
    const outcome = await handle(update('cm', 'update', 'kube-system'));
    expect(outcome.result).toBe('refused');
    expect(outcome.reason).toContain('kube-system');
    expect(cluster.calls).toEqual([]);
  });

  it('WORKLOAD_SELECTOR goes to the API server with every workload list', async () => {
    const { cluster, handle, startupCalls } = await setup({ workloadSelector: 'restart=enabled' });
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(
      RESOURCE.Deployment!,
      workload('Deployment', 'selected', { labels: { ...labels, restart: 'enabled' } }),
    );
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'unselected', { labels }));
    const outcome = await handle(update());
    expect(outcome.decisions.map((d) => d.workload.name)).toEqual(['selected']);
    const lists = startupCalls.filter((c) => c.verb === 'list');
    expect(lists).toHaveLength(WORKLOAD_KINDS.length);
    expect(cluster.calls.filter((c) => c.verb === 'list')).toEqual([]);
    expect(lists.every((c) => c.labelSelector === 'restart=enabled')).toBe(true);
  });

  it('ignores kinds not enabled in CONFIG_KINDS', async () => {
    const { handle } = await setup({ configKinds: ['ConfigMap'] });
    const outcome = await handle({
      ...update(),
      ref: { kind: 'Secret', namespace: 'helloworld', name: 's' },
    } as Notice);
    expect(outcome).toMatchObject({
      result: 'ignored',
      reason: expect.stringContaining('CONFIG_KINDS') as string,
    });
  });

  it('DRY_RUN sends the patches as dry-run and persists nothing', async () => {
    const { cluster, handle } = await setup({ dryRun: true });
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    const outcome = await handle(update());
    expect(outcome.decisions[0]).toMatchObject({ action: 'restart', dryRun: true });
    expect(outcome.decisions[0]?.reason).toContain('dry run');
    expect(cluster.calls.filter((c) => c.verb === 'patch').every((c) => c.dryRun)).toBe(true);
    expect(template(cluster, 'Deployment', 'w')?.[keys.restartTimestamp]).toBeUndefined();
  });

  it("decides again after a resourceVersion conflict and keeps the concurrent writer's change", async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    let interleaved = false;
    cluster.beforePatch = (resource, namespace, name) => {
      if (interleaved) return;
      interleaved = true;
      // Someone else records another ConfigMap on the workload between our read and our patch.
      const current = cluster.read(resource, namespace, name)!;
      current.metadata!.annotations![keys.configHashes] = JSON.stringify({ 'configmap/other': 'sha256:o' });
      cluster.put(resource, current);
    };
    const outcome = await handle(update());
    expect(outcome.decisions[0]?.action).toBe('restart');
    expect(records(cluster, 'Deployment', 'w')).toEqual({
      'configmap/other': 'sha256:o',
      'configmap/cm': expect.any(String) as string,
    });
    expect(cluster.calls.filter((c) => c.verb === 'patch')).toHaveLength(2);
  });

  it('concurrent events for one change restart once and keep both ConfigMap records', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    cluster.put('configmaps', configMap('cm2', { B: '1' }));
    cluster.put(
      RESOURCE.Deployment!,
      workload('Deployment', 'w', {
        labels,
        podSpec: { containers: [{ envFrom: [{ configMapRef: { name: 'cm2' } }] }] },
      }),
    );
    const outcomes = await Promise.all([
      handle(update('cm')),
      handle(update('cm')),
      handle(update('cm2')),
      handle(update('cm2')),
    ]);
    expect(outcomes.flatMap((o) => o.decisions).filter((d) => d.action === 'restart')).toHaveLength(2);
    expect(Object.keys(records(cluster, 'Deployment', 'w')).sort()).toEqual([
      'configmap/cm',
      'configmap/cm2',
    ]);
  });

  it('resync records on first contact, then rolls out a change whose event was lost', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put('configmaps', configMap('ignored', { X: '1' }, { labels, optIn: false }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));

    const first = await handle(resync);
    expect(first.decisions.map((d) => d.action)).toEqual(['record']);
    expect(template(cluster, 'Deployment', 'w')?.[keys.restartTimestamp]).toBeUndefined();
    expect(Object.keys(records(cluster, 'Deployment', 'w'))).toEqual(['configmap/cm']);

    expect((await handle(resync)).decisions.map((d) => d.action)).toEqual(['skip']);
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v2' }, { labels }));
    expect((await handle(resync)).decisions.map((d) => d.action)).toEqual(['restart']);
    expect(template(cluster, 'Deployment', 'w')?.[keys.restartTimestamp]).toBeDefined();
  });

  it('resync with WATCH_NAMESPACES=* finds the namespaces that hold opted-in ConfigMaps', async () => {
    const { cluster, handle } = await setup({ scope: { all: true } });
    cluster.put('configmaps', configMap('cm', { A: '1' }, { labels, namespace: 'team-a' }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels, namespace: 'team-a' }));
    const outcome = await handle(resync);
    expect(outcome.reason).toContain('1 namespace');
    expect(outcome.decisions.map((d) => [d.workload.namespace, d.action])).toEqual([['team-a', 'record']]);
  });

  it('reports forbidden patches as failures naming verb, resource and namespace', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    cluster.put(RESOURCE.StatefulSet!, workload('StatefulSet', 'w', { labels }));
    cluster.failures.push({ verb: 'patch', resource: 'statefulsets.apps', status: 403 });
    const outcome = await handle(update());
    expect(outcome.failures).toHaveLength(1);
    expect(outcome.failures[0]?.error).toMatchObject({ kind: 'api-forbidden', retry: 'never' });
    expect(outcome.failures[0]?.error.message).toMatch(
      /patch statefulsets\.apps "w" in namespace "helloworld"/,
    );
  });

  it('fails the event on a transient read failure, so it is retried later', async () => {
    const { cluster, handle } = await setup();
    cluster.failures.push({ verb: 'get', resource: 'configmaps', status: 503 });
    const outcome = await handle(update());
    expect(outcome).toMatchObject({ result: 'failed', failure: { kind: 'api-unavailable', retry: 'later' } });
    expect(outcome.failure?.cause).toMatchObject({ status: 503, verb: 'get', resource: 'configmaps' });
    expect(outcome.reason).toMatch(/get configmaps "cm" in namespace "helloworld" failed with HTTP 503/);
  });

  it('gives up on a workload that changes under every patch after maxConflictAttempts patches, to retry later', async () => {
    const { cluster, handle } = await setup({ maxConflictAttempts: 3 });
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    // Another writer changes the workload between every read and every patch.
    cluster.beforePatch = (resource, namespace, name) => {
      cluster.put(resource, cluster.read(resource, namespace, name)!);
    };
    const outcome = await handle(update());
    expect(cluster.calls.filter((c) => c.verb === 'patch')).toHaveLength(3);
    expect(outcome.result).toBe('processed');
    expect(outcome.failures).toHaveLength(1);
    expect(outcome.failures[0]?.error).toMatchObject({ kind: 'conflicts', retry: 'later' });
    expect(outcome.failures[0]?.error.message).toBe(
      'patch deployments.apps "w" in namespace "helloworld" still conflicting after 3 attempts: ' +
        'the workload changed under every patch',
    );
    expect(template(cluster, 'Deployment', 'w')?.[keys.restartTimestamp]).toBeUndefined();
  });

  it('makes five patch attempts by default', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    cluster.beforePatch = (resource, namespace, name) => {
      cluster.put(resource, cluster.read(resource, namespace, name)!);
    };
    const outcome = await handle(update());
    expect(cluster.calls.filter((c) => c.verb === 'patch')).toHaveLength(5);
    expect(outcome.failures[0]?.error.kind).toBe('conflicts');
  });

  it('fails the event, to retry later, when the index has not listed within syncTimeoutMs', async () => {
    const cluster = new FakeCluster();
    const settings: RestarterSettings = {
      annotationPrefix: 'rolling.restart.controller',
      matchLabels: ['app', 'env'],
      dryRun: false,
      configKinds: ['ConfigMap'],
      patchConcurrency: 4,
      scope: { all: false, namespaces: ['helloworld'] },
      syncTimeoutMs: 50,
    };
    // Never started: its first list never comes.
    const index = new WorkloadIndex({
      client: cluster,
      kinds: WORKLOAD_KINDS,
      namespaces: ['helloworld'],
      matchLabels: settings.matchLabels,
      summarize: (kind, object) => summarizeWorkload(settings, kind, object),
      logger: silentLogger,
    });
    const restarter = createRestarter({
      client: cluster,
      index,
      settings,
      logger: silentLogger,
      metrics: createMetrics(),
    });
    const outcome = await restarter.handle(update());
    expect(outcome).toMatchObject({
      result: 'failed',
      failure: { kind: 'index-not-listed', retry: 'later' },
    });
    expect(outcome.reason).toBe(
      'the workload index of namespace "helloworld" did not finish its first list within 50 ms',
    );
    expect(cluster.calls).toEqual([]);
  });
});

describe('restarter with several instances and a lagging index', () => {
  const hashOf = (data: Record<string, string>): string =>
    contentHash('ConfigMap', configMap('cm', data, { labels }));

  it('never moves a record backwards: a conflict re-reads the ConfigMap before writing', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    let interleaved = false;
    cluster.beforePatch = (resource, namespace, name) => {
      if (interleaved) return;
      interleaved = true;
      // Between this instance's read and its patch: v2 lands and another instance rolls it out.
      cluster.put('configmaps', configMap('cm', { MESSAGE: 'v2' }, { labels }));
      const current = cluster.read(resource, namespace, name)!;
      current.metadata!.annotations![keys.configHashes] = JSON.stringify({
        'configmap/cm': hashOf({ MESSAGE: 'v2' }),
      });
      cluster.put(resource, current);
    };
    const outcome = await handle(update());
    expect(outcome.decisions[0]).toMatchObject({ action: 'skip' });
    expect(outcome.decisions[0]?.reason).toContain('already rolled out');
    expect(records(cluster, 'Deployment', 'w')).toEqual({ 'configmap/cm': hashOf({ MESSAGE: 'v2' }) });
  });

  it('confirms a cached "already rolled out" before acknowledging an update (a reverted change is not lost)', async () => {
    const { cluster, handle } = await setup();
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    expect((await handle(update())).decisions[0]?.action).toBe('restart');
    // Another instance rolls out v2; this instance's watch has not seen it yet. Then v2 is reverted to v1.
    cluster.pauseWatches = true;
    const current = cluster.read(RESOURCE.Deployment!, 'helloworld', 'w')!;
    current.metadata!.annotations![keys.configHashes] = JSON.stringify({
      'configmap/cm': hashOf({ MESSAGE: 'v2' }),
    });
    cluster.put(RESOURCE.Deployment!, current);
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    const outcome = await handle(update());
    expect(outcome.decisions[0]?.action).toBe('restart');
    expect(records(cluster, 'Deployment', 'w')).toEqual({ 'configmap/cm': hashOf({ MESSAGE: 'v1' }) });
    cluster.resumeWatches();
  });

  it('two instances sharing a burst restart each workload once per change', async () => {
    const a = await setup();
    const cluster = a.cluster;
    const b = await setupOn(cluster);
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    for (let i = 0; i < 5; i++)
      cluster.put(RESOURCE.Deployment!, workload('Deployment', `w-${i}`, { labels }));
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a.handle(update()) : b.handle(update()))),
    );
    const restarts = outcomes.flatMap((o) => o.decisions).filter((d) => d.action === 'restart');
    expect(restarts.map((d) => d.workload.name).sort()).toEqual(['w-0', 'w-1', 'w-2', 'w-3', 'w-4']);
  });

  it('stops calling the API at the first transient failure of an event and says what was not attempted', async () => {
    const { cluster, handle } = await setup({ patchConcurrency: 2 });
    cluster.put('configmaps', configMap('cm', { MESSAGE: 'v1' }, { labels }));
    for (let i = 0; i < 10; i++)
      cluster.put(RESOURCE.Deployment!, workload('Deployment', `w-${i}`, { labels }));
    cluster.failures.push({ verb: 'patch', status: 503 });
    const outcome = await handle(update());
    const patches = cluster.calls.filter((c) => c.verb === 'patch');
    expect(patches.length).toBeLessThanOrEqual(2);
    expect(outcome.failures).toHaveLength(10);
    expect(outcome.failures.every((f) => f.error.retry === 'later')).toBe(true);
    expect(outcome.failures.filter((f) => f.error.message.includes('not attempted'))).toHaveLength(
      10 - patches.length,
    );
  });
});

/** A second instance (its own index and restarter) on the same cluster. */
async function setupOn(cluster: FakeCluster): Promise<{ handle: (notice: Notice) => Promise<Outcome> }> {
  const { restarter } = await startRestarter(cluster);
  return { handle: (notice) => restarter.handle(notice) };
}
