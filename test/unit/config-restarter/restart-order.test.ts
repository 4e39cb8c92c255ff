/**
 * Ordered, health-gated restarts (`restartOrder`): the pure gate (restart-order.ts) as a table, and the act
 * layer over the stubbed API module: groups 1, 2, 3 of one ConfigMap restart one after another, each once the
 * lower group's rollout is `rolled-out`; a failure holds the rest; a cold instance's resync carries on.
 */
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import type { ConfigChange, Decision } from '../../../functions/config-restarter/src/decision-types.js';
import type { Notice } from '../../../functions/config-restarter/src/event.js';
import type { KubeObject } from '../../../functions/config-restarter/src/model.js';
import {
  orderGate,
  orderGroups,
  type Sibling,
} from '../../../functions/config-restarter/src/restart-order.js';
import { parseRolloutRecord, type RolloutRecord } from '../../../functions/config-restarter/src/rollout.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import {
  summarizeWorkload,
  type WorkloadSummary,
} from '../../../functions/config-restarter/src/workload-summary.js';
import { configMap, FakeCluster, RESOURCE, startRestarter, stopStarted, workload } from './fake-cluster.js';

afterEach(stopStarted);

const NS = 'helloworld';
const keys = annotationKeys('rolling.restart.controller');
const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app', 'env'] };
const labels = { app: 'web', env: 'test' };
const DEPLOY = RESOURCE.Deployment!;
const deploymentKind = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
const now = new Date('2026-01-01T00:01:00Z');

describe('orderGate (pure)', () => {
  const change: ConfigChange = {
    ref: { kind: 'ConfigMap', namespace: NS, name: 'cm' },
    hash: 'sha256:new',
    labels,
    trigger: 'update',
  };
  const summary = (name: string, order: number, rollout?: Partial<RolloutRecord>, hash = 'sha256:new') => {
    const annotations: Record<string, string> = {
      [keys.restartOrder]: String(order),
      [keys.configHashes]: JSON.stringify({ 'configmap/cm': hash }),
    };
    if (rollout) {
      annotations[keys.rollout] = JSON.stringify({
        restartedAt: '2026-01-01T00:00:00.000Z',
        template: 't',
        configs: { 'configmap/cm': 'sha256:new' },
        ...rollout,
      });
    }
    return summarizeWorkload(settings, deploymentKind, workload('Deployment', name, { labels, annotations }));
  };
  const restart = (w: WorkloadSummary): Decision => ({
    workload: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: w.name },
    action: 'restart',
    reason: 'content changed',
    configs: ['ConfigMap helloworld/cm'],
    rolled: { 'configmap/cm': 'sha256:new' },
    patch: { metadata: { annotations: {} } },
  });
  const me = summary('b', 2);
  const cases: [string, Sibling[], string | undefined][] = [
    ['no lower group', [], undefined],
    ['the lower group restarts now', [{ summary: summary('a', 1), action: 'restart' }], 'defer'],
    ['the lower group was deferred', [{ summary: summary('a', 1), action: 'defer' }], 'defer'],
    [
      'the lower group rolls out',
      [{ summary: summary('a', 1, { state: 'progressing' }), action: 'skip' }],
      'defer',
    ],
    [
      'the lower group rolled out',
      [{ summary: summary('a', 1, { state: 'rolled-out' }), action: 'skip' }],
      undefined,
    ],
    ['the lower group failed', [{ summary: summary('a', 1, { state: 'failed' }), action: 'skip' }], 'hold'],
    [
      'the lower group was superseded',
      [{ summary: summary('a', 1, { state: 'superseded' }), action: 'skip' }],
      'hold',
    ],
    ['the lower group is held', [{ summary: summary('a', 1), action: 'hold' }], 'hold'],
    [
      'the lower group never restarted for it (recorded only)',
      [{ summary: summary('a', 1), action: 'record' }],
      undefined,
    ],
    [
      "a record about content the lower group no longer holds (an operator's re-trigger)",
      [{ summary: summary('a', 1, { state: 'failed' }, 'sha256:other'), action: 'skip' }],
      undefined,
    ],
  ];
  it.each(cases)('%s', (_name, earlier, action) => {
    const gated = orderGate(keys, me, restart(me), earlier, [change], now);
    expect(gated?.action).toBe(action);
    if (gated?.action === 'defer') expect(gated.patch).toBeUndefined();
    if (gated?.action === 'hold') {
      const held = parseRolloutRecord(gated.patch!.metadata.annotations[keys.rollout]!);
      expect(held).toMatchObject({ state: 'held', configs: { 'configmap/cm': 'sha256:new' } });
    }
  });

  it('a workload held already for the same content is skipped: nothing written, nothing reported again', () => {
    const held = summary('b', 2, { state: 'held', restartedAt: '', template: '' });
    const gated = orderGate(
      keys,
      held,
      restart(held),
      [{ summary: summary('a', 1), action: 'hold' }],
      [change],
      now,
    );
    expect(gated?.action).toBe('skip');
  });

  it('workloads without restartOrder are never gated', () => {
    const free = summarizeWorkload(settings, deploymentKind, workload('Deployment', 'c', { labels }));
    expect(
      orderGate(keys, free, restart(free), [{ summary: summary('a', 1), action: 'restart' }], [change], now),
    ).toBeUndefined();
  });

  it('groups: unordered first, then ascending; a non-integer restartOrder counts as none', () => {
    const entry = (name: string, order?: string) => ({
      summary: summarizeWorkload(
        settings,
        deploymentKind,
        workload('Deployment', name, {
          labels,
          annotations: order === undefined ? {} : { [keys.restartOrder]: order },
        }),
      ),
    });
    const groups = orderGroups([
      entry('c', '3'),
      entry('x'),
      entry('a', '1'),
      entry('b', '2'),
      entry('y', 'first'),
      entry('d', '1'),
    ]);
    expect(groups.map((g) => g.map((e) => e.summary.name))).toEqual([['x', 'y'], ['a', 'd'], ['b'], ['c']]);
  });
});

describe('ordered restarts in the act layer', () => {
  const info = { id: 'e1', type: 'dev.knative.apiserver.ref.update', source: 'test', subject: undefined };
  const edit: Notice = {
    type: 'change',
    event: info,
    action: 'update',
    mode: 'reference',
    ref: { kind: 'ConfigMap', namespace: NS, name: 'cm' },
  };
  const statusOf = (name: string): Notice => ({
    type: 'rollout',
    event: info,
    ref: { kind: deploymentKind, namespace: NS, name },
  });
  const resync: Notice = { type: 'resync', event: { ...info, type: 'dev.knative.sources.ping' } };

  function cluster(): FakeCluster {
    const fake = new FakeCluster();
    fake.put('configmaps', configMap('cm', { A: '0' }, { labels }));
    for (const [name, order] of [
      ['g1', '1'],
      ['g2', '2'],
      ['g3', '3'],
    ] as const) {
      fake.put(DEPLOY, workload('Deployment', name, { labels, annotations: { [keys.restartOrder]: order } }));
    }
    return fake;
  }
  const stored = (fake: FakeCluster, name: string): KubeObject => fake.read(DEPLOY, NS, name)!;
  const state = (fake: FakeCluster, name: string) =>
    parseRolloutRecord(stored(fake, name).metadata?.annotations?.[keys.rollout])?.state;
  const states = (fake: FakeCluster) => ['g1', 'g2', 'g3'].map((name) => state(fake, name));
  const rolledOut = (fake: FakeCluster, name: string) =>
    fake.setStatus(DEPLOY, NS, name, {
      observedGeneration: stored(fake, name).metadata!.generation,
      replicas: 1,
      updatedReplicas: 1,
      availableReplicas: 1,
    });
  const failed = (fake: FakeCluster, name: string) =>
    fake.setStatus(DEPLOY, NS, name, {
      observedGeneration: stored(fake, name).metadata!.generation,
      conditions: [
        { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'x' },
      ],
    });

  /** A first resync records the content everywhere (first contact), then the ConfigMap changes. */
  async function edited(fake: FakeCluster, restarter: { handle(n: Notice): Promise<unknown> }) {
    await restarter.handle(resync);
    fake.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    return restarter.handle(edit);
  }

  it('group 1 first; group 2 once group 1 rolled out; then group 3', async () => {
    const fake = cluster();
    const { restarter } = await startRestarter(fake);
    const first = (await edited(fake, restarter)) as {
      decisions: { workload: { name: string }; action: string }[];
    };
    expect(first.decisions.map((d) => [d.workload.name, d.action])).toEqual([
      ['g1', 'restart'],
      ['g2', 'defer'],
      ['g3', 'defer'],
    ]);
    expect(states(fake)).toEqual(['progressing', undefined, undefined]);
    // Still rolling: the status event changes nothing for the others.
    expect((await restarter.handle(statusOf('g1'))).result).toBe('ignored');
    rolledOut(fake, 'g1');
    const second = await restarter.handle(statusOf('g1'));
    expect(second.rollouts?.[0]?.outcome).toBe('rolled-out');
    expect(
      second.decisions.filter((d) => d.action !== 'skip').map((d) => [d.workload.name, d.action]),
    ).toEqual([
      ['g2', 'restart'],
      ['g3', 'defer'],
    ]);
    rolledOut(fake, 'g2');
    await restarter.handle(statusOf('g2'));
    expect(states(fake)).toEqual(['rolled-out', 'rolled-out', 'progressing']);
    const restarts = fake.events
      .filter((e) => e.reason === 'Restarted')
      .map((e) => (e.involvedObject as { name: string }).name);
    expect(restarts).toEqual(['g1', 'g2', 'g3']);
  });

  it('a failure in group 1 holds groups 2 and 3, once; the next change restarts group 1 again', async () => {
    const fake = cluster();
    const { restarter } = await startRestarter(fake);
    await edited(fake, restarter);
    failed(fake, 'g1');
    const outcome = await restarter.handle(statusOf('g1'));
    expect(outcome.rollouts?.[0]?.outcome).toBe('failed');
    expect(
      outcome.decisions.filter((d) => d.action !== 'skip').map((d) => [d.workload.name, d.action]),
    ).toEqual([
      ['g2', 'hold'],
      ['g3', 'hold'],
    ]);
    expect(states(fake)).toEqual(['failed', 'held', 'held']);
    // A resync later: still held, nothing written or reported again.
    const before = fake.events.length;
    const again = await restarter.handle(resync);
    expect(again.decisions.filter((d) => d.action !== 'skip')).toEqual([]);
    expect(fake.events.length).toBe(before);
    expect(fake.events.filter((e) => e.reason === 'Held')).toHaveLength(2);
    // The next change: group 1 restarts, the others wait for it again.
    fake.put('configmaps', configMap('cm', { A: '2' }, { labels }));
    const next = await restarter.handle(edit);
    expect(next.decisions.map((d) => [d.workload.name, d.action])).toEqual([
      ['g1', 'restart'],
      ['g2', 'defer'],
      ['g3', 'defer'],
    ]);
  });

  it('group 1 ended while no instance ran: a cold instance resumes at its resync, no workload restarts twice', async () => {
    const fake = cluster();
    const first = await startRestarter(fake);
    await edited(fake, first.restarter);
    first.runtime.stop();
    rolledOut(fake, 'g1');
    const cold = await startRestarter(fake);
    const resumed = await cold.restarter.handle(resync);
    expect(resumed.rollouts?.map((r) => [r.workload.name, r.outcome])).toEqual([['g1', 'rolled-out']]);
    expect(states(fake)).toEqual(['rolled-out', 'progressing', undefined]);
    // Both instances hear the same status event of group 1 again: nothing more restarts.
    await Promise.all([first.restarter.handle(statusOf('g1')), cold.restarter.handle(statusOf('g1'))]);
    const restarts = fake.events
      .filter((e) => e.reason === 'Restarted')
      .map((e) => (e.involvedObject as { name: string }).name);
    expect(restarts).toEqual(['g1', 'g2']);
  });
});

describe('MAX_CONCURRENT_ROLLOUTS in the act layer', () => {
  const info = { id: 'e1', type: 'dev.knative.apiserver.ref.update', source: 'test', subject: undefined };
  const edit: Notice = {
    type: 'change',
    event: info,
    action: 'update',
    mode: 'reference',
    ref: { kind: 'ConfigMap', namespace: NS, name: 'cm' },
  };
  const resync: Notice = { type: 'resync', event: { ...info, type: 'dev.knative.sources.ping' } };
  const statusOf = (name: string): Notice => ({
    type: 'rollout',
    event: info,
    ref: { kind: deploymentKind, namespace: NS, name },
  });

  it('one rollout at a time: the others stay pending on the workload and restart as each rollout ends', async () => {
    const fake = new FakeCluster();
    fake.put('configmaps', configMap('cm', { A: '0' }, { labels }));
    for (const name of ['w1', 'w2', 'w3']) fake.put(DEPLOY, workload('Deployment', name, { labels }));
    const { restarter } = await startRestarter(fake, { maxConcurrentRollouts: 1 });
    await restarter.handle(resync);
    fake.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    const first = await restarter.handle(edit);
    expect(first.decisions.map((d) => [d.workload.name, d.action])).toEqual([
      ['w1', 'restart'],
      ['w2', 'defer'],
      ['w3', 'defer'],
    ]);
    expect(first.decisions[1]!.reason).toContain('MAX_CONCURRENT_ROLLOUTS=1');
    const pending = (name: string) =>
      fake.read(DEPLOY, NS, name)!.metadata?.annotations?.[keys.pendingRestart];
    expect(pending('w2')).toContain('configmap/cm');
    for (const [done, next] of [
      ['w1', 'w2'],
      ['w2', 'w3'],
    ] as const) {
      const object = fake.read(DEPLOY, NS, done)!;
      fake.setStatus(DEPLOY, NS, done, {
        observedGeneration: object.metadata!.generation,
        replicas: 1,
        updatedReplicas: 1,
        availableReplicas: 1,
      });
      const ended = await restarter.handle(statusOf(done));
      expect(ended.rollouts?.[0]?.outcome).toBe('rolled-out');
      expect(ended.decisions.filter((d) => d.action === 'restart').map((d) => d.workload.name)).toEqual([
        next,
      ]);
      expect(pending(next)).toBeUndefined();
    }
    const restarts = fake.events
      .filter((e) => e.reason === 'Restarted')
      .map((e) => (e.involvedObject as { name: string }).name);
    expect(restarts).toEqual(['w1', 'w2', 'w3']);
  });
});
