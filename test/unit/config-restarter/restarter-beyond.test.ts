/**
 * The restarter with the new kinds and rules, over the stubbed API module: per-key ties, the minimum
 * restart interval carried out by a resync, and restarts on a deletion the API server confirms.
 */
import { jest } from '@jest/globals';
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import { parseHashRecord, parsePendingRestart } from '../../../functions/config-restarter/src/records.js';
import type { Notice } from '../../../functions/config-restarter/src/event.js';
import { DELETED_HASH } from '../../../functions/config-restarter/src/hash.js';
import type { RestarterSettings } from '../../../functions/config-restarter/src/restarter.js';
import { configMap, FakeCluster, RESOURCE, startRestarter, stopStarted, workload } from './fake-cluster.js';

afterEach(stopStarted);

const keys = annotationKeys('rolling.restart.controller');
const labels = { app: 'helloworld', env: 'test' };
const event = { id: 'e1', type: 'dev.knative.apiserver.ref.update', source: 'test', subject: undefined };

async function setup(overrides: Partial<RestarterSettings> = {}, clock?: () => Date) {
  const cluster = new FakeCluster();
  const { restarter } = await startRestarter(cluster, overrides, clock ? { now: clock } : {});
  return { cluster, handle: (notice: Notice) => restarter.handle(notice) };
}

const change = (name: string, action: 'add' | 'update' | 'delete' = 'update'): Notice => ({
  type: 'change',
  event,
  action,
  mode: 'reference',
  ref: { kind: 'ConfigMap', namespace: 'helloworld', name },
});
const resync: Notice = { type: 'resync', event: { ...event, type: 'dev.knative.sources.ping' } };
const meta = (cluster: FakeCluster, kind: string, name: string) =>
  cluster.read(RESOURCE[kind]!, 'helloworld', name)?.metadata;
const generation = (cluster: FakeCluster, kind: string, name: string) =>
  meta(cluster, kind, name)?.generation;

describe('per-key ties', () => {
  it('a workload using only key A stays on a change of B and rolls on a change of A', async () => {
    const { cluster, handle } = await setup();
    const keyOnly = {
      containers: [{ env: [{ name: 'A', valueFrom: { configMapKeyRef: { name: 'cm', key: 'A' } } }] }],
    };
    const whole = { containers: [{ envFrom: [{ configMapRef: { name: 'cm' } }] }] };
    cluster.put('configmaps', configMap('cm', { A: '1', B: '1' }));
    cluster.put(
      RESOURCE.Deployment!,
      workload('Deployment', 'key-a', { labels: { app: 'x' }, podSpec: keyOnly }),
    );
    cluster.put(
      RESOURCE.Deployment!,
      workload('Deployment', 'whole', { labels: { app: 'x' }, podSpec: whole }),
    );
    await handle(change('cm', 'add'));
    expect(
      Object.keys(parseHashRecord(meta(cluster, 'Deployment', 'key-a')?.annotations?.[keys.configHashes])),
    ).toEqual(['configmap/cm#A']);
    const start = {
      keyA: generation(cluster, 'Deployment', 'key-a'),
      whole: generation(cluster, 'Deployment', 'whole'),
    };

    cluster.put('configmaps', configMap('cm', { A: '1', B: '2' }));
    const onB = await handle(change('cm'));
    expect(Object.fromEntries(onB.decisions.map((d) => [d.workload.name, d.action]))).toEqual({
      'key-a': 'skip',
      whole: 'restart',
    });
    expect(generation(cluster, 'Deployment', 'key-a')).toBe(start.keyA);
    expect(generation(cluster, 'Deployment', 'whole')).toBe(start.whole! + 1);

    cluster.put('configmaps', configMap('cm', { A: '2', B: '2' }));
    const onA = await handle(change('cm'));
    expect(onA.decisions.find((d) => d.workload.name === 'key-a')?.action).toBe('restart');
    expect(generation(cluster, 'Deployment', 'key-a')).toBe(start.keyA! + 1);
  });
});

describe('minimum restart interval', () => {
  it('defers changes inside the interval and the first resync after it carries them out once', async () => {
    let now = new Date('2026-11-21T12:00:00.000Z');
    const { cluster, handle } = await setup({ minRestartIntervalMs: 30_000 }, () => now);
    cluster.put('configmaps', configMap('cm', { A: '0' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));
    await handle(change('cm', 'add'));
    const base = generation(cluster, 'Deployment', 'w')!;

    const actions: string[] = [];
    for (let i = 1; i <= 5; i++) {
      cluster.put('configmaps', configMap('cm', { A: String(i) }, { labels }));
      actions.push((await handle(change('cm'))).decisions[0]!.action);
      now = new Date(now.getTime() + 2000);
    }
    expect(actions).toEqual(['restart', 'defer', 'skip', 'skip', 'skip']);
    expect(generation(cluster, 'Deployment', 'w')).toBe(base + 1);
    const pending = parsePendingRestart(meta(cluster, 'Deployment', 'w')?.annotations?.[keys.pendingRestart]);
    expect(pending).toMatchObject({ records: ['configmap/cm'], due: '2026-11-21T12:00:30.000Z' });

    // A resync inside the interval changes nothing.
    expect((await handle(resync)).decisions[0]?.action).toBe('skip');
    now = new Date('2026-11-21T12:00:31.000Z');
    const carried = await handle(resync);
    expect(carried.decisions[0]?.action).toBe('restart');
    expect(carried.decisions[0]?.reason).toContain('restart pending since');
    expect(generation(cluster, 'Deployment', 'w')).toBe(base + 2);
    expect(meta(cluster, 'Deployment', 'w')?.annotations?.[keys.pendingRestart]).toBeUndefined();
    expect((await handle(resync)).decisions[0]?.action).toBe('skip');
    expect(generation(cluster, 'Deployment', 'w')).toBe(base + 2);
  });
});

describe('restart on delete', () => {
  const podSpec = { volumes: [{ name: 'v', configMap: { name: 'cm' } }] };

  it('is off by default: a delete restarts nothing and reads nothing', async () => {
    const { cluster, handle } = await setup();
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels, podSpec }));
    expect(await handle(change('cm', 'delete'))).toMatchObject({
      result: 'ignored',
      reason: expect.stringContaining('RESTART_ON_DELETE is off') as string,
    });
    expect(cluster.calls.filter((c) => c.verb === 'get' || c.verb === 'patch')).toEqual([]);
  });

  it('restarts the referencing workloads once, also when the delete is delivered twice', async () => {
    const { cluster, handle } = await setup({ restartOnDelete: true });
    cluster.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'by-ref', { labels: { app: 'x' }, podSpec }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'by-labels', { labels }));
    cluster.put(RESOURCE.CronJob!, workload('CronJob', 'cron', { labels: { app: 'x' }, podSpec }));
    await handle(change('cm', 'add'));
    cluster.remove('configmaps', 'helloworld', 'cm');
    const before = generation(cluster, 'Deployment', 'by-ref')!;

    const first = await handle(change('cm', 'delete'));
    expect(first.result).toBe('processed');
    expect(Object.fromEntries(first.decisions.map((d) => [d.workload.name, d.action]))).toEqual({
      'by-ref': 'restart',
      cron: 'restart',
    });
    expect(parseHashRecord(meta(cluster, 'Deployment', 'by-ref')?.annotations?.[keys.configHashes])).toEqual({
      'configmap/cm': DELETED_HASH,
    });
    const second = await handle(change('cm', 'delete'));
    expect(second.decisions.map((d) => d.action)).toEqual(['skip', 'skip']);
    expect(generation(cluster, 'Deployment', 'by-ref')).toBe(before + 1);
    // Tied only by labels, which went with the object: untouched.
    expect(generation(cluster, 'Deployment', 'by-labels')).toBe(1);
  });

  it('a forged delete of an object that still exists restarts nothing', async () => {
    const { cluster, handle } = await setup({ restartOnDelete: true });
    cluster.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels, podSpec }));
    const outcome = await handle(change('cm', 'delete'));
    expect(outcome).toMatchObject({
      result: 'ignored',
      reason: expect.stringContaining('still exists') as string,
    });
    expect(cluster.calls.filter((c) => c.verb === 'patch')).toEqual([]);
  });
});

jest.setTimeout(10_000);
