/**
 * The pure core beyond the first four kinds: CronJobs and Argo Rollouts, per-key ties, and restarts on a
 * confirmed deletion (the minimum restart interval: storm-control.test.ts).
 */
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import { decideForWorkload } from '../../../functions/config-restarter/src/decide.js';
import type {
  ConfigChange,
  DecisionSettings,
  Trigger,
} from '../../../functions/config-restarter/src/decision-types.js';
import { parseHashRecord, parsePendingRestart } from '../../../functions/config-restarter/src/records.js';
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { DELETED_HASH, keyDigests, subsetHash } from '../../../functions/config-restarter/src/hash.js';
import type { KubeObject } from '../../../functions/config-restarter/src/model.js';
import { WORKLOAD_KINDS, type WorkloadKind } from '../../../functions/config-restarter/src/workload-kinds.js';
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

describe('CronJob', () => {
  it('restarts through spec.jobTemplate.spec.template and says running Jobs are left alone', () => {
    const decision = decide(workload('CronJob', 'nightly', { labels }), [changeOf({ A: '1' })]);
    expect(decision?.action).toBe('restart');
    expect(decision?.workload).toEqual({
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      namespace: 'helloworld',
      name: 'nightly',
    });
    expect(
      at(decision?.patch, ['spec', 'jobTemplate', 'spec', 'template', 'metadata', 'annotations']),
    ).toEqual({ [keys.restartTimestamp]: now.toISOString() });
    expect(at(decision?.patch, ['spec', 'template'])).toBeUndefined();
    expect(decision?.reason).toContain(
      'the next Job runs with the new configuration; running Jobs are left alone',
    );
  });

  it('finds references in the job template', () => {
    const cron = workload('CronJob', 'nightly', {
      labels: { app: 'other' },
      podSpec: { volumes: [{ configMap: { name: 'cm' } }] },
    });
    expect(decide(cron, [changeOf({ A: '1' })])?.reason).toContain('pod template references it');
  });
});

describe('Argo Rollout', () => {
  it('with spec.template: restarts through the template, rolled out with its strategy', () => {
    const decision = decide(workload('Rollout', 'r', { labels }), [changeOf({ A: '1' })]);
    expect(decision?.action).toBe('restart');
    expect(decision?.workload.apiVersion).toBe('argoproj.io/v1alpha1');
    expect(at(decision?.patch, ['spec', 'template', 'metadata', 'annotations'])).toEqual({
      [keys.restartTimestamp]: now.toISOString(),
    });
    expect(at(decision?.patch, ['spec', 'restartAt'])).toBeUndefined();
    expect(decision?.reason).toContain("rolls the new template out with the Rollout's strategy");
  });

  it('with spec.workloadRef: sets spec.restartAt (RFC 3339, seconds) and touches no template', () => {
    const decision = decide(workload('Rollout', 'r', { labels, workloadRef: 'web' }), [changeOf({ A: '1' })]);
    expect(decision?.action).toBe('restart');
    expect(at(decision?.patch, ['spec', 'restartAt'])).toBe('2026-11-21T12:00:00Z');
    expect(at(decision?.patch, ['spec', 'template'])).toBeUndefined();
    expect(decision?.reason).toContain('spec.restartAt set');
    expect(parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes])).toEqual({
      'configmap/cm': 'sha256:{"A":"1"}',
    });
  });

  it('with spec.workloadRef: reads its last restart from spec.restartAt (minimum interval)', () => {
    const r = workload('Rollout', 'r', {
      labels,
      workloadRef: 'web',
      annotations: { [keys.minRestartInterval]: '10m' },
    });
    (r.spec as Record<string, unknown>).restartAt = '2026-11-21T11:55:00Z';
    const decision = decide(r, [changeOf({ A: '2' })]);
    expect(decision?.action).toBe('defer');
    expect(
      parsePendingRestart(decision?.patch?.metadata.annotations[keys.pendingRestart] ?? undefined)?.due,
    ).toBe('2026-11-21T12:05:00.000Z');
  });

  it('is optional: its RBAC comes from a component', () => {
    expect(kindOf('Rollout').optionalAccess).toBe('knative/components/argo-rollouts');
    expect(kindOf('CronJob').optionalAccess).toBeUndefined();
  });
});

describe('per-key ties', () => {
  const env = (name: string, key: string, kind: 'configMapKeyRef' | 'secretKeyRef' = 'configMapKeyRef') => ({
    name: `V_${key}`,
    valueFrom: { [kind]: { name, key } },
  });
  const before = { A: '1', B: '1' };
  const bChanged = { A: '1', B: '2' };
  const aChanged = { A: '2', B: '1' };

  /** [form, pod spec, keys it uses or 'all'] */
  const forms: [string, Record<string, unknown>, string[] | 'all'][] = [
    ['env valueFrom configMapKeyRef', { containers: [{ env: [env('cm', 'A')] }] }, ['A']],
    ['env in an init container', { initContainers: [{ env: [env('cm', 'A')] }] }, ['A']],
    [
      'volume with items',
      { volumes: [{ name: 'v', configMap: { name: 'cm', items: [{ key: 'A', path: 'a' }] } }] },
      ['A'],
    ],
    [
      'projected source with items',
      {
        volumes: [
          {
            name: 'v',
            projected: { sources: [{ configMap: { name: 'cm', items: [{ key: 'A', path: 'a' }] } }] },
          },
        ],
      },
      ['A'],
    ],
    ['envFrom', { containers: [{ envFrom: [{ configMapRef: { name: 'cm' } }] }] }, 'all'],
    ['whole volume', { volumes: [{ name: 'v', configMap: { name: 'cm' } }] }, 'all'],
    ['volume with empty items', { volumes: [{ name: 'v', configMap: { name: 'cm', items: [] } }] }, 'all'],
    [
      'projected source without items',
      { volumes: [{ name: 'v', projected: { sources: [{ configMap: { name: 'cm' } }] } }] },
      'all',
    ],
    [
      'a key and a whole volume together',
      { containers: [{ env: [env('cm', 'A')] }], volumes: [{ name: 'v', configMap: { name: 'cm' } }] },
      'all',
    ],
  ];

  /** A workload of `podSpec` whose record holds the content `before`, as a first contact leaves it. */
  function recorded(
    podSpec: Record<string, unknown>,
    workloadLabels: Record<string, string> = { app: 'unrelated' },
  ) {
    const fresh = workload('Deployment', 'w', { labels: workloadLabels, podSpec });
    const first = decide(fresh, [changeOf(before, 'add')]);
    expect(first?.action).toBe('record');
    return workload('Deployment', 'w', {
      labels: workloadLabels,
      podSpec,
      annotations: { [keys.configHashes]: first!.patch!.metadata.annotations[keys.configHashes]! },
    });
  }

  it.each(forms)('%s: a change of another key %s', (_form, podSpec, used) => {
    const decision = decide(recorded(podSpec), [changeOf(bChanged)]);
    if (used === 'all') {
      expect(decision?.action).toBe('restart');
    } else {
      expect(decision?.action).toBe('skip');
      expect(decision?.upToDate).toBe(true);
      expect(decision?.reason).toContain(`uses only key(s) ${used.join(',')}`);
      expect(decision?.reason).toContain('changes to other keys do not restart it');
    }
  });

  it.each(forms)('%s: a change of a used key restarts', (_form, podSpec, used) => {
    const decision = decide(recorded(podSpec), [changeOf(aChanged)]);
    expect(decision?.action).toBe('restart');
    const record = parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes]);
    const key = used === 'all' ? 'configmap/cm' : `configmap/cm#${used.join(',')}`;
    expect(Object.keys(record)).toEqual([key]);
  });

  it('a tie by labels sees every key, even when the pod template uses one key', () => {
    const w = recorded({ containers: [{ env: [env('cm', 'A')] }] }, labels);
    expect(decide(w, [changeOf(bChanged)])?.action).toBe('restart');
  });

  it('collects the union of keys over every use, sorted', () => {
    const podSpec = {
      containers: [{ env: [env('cm', 'C'), env('cm', 'A')] }],
      volumes: [{ name: 'v', configMap: { name: 'cm', items: [{ key: 'B', path: 'b' }] } }],
    };
    const summary = summarizeWorkload(
      settings,
      kindOf('Deployment'),
      workload('Deployment', 'w', { podSpec }),
    );
    expect(summary.keySets.ConfigMap).toEqual({ cm: ['A', 'B', 'C'] });
    expect(summary.references.ConfigMap).toEqual(['cm']);
  });

  it('Secrets: secretKeyRef and secret volume items tie by key', () => {
    const podSpec = {
      containers: [{ env: [env('s', 'user', 'secretKeyRef')] }],
      volumes: [{ name: 'v', secret: { secretName: 's', items: [{ key: 'tls.crt', path: 'crt' }] } }],
    };
    const summary = summarizeWorkload(
      settings,
      kindOf('Deployment'),
      workload('Deployment', 'w', { podSpec }),
    );
    expect(summary.keySets.Secret).toEqual({ s: ['tls.crt', 'user'] });
  });

  it('an added or removed used key counts as a change', () => {
    const w = recorded({ containers: [{ env: [env('cm', 'A')] }] });
    expect(decide(w, [changeOf({ B: '1' })])?.action).toBe('restart');
  });

  it('an old whole-object record is replaced by the per-key record, not kept beside it', () => {
    const w = workload('Deployment', 'w', {
      labels: { app: 'unrelated' },
      podSpec: { containers: [{ env: [env('cm', 'A')] }] },
      annotations: {
        [keys.configHashes]: JSON.stringify({ 'configmap/cm': 'sha256:old', 'configmap/x': 'h' }),
      },
    });
    const decision = decide(w, [changeOf(aChanged)]);
    expect(decision?.action).toBe('restart');
    expect(Object.keys(parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes]))).toEqual([
      'configmap/cm#A',
      'configmap/x',
    ]);
  });

  it('the subset hash depends only on the used keys', () => {
    const digestsOf = (data: Record<string, string>) => keyDigests('ConfigMap', configMap('cm', data));
    expect(subsetHash(digestsOf(before), ['A'])).toBe(subsetHash(digestsOf(bChanged), ['A']));
    expect(subsetHash(digestsOf(before), ['A'])).not.toBe(subsetHash(digestsOf(aChanged), ['A']));
    expect(subsetHash(digestsOf(before), ['A', 'B'])).not.toBe(subsetHash(digestsOf(bChanged), ['A', 'B']));
  });
});

describe('restart on a confirmed deletion', () => {
  const tombstone: ConfigChange = {
    ref: { kind: 'ConfigMap', namespace: 'helloworld', name: 'cm' },
    hash: DELETED_HASH,
    labels: {},
    trigger: 'delete',
    deleted: true,
  };

  it.each<[string, Record<string, unknown>, Record<string, string>, string | undefined]>([
    [
      'referenced whole, with a record',
      { volumes: [{ name: 'v', configMap: { name: 'cm' } }] },
      { 'configmap/cm': 'sha256:x' },
      'restart',
    ],
    [
      'referenced whole, no record',
      { containers: [{ envFrom: [{ configMapRef: { name: 'cm' } }] }] },
      {},
      'restart',
    ],
    [
      'referenced by key',
      { containers: [{ env: [{ name: 'A', valueFrom: { configMapKeyRef: { name: 'cm', key: 'A' } } }] }] },
      {},
      'restart',
    ],
    [
      'deletion already rolled out',
      { volumes: [{ name: 'v', configMap: { name: 'cm' } }] },
      { 'configmap/cm': DELETED_HASH },
      'skip',
    ],
    ['tied only by labels (gone with the object)', { containers: [{}] }, {}, undefined],
  ])('%s -> %s', (_name, podSpec, records, action) => {
    const object = workload('Deployment', 'w', {
      labels,
      podSpec,
      annotations: { [keys.configHashes]: JSON.stringify(records) },
    });
    const decision = decide(object, [tombstone]);
    expect(decision?.action).toBe(action);
    if (action === 'restart') {
      expect(decision?.reason).toContain('RESTART_ON_DELETE');
      expect(
        Object.values(parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes])),
      ).toEqual([DELETED_HASH]);
    }
  });

  it('a delete that is not a confirmed deletion restarts nothing', () => {
    const object = workload('Deployment', 'w', {
      labels,
      podSpec: { volumes: [{ name: 'v', configMap: { name: 'cm' } }] },
    });
    expect(decide(object, [{ ...changeOf({ A: '1' }, 'delete') }])?.action).toBe('skip');
  });
});

describe('Knative Service traffic', () => {
  const withTraffic = (traffic: unknown[] | undefined): KubeObject => {
    const ksvc = workload('Service', 'hello', { labels });
    return { ...ksvc, spec: { ...(ksvc.spec as object), ...(traffic ? { traffic } : {}) } };
  };
  const pinnedNote = 'the new Revision gets 0 % of the traffic until spec.traffic routes to it';

  it.each([
    ['no spec.traffic (Knative routes 100 % to the latest)', undefined, false],
    ['latestRevision: true', [{ latestRevision: true, percent: 100 }], false],
    [
      'split between a pinned Revision and the latest',
      [
        { revisionName: 'hello-00001', percent: 50 },
        { latestRevision: true, percent: 50 },
      ],
      false,
    ],
    ['pinned to one Revision', [{ revisionName: 'hello-00001', percent: 100 }], true],
    [
      'pinned to two Revisions',
      [
        { revisionName: 'hello-00001', percent: 90 },
        { revisionName: 'hello-00002', percent: 10, latestRevision: false },
      ],
      true,
    ],
  ])('%s: restarts, pinned=%s', (_name, traffic, pinned) => {
    const decision = decide(withTraffic(traffic), [changeOf({ A: '1' })]);
    expect(decision?.action).toBe('restart');
    if (pinned) expect(decision?.reason).toContain(pinnedNote);
    else expect(decision?.reason).not.toContain('pinned');
    // The restart is the template annotation only: spec.traffic is never part of the patch.
    expect(at(decision?.patch, ['spec', 'traffic'])).toBeUndefined();
  });

  it('names the pinned Revisions and their shares', () => {
    const decision = decide(
      withTraffic([
        { revisionName: 'hello-00001', percent: 90 },
        { revisionName: 'hello-00002', percent: 10 },
      ]),
      [changeOf({ A: '1' })],
    );
    expect(decision?.reason).toContain('traffic is pinned (hello-00001 90 %, hello-00002 10 %');
  });
});
