/**
 * The outcome of a restart, pure: the per-kind status rules (rollout-status.ts, reached through the
 * workload-kinds.ts table), the rollout record's codec, and the judgement of a read object against its record.
 */
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import type { KubeObject, PodTemplateLike } from '../../../functions/config-restarter/src/model.js';
import {
  formatRolloutRecord,
  judgeRollout,
  parseRolloutRecord,
  rolloutReport,
  templateFingerprint,
  type RolloutRecord,
} from '../../../functions/config-restarter/src/rollout.js';
import { WORKLOAD_KINDS, type WorkloadKind } from '../../../functions/config-restarter/src/workload-kinds.js';

const keys = annotationKeys('rolling.restart.controller');
const kindOf = (kind: string, group = 'apps'): WorkloadKind =>
  WORKLOAD_KINDS.find((k) => k.kind === kind && k.group === group)!;
const object = (
  spec: Record<string, unknown>,
  status: Record<string, unknown>,
  generation = 2,
): KubeObject => ({
  metadata: { name: 'w', namespace: 'ns', generation },
  spec,
  status: { observedGeneration: generation, ...status },
});
const deadline = (message: string) => ({
  conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message }],
});

describe('per-kind rollout rules (workload-kinds.ts table)', () => {
  const cases: [string, WorkloadKind, KubeObject, string][] = [
    [
      'Deployment: generation not yet observed',
      kindOf('Deployment'),
      object({ replicas: 2 }, { observedGeneration: 1 }),
      'progressing',
    ],
    [
      'Deployment: new pods updated and available, old at 0',
      kindOf('Deployment'),
      object({ replicas: 2 }, { replicas: 2, updatedReplicas: 2, availableReplicas: 2 }),
      'rolled-out',
    ],
    [
      'Deployment: an old pod left',
      kindOf('Deployment'),
      object({ replicas: 2 }, { replicas: 3, updatedReplicas: 2, availableReplicas: 2 }),
      'progressing',
    ],
    [
      'Deployment: new pods not available',
      kindOf('Deployment'),
      object({ replicas: 2 }, { replicas: 2, updatedReplicas: 2, availableReplicas: 1 }),
      'progressing',
    ],
    [
      'Deployment: ProgressDeadlineExceeded',
      kindOf('Deployment'),
      object(
        { replicas: 2 },
        { replicas: 3, updatedReplicas: 1, ...deadline('ReplicaSet "w-2" has timed out progressing.') },
      ),
      'failed',
    ],
    [
      'Deployment: a deadline of the previous generation is not this one',
      kindOf('Deployment'),
      object({}, { observedGeneration: 1, ...deadline('old') }),
      'progressing',
    ],
    [
      'StatefulSet: update revision current, all ready',
      kindOf('StatefulSet'),
      object(
        { replicas: 2 },
        { currentRevision: 'b', updateRevision: 'b', updatedReplicas: 2, readyReplicas: 2 },
      ),
      'rolled-out',
    ],
    [
      'StatefulSet: update revision not current',
      kindOf('StatefulSet'),
      object(
        { replicas: 2 },
        { currentRevision: 'a', updateRevision: 'b', updatedReplicas: 1, readyReplicas: 2 },
      ),
      'progressing',
    ],
    [
      'DaemonSet: every pod updated and available',
      kindOf('DaemonSet'),
      object({}, { desiredNumberScheduled: 1, updatedNumberScheduled: 1, numberAvailable: 1 }),
      'rolled-out',
    ],
    [
      'DaemonSet: one unavailable',
      kindOf('DaemonSet'),
      object(
        {},
        { desiredNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 1, numberUnavailable: 1 },
      ),
      'progressing',
    ],
    [
      'Knative Service: Ready, latest created = latest ready',
      kindOf('Service', 'serving.knative.dev'),
      object(
        {},
        {
          conditions: [{ type: 'Ready', status: 'True' }],
          latestCreatedRevisionName: 'w-00002',
          latestReadyRevisionName: 'w-00002',
        },
      ),
      'rolled-out',
    ],
    [
      'Knative Service: new Revision not ready yet',
      kindOf('Service', 'serving.knative.dev'),
      object(
        {},
        {
          conditions: [{ type: 'Ready', status: 'Unknown' }],
          latestCreatedRevisionName: 'w-00002',
          latestReadyRevisionName: 'w-00001',
        },
      ),
      'progressing',
    ],
    [
      'Knative Service: the Revision failed',
      kindOf('Service', 'serving.knative.dev'),
      object(
        {},
        {
          conditions: [
            {
              type: 'Ready',
              status: 'False',
              reason: 'RevisionFailed',
              message: 'Revision "w-00002" failed with message: probe failed.',
            },
          ],
        },
      ),
      'failed',
    ],
  ];
  it.each(cases)('%s', (_name, kind, obj, state) => {
    expect(kind.rollout!.status(obj).state).toBe(state);
  });

  it('a failed rollout carries the controller message', () => {
    const status = kindOf('Deployment').rollout!.status(object({}, deadline('timed out')));
    expect(status.detail).toBe('ProgressDeadlineExceeded: timed out');
  });

  it.each([
    [[{ revisionName: 'w-00002', percent: 100, latestRevision: true }], '100 % of the traffic'],
    [
      [{ revisionName: 'w-00001', percent: 100 }],
      '0 % of the traffic (spec.traffic routes to pinned Revisions)',
    ],
  ])('a Ready Knative Service says which share of the traffic its new Revision gets', (traffic, says) => {
    const status = kindOf('Service', 'serving.knative.dev').rollout!.status(
      object(
        {},
        {
          conditions: [{ type: 'Ready', status: 'True' }],
          latestCreatedRevisionName: 'w-00002',
          latestReadyRevisionName: 'w-00002',
          traffic,
        },
      ),
    );
    expect(status.state).toBe('rolled-out');
    expect(status.detail).toContain(says);
  });

  it('CronJobs and Rollouts are not followed', () => {
    expect(kindOf('CronJob', 'batch').rollout).toBeUndefined();
    expect(kindOf('Rollout', 'argoproj.io').rollout).toBeUndefined();
  });
});

describe('rollout record', () => {
  const record: RolloutRecord = {
    state: 'progressing',
    restartedAt: '2026-01-01T00:00:10.000Z',
    changedAt: '2026-01-01T00:00:09.000Z',
    configs: { 'configmap/app': 'sha256:aa' },
    template: 'f00',
  };
  it('round-trips', () => {
    expect(parseRolloutRecord(formatRolloutRecord(record))).toEqual(record);
  });
  it.each([['not json'], ['{}'], ['{"state":"done","restartedAt":"x","template":"t"}'], ['[]'], ['null']])(
    'reads %s as no record',
    (value) => expect(parseRolloutRecord(value)).toBeUndefined(),
  );
  it('reports config names as decisions do, and seconds from the edit', () => {
    const report = rolloutReport(
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace: 'ns', name: 'w' },
      {
        ...record,
        configs: { 'configmap/app': 'sha256:aa', 'secret/db#k': 'sha256:bb' },
        state: 'rolled-out',
        finishedAt: '2026-01-01T00:00:21.500Z',
      },
    );
    expect(report.configs).toEqual({ 'ConfigMap/app': 'sha256:aa', 'Secret/db#k': 'sha256:bb' });
    expect(report.seconds).toBe(12.5);
  });
});

describe('judgeRollout', () => {
  const restartedAt = '2026-01-01T00:00:00.000Z';
  const template = (extra: Record<string, string> = {}, image = 'app:1') => ({
    metadata: { annotations: { [keys.restartTimestamp]: restartedAt, ...extra } },
    spec: { containers: [{ image }] },
  });
  const record = (state: RolloutRecord['state'] = 'progressing'): RolloutRecord => ({
    state,
    restartedAt,
    changedAt: restartedAt,
    configs: { 'configmap/app': 'sha256:aa' },
    template: templateFingerprint(template() as PodTemplateLike, keys.restartTimestamp),
  });
  const deployment = (
    status: Record<string, unknown>,
    tpl = template(),
    rec: RolloutRecord | null = record(),
  ): KubeObject => ({
    metadata: { generation: 2, annotations: rec ? { [keys.rollout]: formatRolloutRecord(rec) } : {} },
    spec: { replicas: 1, template: tpl },
    status: { observedGeneration: 2, ...status },
  });
  const done = { replicas: 1, updatedReplicas: 1, availableReplicas: 1 };
  const at = (seconds: number) => new Date(Date.parse(restartedAt) + seconds * 1000);
  const judge = (obj: KubeObject, kind = kindOf('Deployment'), now = at(5)) =>
    judgeRollout({ kind, object: obj, keys, now });

  const cases: [string, KubeObject, WorkloadKind, Date, string, string][] = [
    [
      'no record: nothing to follow',
      deployment(done, template(), null),
      kindOf('Deployment'),
      at(5),
      'none',
      '',
    ],
    [
      'an ended record is not judged again',
      deployment(done, template(), record('rolled-out')),
      kindOf('Deployment'),
      at(5),
      'none',
      '',
    ],
    [
      'still progressing',
      deployment({ replicas: 2, updatedReplicas: 1 }),
      kindOf('Deployment'),
      at(5),
      'progressing',
      '',
    ],
    ['rolled out', deployment(done), kindOf('Deployment'), at(5), 'ended', 'rolled-out'],
    [
      'failed by the controller',
      deployment(deadline('timed out')),
      kindOf('Deployment'),
      at(5),
      'ended',
      'failed',
    ],
    [
      'superseded: another writer changed the image',
      deployment(done, template({}, 'app:2')),
      kindOf('Deployment'),
      at(5),
      'ended',
      'superseded',
    ],
    [
      'superseded: kubectl rollout restart',
      deployment(done, template({ 'kubectl.kubernetes.io/restartedAt': 'x' })),
      kindOf('Deployment'),
      at(5),
      'ended',
      'superseded',
    ],
    [
      'superseded: a newer restartTimestamp',
      deployment(done, { ...template(), metadata: { annotations: { [keys.restartTimestamp]: 'later' } } }),
      kindOf('Deployment'),
      at(5),
      'ended',
      'superseded',
    ],
    ['StatefulSet before its deadline', deployment({}), kindOf('StatefulSet'), at(599), 'progressing', ''],
    [
      'StatefulSet past its deadline: failed',
      deployment({}),
      kindOf('StatefulSet'),
      at(601),
      'ended',
      'failed',
    ],
    ['a CronJob is not followed', deployment(done), kindOf('CronJob', 'batch'), at(5), 'none', ''],
  ];
  it('onFailure: revert is for Knative Services only: a failed Deployment is reported, its template left alone', () => {
    const failed = deployment(deadline('timed out'));
    failed.metadata!.annotations![keys.onFailure] = 'revert';
    const judgement = judge(failed);
    expect(judgement.verdict === 'ended' && judgement.record.state).toBe('failed');
    expect(judgement.verdict === 'ended' && judgement.revert).toBeUndefined();
  });

  it.each(cases)('%s', (_name, obj, kind, now, verdict, state) => {
    const judgement = judge(obj, kind, now);
    expect(judgement.verdict).toBe(verdict);
    if (judgement.verdict === 'ended') {
      expect(judgement.record.state).toBe(state);
      expect(judgement.record.finishedAt).toBe(now.toISOString());
      expect(judgement.record.configs).toEqual({ 'configmap/app': 'sha256:aa' });
    }
  });
});
