/**
 * How config objects opt in (the watch label or the original annotation) and who changed them last
 * (managedFields), as pure functions and through the restarter: a label-only object is acted on by an event
 * and by the resync, and every decision names its config objects' last field manager.
 */
import { lastWriteOf, describeLastWrite } from '../../../functions/config-restarter/src/last-write.js';
import {
  configOptIn,
  isConfigOptedIn,
  watchLabelKey,
} from '../../../functions/config-restarter/src/opt-in.js';
import type { Notice } from '../../../functions/config-restarter/src/event.js';
import { configMap, FakeCluster, RESOURCE, startRestarter, stopStarted, workload } from './fake-cluster.js';

afterEach(stopStarted);

const PREFIX = 'rolling.restart.controller';
const optIn = configOptIn(PREFIX);

describe('config opt-in', () => {
  it('the label key is <prefix>/watch, next to the annotation <prefix>/triggerRestart', () => {
    expect(watchLabelKey(PREFIX)).toBe('rolling.restart.controller/watch');
    expect(configOptIn('restart.example.com')).toEqual({
      label: 'restart.example.com/watch',
      annotation: 'restart.example.com/triggerRestart',
    });
  });

  it.each([
    ['the label "true"', { labels: { [optIn.label]: 'true' } }, true],
    ['the annotation "true"', { annotations: { [optIn.annotation]: 'true' } }, true],
    ['the annotation "TRUE" (any case, as always)', { annotations: { [optIn.annotation]: 'TRUE' } }, true],
    ['both', { labels: { [optIn.label]: 'true' }, annotations: { [optIn.annotation]: 'true' } }, true],
    // The label must be exactly what the source's selector matches, or events and resync would disagree.
    ['the label "True"', { labels: { [optIn.label]: 'True' } }, false],
    ['the label "false"', { labels: { [optIn.label]: 'false' } }, false],
    ['the key as an annotation', { annotations: { [optIn.label]: 'true' } }, false],
    ['the annotation key as a label', { labels: { [optIn.annotation]: 'true' } }, false],
    ['another prefix', { labels: { 'other.example.com/watch': 'true' } }, false],
    ['nothing', {}, false],
  ])('%s -> %s', (_what, metadata, expected) => {
    expect(isConfigOptedIn(metadata, optIn)).toBe(expected);
  });
});

describe('lastWriteOf (managedFields)', () => {
  it('names the entry with the latest time, its operation and subresource', () => {
    expect(
      lastWriteOf({
        managedFields: [
          { manager: 'helm', operation: 'Update', time: '2026-01-01T10:00:00Z' },
          { manager: 'kubectl-edit', operation: 'Update', time: '2026-01-01T10:05:00Z' },
          { manager: 'argocd-controller', operation: 'Apply', time: '2026-01-01T10:01:00Z' },
        ],
      }),
    ).toEqual({ fieldManager: 'kubectl-edit', operation: 'Update', time: '2026-01-01T10:05:00Z' });
    expect(
      lastWriteOf({
        managedFields: [
          { manager: 'a', operation: 'Update', time: '2026-01-01T10:00:00Z' },
          { manager: 'b', operation: 'Update', time: '2026-01-01T10:00:01Z', subresource: 'status' },
        ],
      }),
    ).toEqual({
      fieldManager: 'b',
      operation: 'Update',
      time: '2026-01-01T10:00:01Z',
      subresource: 'status',
    });
  });

  it('lists the other managers of the same second: managedFields can not order them', () => {
    const write = lastWriteOf({
      managedFields: [
        { manager: 'kubectl-create', operation: 'Update', time: '2026-01-01T10:00:00Z' },
        { manager: 'kubectl-label', operation: 'Update', time: '2026-01-01T10:00:00Z' },
        { manager: 'old', operation: 'Update', time: '2025-01-01T10:00:00Z' },
      ],
    });
    expect(write).toEqual({
      fieldManager: 'kubectl-create',
      operation: 'Update',
      time: '2026-01-01T10:00:00Z',
      sameSecond: ['kubectl-label'],
    });
    expect(describeLastWrite(write!)).toBe(
      'field manager "kubectl-create" (Update, 2026-01-01T10:00:00Z; same second: kubectl-label)',
    );
  });

  it.each([
    ['no metadata', undefined],
    ['no managedFields', {}],
    ['not a list', { managedFields: 'x' as unknown as [] }],
    ['entries without manager or time', { managedFields: [{ operation: 'Update' }, { manager: 'm' }] }],
    ['an unreadable time', { managedFields: [{ manager: 'm', time: 'yesterday' }] }],
  ])('%s: undefined', (_what, metadata) => {
    expect(lastWriteOf(metadata)).toBeUndefined();
  });
});

describe('restarter with the watch label and managedFields', () => {
  const labels = { app: 'helloworld', env: 'test' };
  const event = { id: 'e1', type: 'dev.knative.apiserver.ref.update', source: 'test', subject: undefined };
  const update = (name: string): Notice => ({
    type: 'change',
    event,
    action: 'update',
    mode: 'reference',
    ref: { kind: 'ConfigMap', namespace: 'helloworld', name },
  });
  const resync: Notice = { type: 'resync', event: { ...event, type: 'dev.knative.sources.ping' } };
  const MANAGED = [
    { manager: 'kubectl-create', operation: 'Update', time: '2026-01-01T09:00:00Z' },
    { manager: 'kubectl-edit', operation: 'Update', time: '2026-01-01T10:00:00Z' },
  ];

  function labelledOnly(name: string, data: Record<string, string>) {
    const object = configMap(name, data, { labels: { ...labels, [optIn.label]: 'true' }, optIn: false });
    object.metadata!.managedFields = MANAGED;
    return object;
  }

  it('acts on an update of a ConfigMap that carries only the label, naming its last field manager', async () => {
    const cluster = new FakeCluster();
    const { restarter } = await startRestarter(cluster, { configKinds: ['ConfigMap'] });
    cluster.put('configmaps', labelledOnly('cm', { MESSAGE: 'v1' }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));

    const outcome = await restarter.handle(update('cm'));
    expect(outcome.result).toBe('processed');
    expect(outcome.reason).toContain(
      'last changed by field manager "kubectl-edit" (Update, 2026-01-01T10:00:00Z)',
    );
    expect(outcome.decisions).toEqual([
      expect.objectContaining({
        action: 'restart',
        configs: ['ConfigMap helloworld/cm'],
        lastWrite: [
          {
            config: 'ConfigMap helloworld/cm',
            fieldManager: 'kubectl-edit',
            operation: 'Update',
            time: '2026-01-01T10:00:00Z',
          },
        ],
      }),
    ]);
  });

  it('the resync covers label-only and annotation-only objects alike, and nothing else', async () => {
    const cluster = new FakeCluster();
    const { restarter } = await startRestarter(cluster, { configKinds: ['ConfigMap'] });
    cluster.put('configmaps', labelledOnly('labelled', { A: '1' }));
    cluster.put('configmaps', configMap('annotated', { B: '1' }, { labels }));
    cluster.put('configmaps', configMap('plain', { C: '1' }, { labels, optIn: false }));
    cluster.put(RESOURCE.Deployment!, workload('Deployment', 'w', { labels }));

    const outcome = await restarter.handle(resync);
    expect(outcome.reason).toBe('resync of 2 opted-in config object(s) in 1 namespace(s)');
    const [decision] = outcome.decisions;
    expect([...(decision?.configs ?? [])].sort()).toEqual([
      'ConfigMap helloworld/annotated',
      'ConfigMap helloworld/labelled',
    ]);
    // The fake cluster records no managedFields of its own: only the labelled object has them.
    expect(decision?.lastWrite).toEqual([
      expect.objectContaining({ config: 'ConfigMap helloworld/labelled', fieldManager: 'kubectl-edit' }),
    ]);
  });
});
