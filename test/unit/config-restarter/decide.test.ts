import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import {
  decideForWorkload as decideForSummary,
  planRestarts,
} from '../../../functions/config-restarter/src/decide.js';
import type {
  DecisionSettings,
  ConfigChange,
  Trigger,
} from '../../../functions/config-restarter/src/decision-types.js';
import { parseHashRecord } from '../../../functions/config-restarter/src/records.js';
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { WORKLOAD_KINDS, type WorkloadKind } from '../../../functions/config-restarter/src/workload-kinds.js';
import type { KubeObject } from '../../../functions/config-restarter/src/model.js';
import { workload } from './fake-cluster.js';

/** Decides for a whole object, as the index does: summarise, then decide. */
function decideForWorkload(
  decisionSettings: DecisionSettings,
  kind: WorkloadKind,
  object: KubeObject,
  changes: ConfigChange[],
  at: Date,
) {
  return decideForSummary(decisionSettings, summarizeWorkload(decisionSettings, kind, object), changes, at);
}

/** The pod template annotations a patch sets, if any. */
function templateAnnotations(patch: unknown): Record<string, string> | undefined {
  return (
    patch as { spec?: { template?: { metadata?: { annotations?: Record<string, string> } } } } | undefined
  )?.spec?.template?.metadata?.annotations;
}

const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app', 'env'] };
const keys = annotationKeys(settings.annotationPrefix);
const now = new Date('2026-11-21T12:00:00.000Z');
const kindOf = (name: string): WorkloadKind => WORKLOAD_KINDS.find((k) => k.kind === name)!;
const labels = { app: 'helloworld', env: 'test' };

function change(
  trigger: Trigger = 'update',
  hash = 'sha256:new',
  name = 'cm',
  extra: Partial<ConfigChange> = {},
): ConfigChange {
  return { ref: { kind: 'ConfigMap', namespace: 'helloworld', name }, hash, labels, trigger, ...extra };
}

describe('decideForWorkload', () => {
  describe.each(['Deployment', 'StatefulSet', 'DaemonSet', 'Service'])('%s', (kindName) => {
    const kind = kindOf(kindName);

    it('restarts a workload matched by labels: template timestamp plus hash record', () => {
      const decision = decideForWorkload(
        settings,
        kind,
        workload(kindName as 'Deployment', 'w', { labels }),
        [change()],
        now,
      );
      expect(decision?.action).toBe('restart');
      expect(decision?.reason).toContain('labels app=helloworld,env=test');
      expect(templateAnnotations(decision?.patch)?.[keys.restartTimestamp]).toBe(now.toISOString());
      expect(parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes])).toEqual({
        'configmap/cm': 'sha256:new',
      });
    });

    it('restarts a workload that references the ConfigMap', () => {
      const w = workload(kindName as 'Deployment', 'w', {
        podSpec: { volumes: [{ configMap: { name: 'cm' } }] },
      });
      const decision = decideForWorkload(settings, kind, w, [change()], now);
      expect(decision?.action).toBe('restart');
      expect(decision?.reason).toContain('pod template references it');
    });

    it('leaves out an untied workload', () => {
      const w = workload(kindName as 'Deployment', 'w', { labels: { app: 'other', env: 'test' } });
      expect(decideForWorkload(settings, kind, w, [change()], now)).toBeUndefined();
    });

    it('skips a tied workload that has not opted in', () => {
      const w = workload(kindName as 'Deployment', 'w', { labels, optIn: false });
      const decision = decideForWorkload(settings, kind, w, [change()], now);
      expect(decision).toMatchObject({ action: 'skip' });
      expect(decision?.reason).toContain('not opted in');
      expect(decision?.patch).toBeUndefined();
    });
  });

  const recorded = (hash: string): Record<string, string> => ({
    [keys.configHashes]: JSON.stringify({ 'configmap/cm': hash }),
  });

  it.each<[string, Trigger, Record<string, string>, string, string]>([
    ['update, no record', 'update', {}, 'restart', 'no earlier record'],
    ['update, other hash', 'update', recorded('sha256:old'), 'restart', 'changed from sha256:old'],
    [
      'update, same hash (duplicate or metadata-only edit)',
      'update',
      recorded('sha256:new'),
      'skip',
      'already rolled out',
    ],
    ['add, no record (first contact)', 'add', {}, 'record', 'first contact'],
    ['add, same hash', 'add', recorded('sha256:new'), 'skip', 'already rolled out'],
    ['add, other hash (recreated with new content)', 'add', recorded('sha256:old'), 'restart', 'changed'],
    ['resync, no record (first resync after install)', 'resync', {}, 'record', 'first contact'],
    ['resync, other hash (a lost event)', 'resync', recorded('sha256:old'), 'restart', 'changed'],
    ['resync, same hash', 'resync', recorded('sha256:new'), 'skip', 'already rolled out'],
    ['delete', 'delete', recorded('sha256:old'), 'skip', 'delete restarts nothing'],
    ['unreadable record', 'update', { [keys.configHashes]: '{not json' }, 'restart', 'no earlier record'],
  ])('%s -> %s', (_name, trigger, annotations, action, reason) => {
    const w = workload('Deployment', 'w', { labels, annotations });
    const decision = decideForWorkload(settings, kindOf('Deployment'), w, [change(trigger)], now);
    expect(decision?.action).toBe(action);
    expect(decision?.reason).toContain(reason);
    if (action === 'record') {
      expect(templateAnnotations(decision?.patch)).toBeUndefined();
      expect(decision?.patch?.metadata.annotations[keys.configHashes]).toBe('{"configmap/cm":"sha256:new"}');
    }
  });

  it('keeps the records of other ConfigMaps when it writes one', () => {
    const w = workload('Deployment', 'w', {
      labels,
      annotations: {
        [keys.configHashes]: JSON.stringify({ 'configmap/other': 'sha256:o', 'secret/s': 'sha256:s' }),
      },
    });
    const decision = decideForWorkload(settings, kindOf('Deployment'), w, [change()], now);
    expect(parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes])).toEqual({
      'configmap/cm': 'sha256:new',
      'configmap/other': 'sha256:o',
      'secret/s': 'sha256:s',
    });
  });

  it('carries the resourceVersion as a precondition', () => {
    const w = workload('Deployment', 'w', { labels });
    w.metadata!.resourceVersion = '42';
    expect(
      decideForWorkload(settings, kindOf('Deployment'), w, [change()], now)?.patch?.metadata.resourceVersion,
    ).toBe('42');
  });

  it('restarts once for several changed ConfigMaps and records each', () => {
    const w = workload('Deployment', 'w', {
      labels,
      podSpec: { containers: [{ envFrom: [{ configMapRef: { name: 'cm2' } }] }] },
    });
    const decision = decideForWorkload(
      settings,
      kindOf('Deployment'),
      w,
      [change('resync', 'sha256:a', 'cm'), change('update', 'sha256:b', 'cm2')],
      now,
    );
    expect(decision?.action).toBe('restart');
    expect(decision?.configs).toEqual(['ConfigMap helloworld/cm', 'ConfigMap helloworld/cm2']);
    expect(parseHashRecord(decision?.patch?.metadata.annotations[keys.configHashes])).toEqual({
      'configmap/cm': 'sha256:a',
      'configmap/cm2': 'sha256:b',
    });
  });

  it('never patches a Deployment owned by a Knative Revision', () => {
    const w = workload('Deployment', 'helloworld-test-00001-deployment', {
      labels: { ...labels, 'serving.knative.dev/service': 'helloworld-test' },
      ownerReferences: [
        { apiVersion: 'serving.knative.dev/v1', kind: 'Revision', name: 'helloworld-test-00001' },
      ],
    });
    const decision = decideForWorkload(settings, kindOf('Deployment'), w, [change()], now);
    expect(decision?.action).toBe('skip');
    expect(decision?.reason).toContain('Knative Service helloworld-test');
    expect(decision?.patch).toBeUndefined();
  });

  it('skips a Knative Service with a fixed revision name', () => {
    const w = workload('Service', 'svc', { labels });
    (w.spec as { template: { metadata: { name?: string } } }).template.metadata.name = 'svc-v1';
    const decision = decideForWorkload(settings, kindOf('Service'), w, [change()], now);
    expect(decision?.action).toBe('skip');
    expect(decision?.reason).toBe(
      'spec.template.metadata.name is fixed to "svc-v1"; Knative refuses a new Revision under the same name',
    );
    expect(decision?.patch).toBeUndefined();
  });

  it('does not match workloads of another namespace', () => {
    const w = workload('Deployment', 'w', { labels, namespace: 'elsewhere' });
    expect(decideForWorkload(settings, kindOf('Deployment'), w, [change()], now)).toBeUndefined();
  });

  it('matches nothing by labels when the ConfigMap lacks a MATCH_LABELS key', () => {
    const everything = WORKLOAD_KINDS.map((kind) =>
      summarizeWorkload(settings, kind, workload(kind.kind as 'Deployment', 'w', { labels: {} })),
    );
    expect(
      planRestarts(
        settings,
        [change('update', 'sha256:x', 'cm', { labels: { app: 'helloworld' } })],
        everything,
        now,
      ),
    ).toEqual([]);
  });

  it('uses a custom annotation prefix throughout', () => {
    const custom = { ...settings, annotationPrefix: 'example.com' };
    const w = workload('Deployment', 'w', {
      labels,
      optIn: false,
      annotations: { 'example.com/restartOnTrigger': 'true' },
    });
    const decision = decideForWorkload(custom, kindOf('Deployment'), w, [change()], now);
    expect(templateAnnotations(decision?.patch)?.['example.com/restartTimestamp']).toBe(now.toISOString());
    expect(decision?.patch?.metadata.annotations['example.com/configHashes']).toBeDefined();
  });
});
