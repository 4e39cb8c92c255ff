import type { ConfigChange } from '../../../functions/config-restarter/src/decision-types.js';
import { tieOf, tiesOf } from '../../../functions/config-restarter/src/ties.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import { labelTuple, summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { workload } from './fake-cluster.js';

const labels = { app: 'helloworld', env: 'test' };
const deployment = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;

function change(configLabels: Record<string, string> | undefined, name = 'cm'): ConfigChange {
  return {
    ref: { kind: 'ConfigMap', namespace: 'helloworld', name },
    hash: 'sha256:x',
    labels: configLabels as Record<string, string>,
    trigger: 'update',
  };
}

describe('tieOf by MATCH_LABELS', () => {
  it.each([
    [['app', 'env'], labels, labels, true],
    [['app', 'env'], labels, { ...labels, extra: 'x' }, true],
    [['app', 'env'], labels, { app: 'helloworld', env: 'prod' }, false],
    [['app', 'env'], { app: 'helloworld' }, labels, false],
    [['app', 'env'], {}, {}, false],
    [['app', 'env'], undefined, undefined, false],
    [[], labels, labels, false],
  ])('%j config %j workload %j -> %s', (matchLabels, configLabels, workloadLabels, expected) => {
    const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels };
    const summary = summarizeWorkload(
      settings,
      deployment,
      workload('Deployment', 'w', { labels: workloadLabels }),
    );
    const tie = tieOf(settings, change(configLabels), summary);
    expect(tie !== undefined).toBe(expected);
    if (expected)
      expect(tie?.reason).toBe(`labels ${matchLabels.map((k) => `${k}=${labels[k as 'app']}`).join(',')}`);
  });

  it('labelTuple is undefined when a key is missing, so such an object matches nothing by labels', () => {
    expect(labelTuple(['app', 'env'], { app: 'helloworld' })).toBeUndefined();
    expect(labelTuple(['app', 'env'], undefined)).toBeUndefined();
    expect(labelTuple([], labels)).toBeUndefined();
    expect(labelTuple(['env', 'app'], labels)).toBe('["test","helloworld"]');
  });
});

describe('tieOf by reference', () => {
  const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app', 'env'] };

  it('names a whole reference, and the keys of a per-key one', () => {
    const summary = summarizeWorkload(
      settings,
      deployment,
      workload('Deployment', 'w', {
        podSpec: {
          volumes: [{ configMap: { name: 'whole' } }],
          containers: [{ env: [{ valueFrom: { configMapKeyRef: { name: 'keyed', key: 'B' } } }] }],
        },
      }),
    );
    expect(tieOf(settings, change({}, 'whole'), summary)).toEqual({ reason: 'pod template references it' });
    expect(tieOf(settings, change({}, 'keyed'), summary)).toEqual({
      reason: 'pod template uses only key(s) B of it',
      keys: ['B'],
    });
    expect(tieOf(settings, change({}, 'other'), summary)).toBeUndefined();
  });

  it('ties nothing in another namespace, and tiesOf keeps only the tied changes in order', () => {
    const summary = summarizeWorkload(settings, deployment, workload('Deployment', 'w', { labels }));
    const elsewhere = {
      ...change(labels),
      ref: { kind: 'ConfigMap' as const, namespace: 'other', name: 'cm' },
    };
    expect(tieOf(settings, elsewhere, summary)).toBeUndefined();
    const tied = tiesOf(settings, summary, [
      elsewhere,
      change(labels, 'a'),
      change({}, 'b'),
      change(labels, 'c'),
    ]);
    expect(tied.map(({ change: c }) => c.ref.name)).toEqual(['a', 'c']);
  });
});
