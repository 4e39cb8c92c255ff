/**
 * Storm control, the step of a decision between "restart" and the patch: the minimum restart interval,
 * pending restarts carried out or dropped later.
 */
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import { outcomeFor } from '../../../functions/config-restarter/src/config-outcome.js';
import { decideForWorkload } from '../../../functions/config-restarter/src/decide.js';
import type {
  ConfigChange,
  DecisionSettings,
  Trigger,
} from '../../../functions/config-restarter/src/decision-types.js';
import { keyDigests } from '../../../functions/config-restarter/src/hash.js';
import type { KubeObject } from '../../../functions/config-restarter/src/model.js';
import { parseHashRecord, parsePendingRestart } from '../../../functions/config-restarter/src/records.js';
import {
  carryPending,
  holdRestart,
  pendingAnnotation,
} from '../../../functions/config-restarter/src/storm-control.js';
import { WORKLOAD_KINDS, type WorkloadKind } from '../../../functions/config-restarter/src/workload-kinds.js';
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { configMap, workload } from './fake-cluster.js';

const settings: DecisionSettings = {
  annotationPrefix: 'rolling.restart.controller',
  matchLabels: ['app', 'env'],
};
const keys = annotationKeys(settings.annotationPrefix);
const now = new Date('2026-11-21T12:00:00.000Z');
const labels = { app: 'helloworld', env: 'test' };
const kindOf = (name: string): WorkloadKind => WORKLOAD_KINDS.find((k) => k.kind === name)!;

/** The change a restarter builds from a ConfigMap's content. */
function changeOf(data: Record<string, string>, trigger: Trigger = 'update', name = 'cm'): ConfigChange {
  const object = configMap(name, data, { labels });
  return {
    ref: { kind: 'ConfigMap', namespace: 'helloworld', name },
    hash: `sha256:${JSON.stringify(data)}`,
    labels,
    trigger,
    keyDigests: keyDigests('ConfigMap', object),
  };
}

function decide(object: KubeObject, changes: ConfigChange[], at = now, s: DecisionSettings = settings) {
  const kind = kindOf(object.kind!);
  return decideForWorkload(s, summarizeWorkload(s, kind, object), changes, at);
}

function at(object: unknown, path: string[]): unknown {
  return path.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], object);
}

describe('minimum restart interval', () => {
  const lastRestart = '2026-11-21T11:59:30.000Z'; // 30 s before now
  const recordedOld = { [keys.configHashes]: JSON.stringify({ 'configmap/cm': 'sha256:{"A":"0"}' }) };

  function w(annotations: Record<string, string> = {}, restartedAt: string | null = lastRestart) {
    return workload('Deployment', 'w', {
      labels,
      annotations: { ...recordedOld, ...annotations },
      ...(restartedAt ? { templateAnnotations: { [keys.restartTimestamp]: restartedAt } } : {}),
    });
  }
  const pendingOf = (decision: ReturnType<typeof decide>) =>
    parsePendingRestart(decision?.patch?.metadata.annotations[keys.pendingRestart] ?? undefined);

  it.each<[string, Record<string, string>, DecisionSettings, string | null, string]>([
    ['no interval', {}, settings, lastRestart, 'restart'],
    [
      'annotation 5m, restarted 30 s ago',
      { [keys.minRestartInterval]: '5m' },
      settings,
      lastRestart,
      'defer',
    ],
    [
      'annotation 20s, restarted 30 s ago',
      { [keys.minRestartInterval]: '20s' },
      settings,
      lastRestart,
      'restart',
    ],
    [
      'default 1m, restarted 30 s ago',
      {},
      { ...settings, minRestartIntervalMs: 60_000 },
      lastRestart,
      'defer',
    ],
    [
      'annotation 0 overrides a default',
      { [keys.minRestartInterval]: '0' },
      { ...settings, minRestartIntervalMs: 60_000 },
      lastRestart,
      'restart',
    ],
    ['never restarted before', { [keys.minRestartInterval]: '5m' }, settings, null, 'restart'],
    [
      'bad annotation: the default applies',
      { [keys.minRestartInterval]: 'soon' },
      { ...settings, minRestartIntervalMs: 60_000 },
      lastRestart,
      'defer',
    ],
  ])('%s -> %s', (_name, annotations, s, restartedAt, action) => {
    const decision = decide(w(annotations, restartedAt), [changeOf({ A: '1' })], now, s);
    expect(decision?.action).toBe(action);
    if (action === 'defer') {
      expect(decision?.reason).toContain('restart deferred until');
      expect(decision?.reason).toContain('carried out by the first resync');
      expect(at(decision?.patch, ['spec'])).toBeUndefined();
      // The record keeps the old content, so the change stays visible to later resyncs.
      expect(decision?.patch?.metadata.annotations[keys.configHashes]).toBeUndefined();
      expect(pendingOf(decision)).toEqual({
        records: ['configmap/cm'],
        since: now.toISOString(),
        due: expect.any(String) as string,
      });
    }
  });

  it('names an unreadable annotation in the reason', () => {
    const decision = decide(w({ [keys.minRestartInterval]: 'soon' }), [changeOf({ A: '1' })], now, {
      ...settings,
      minRestartIntervalMs: 60_000,
    });
    expect(decision?.reason).toContain('"soon" is not a duration');
  });

  it('a second change inside the interval adds nothing when the restart is already pending', () => {
    const first = decide(w({ [keys.minRestartInterval]: '5m' }), [changeOf({ A: '1' })]);
    const pending = first!.patch!.metadata.annotations[keys.pendingRestart]!;
    const second = decide(
      w({ [keys.minRestartInterval]: '5m', [keys.pendingRestart]: pending }),
      [changeOf({ A: '2' })],
      new Date(now.getTime() + 5000),
    );
    expect(second?.action).toBe('skip');
    expect(second?.patch).toBeUndefined();
    expect(second?.reason).toContain('already pending');
  });

  it('the first resync after the interval carries a pending restart out, even without an earlier record', () => {
    const pending = JSON.stringify({
      records: ['configmap/cm'],
      since: now.toISOString(),
      due: '2026-11-21T12:04:30.000Z',
    });
    const noRecord = workload('Deployment', 'w', {
      labels,
      annotations: { [keys.minRestartInterval]: '5m', [keys.pendingRestart]: pending },
      templateAnnotations: { [keys.restartTimestamp]: lastRestart },
    });
    const early = decide(noRecord, [changeOf({ A: '3' }, 'resync')], new Date('2026-11-21T12:02:00.000Z'));
    expect(early?.action).toBe('skip');
    const later = new Date('2026-11-21T12:05:00.000Z');
    const decision = decide(noRecord, [changeOf({ A: '3' }, 'resync')], later);
    expect(decision?.action).toBe('restart');
    expect(decision?.reason).toContain('restart pending since');
    expect(decision?.patch?.metadata.annotations[keys.pendingRestart]).toBeNull();
    expect(parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes])).toEqual({
      'configmap/cm': 'sha256:{"A":"3"}',
    });
    expect(at(decision?.patch, ['spec', 'template', 'metadata', 'annotations'])).toEqual({
      [keys.restartTimestamp]: later.toISOString(),
    });
  });

  it('drops a pending restart when the content is back to what was rolled out', () => {
    const pending = JSON.stringify({
      records: ['configmap/cm'],
      since: now.toISOString(),
      due: '2026-11-21T12:04:30.000Z',
    });
    const decision = decide(w({ [keys.minRestartInterval]: '5m', [keys.pendingRestart]: pending }), [
      changeOf({ A: '0' }, 'resync'),
    ]);
    expect(decision?.action).toBe('record');
    expect(decision?.reason).toContain('pending restart dropped');
    expect(decision?.patch?.metadata.annotations[keys.pendingRestart]).toBeNull();
    expect(at(decision?.patch, ['spec'])).toBeUndefined();
  });
});

describe('the storm-control step on its own', () => {
  const summary = (annotations: Record<string, string>) =>
    summarizeWorkload(
      settings,
      kindOf('Deployment'),
      workload('Deployment', 'w', {
        labels,
        annotations,
        templateAnnotations: { [keys.restartTimestamp]: '2026-11-21T11:59:30.000Z' },
      }),
    );
  const tie = { reason: 'labels app=helloworld,env=test' };

  it('lets a restart go ahead outside the interval, and holds it inside', () => {
    const w = summary({ [keys.minRestartInterval]: '20s' });
    const owed = carryPending(w, [outcomeFor(changeOf({ A: '1' }), tie, w.records)]);
    expect(holdRestart(settings, keys, w, owed, now)).toBeUndefined();
    const inside = summary({ [keys.minRestartInterval]: '5m' });
    const hold = holdRestart(settings, keys, inside, carryPending(inside, owed.outcomes), now);
    expect(hold).toMatchObject({ action: 'defer' });
    expect(
      hold?.action === 'defer' && parsePendingRestart(hold.annotations[keys.pendingRestart] ?? undefined),
    ).toEqual({
      records: ['configmap/cm'],
      since: now.toISOString(),
      due: '2026-11-21T12:04:30.000Z',
    });
  });

  it('turns a first contact into a restart when one is pending for it', () => {
    const pending = JSON.stringify({ records: ['configmap/cm'], since: 'then', due: 'later' });
    const w = summary({ [keys.pendingRestart]: pending });
    const owed = carryPending(w, [outcomeFor(changeOf({ A: '1' }, 'resync'), tie, w.records)]);
    expect(owed.outcomes.map((o) => o.action)).toEqual(['restart']);
    expect(owed.outcomes[0]?.reason).toContain('restart pending since then');
    expect([...owed.pending]).toEqual(['configmap/cm']);
  });

  it('writes the pending annotation, removes it when nothing remains, and leaves it alone when there was none', () => {
    const withPending = summary({
      [keys.pendingRestart]: JSON.stringify({ records: ['configmap/cm'], since: 's', due: 'd' }),
    });
    expect(pendingAnnotation(keys, withPending, new Set(), '', '')).toEqual({ [keys.pendingRestart]: null });
    expect(pendingAnnotation(keys, summary({}), new Set(), '', '')).toEqual({});
    expect(pendingAnnotation(keys, summary({}), new Set(['configmap/b', 'configmap/a']), 's', 'd')).toEqual({
      [keys.pendingRestart]: '{"records":["configmap/a","configmap/b"],"since":"s","due":"d"}',
    });
  });
});
