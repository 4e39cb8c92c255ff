/**
 * Following restarts to their outcome in the act layer, over the stubbed API module: a restart writes the
 * rollout record and a `Restarted` Event; events about the workload (its status) then write `rolled-out`,
 * `failed` or `superseded` once, with the Event, the metrics and the `config-restarter.outcome` reply; a second
 * instance, a cold one or a resync carry on from the record on the workload.
 */
import request from 'supertest';
import { HTTP } from 'cloudevents';
import { apiServerSourceRequest } from '../../../cluster/apiserver-event.js';
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import type { Notice } from '../../../functions/config-restarter/src/event.js';
import type { KubeObject } from '../../../functions/config-restarter/src/model.js';
import { OUTCOME_EVENT_TYPE } from '../../../functions/config-restarter/src/reply.js';
import { parseRolloutRecord } from '../../../functions/config-restarter/src/rollout.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import { configMap, FakeCluster, RESOURCE, startRestarter, stopStarted, workload } from './fake-cluster.js';

afterEach(stopStarted);

const NS = 'helloworld';
const keys = annotationKeys('rolling.restart.controller');
const labels = { app: 'web', env: 'test' };
const DEPLOY = RESOURCE.Deployment!;
const deploymentKind = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
const info = { id: 'e1', type: 'dev.knative.apiserver.ref.update', source: 'test', subject: undefined };
const edit: Notice = {
  type: 'change',
  event: info,
  action: 'update',
  mode: 'reference',
  ref: { kind: 'ConfigMap', namespace: NS, name: 'cm' },
};
const statusEvent: Notice = {
  type: 'rollout',
  event: info,
  ref: { kind: deploymentKind, namespace: NS, name: 'w' },
};
const resync: Notice = { type: 'resync', event: { ...info, type: 'dev.knative.sources.ping' } };

function cluster(): FakeCluster {
  const fake = new FakeCluster();
  fake.put('configmaps', configMap('cm', { A: '0' }, { labels }));
  fake.put(DEPLOY, workload('Deployment', 'w', { labels }));
  return fake;
}

const stored = (fake: FakeCluster): KubeObject => fake.read(DEPLOY, NS, 'w')!;
const record = (fake: FakeCluster) => parseRolloutRecord(stored(fake).metadata?.annotations?.[keys.rollout]);
const generation = (fake: FakeCluster) => stored(fake).metadata!.generation!;
const reasons = (fake: FakeCluster) => fake.events.map((e) => e.reason as string);

/** Edits the ConfigMap and handles the event: the Deployment restarts. */
async function restartOnce(fake: FakeCluster, restarter: { handle(n: Notice): Promise<unknown> }) {
  fake.put('configmaps', configMap('cm', { A: '1' }, { labels }));
  await restarter.handle(edit);
}

const rolledOut = (fake: FakeCluster) => ({
  observedGeneration: generation(fake),
  replicas: 1,
  updatedReplicas: 1,
  availableReplicas: 1,
});

describe('following a restart to its outcome', () => {
  it('a restart writes the progressing record and a Restarted Event naming the config object and its hash', async () => {
    const fake = cluster();
    const { restarter } = await startRestarter(fake);
    await restartOnce(fake, restarter);
    const rec = record(fake)!;
    expect(rec.state).toBe('progressing');
    const template = (
      stored(fake).spec as { template: { metadata: { annotations: Record<string, string> } } }
    ).template;
    expect(rec.restartedAt).toBe(template.metadata.annotations[keys.restartTimestamp]);
    expect(Object.keys(rec.configs)).toEqual(['configmap/cm']);
    expect(fake.events).toHaveLength(1);
    const [event] = fake.events as {
      reason: string;
      message: string;
      type: string;
      involvedObject: object;
    }[];
    expect(event).toMatchObject({
      reason: 'Restarted',
      type: 'Normal',
      involvedObject: { kind: 'Deployment', name: 'w', namespace: NS, uid: 'uid-w' },
    });
    expect(event!.message).toContain(`ConfigMap/cm ${rec.configs['configmap/cm']}`);
  });

  it('status events: progressing answers ignored, the end writes rolled-out once with its Event and metrics', async () => {
    const fake = cluster();
    const { restarter, metrics } = await startRestarter(fake);
    await restartOnce(fake, restarter);
    fake.setStatus(DEPLOY, NS, 'w', {
      observedGeneration: generation(fake),
      replicas: 2,
      updatedReplicas: 1,
    });
    expect((await restarter.handle(statusEvent)).result).toBe('ignored');
    expect(record(fake)!.state).toBe('progressing');

    fake.setStatus(DEPLOY, NS, 'w', rolledOut(fake));
    const outcome = await restarter.handle(statusEvent);
    expect(outcome.result).toBe('processed');
    expect(outcome.rollouts).toEqual([
      expect.objectContaining({
        outcome: 'rolled-out',
        configs: { 'ConfigMap/cm': expect.any(String) as string },
      }),
    ]);
    expect(record(fake)!.state).toBe('rolled-out');
    expect(reasons(fake)).toEqual(['Restarted', 'RolledOut']);
    // The same event again (a retry, or the watch seeing the outcome write): nothing more.
    expect((await restarter.handle(statusEvent)).result).toBe('ignored');
    expect(reasons(fake)).toEqual(['Restarted', 'RolledOut']);
    const text = await metrics.registry.metrics();
    expect(text).toContain(
      'config_restarter_rollout_outcomes_total{kind="Deployment",outcome="rolled-out"} 1',
    );
    expect(text).toContain('config_restarter_rollout_seconds_count{kind="Deployment"} 1');
  });

  it('ProgressDeadlineExceeded: failed, a Warning Event with the controller message', async () => {
    const fake = cluster();
    const { restarter } = await startRestarter(fake);
    await restartOnce(fake, restarter);
    fake.setStatus(DEPLOY, NS, 'w', {
      observedGeneration: generation(fake),
      conditions: [
        { type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded', message: 'timed out' },
      ],
    });
    const outcome = await restarter.handle(statusEvent);
    expect(outcome.rollouts?.[0]).toMatchObject({
      outcome: 'failed',
      message: 'ProgressDeadlineExceeded: timed out',
    });
    const failed = fake.events.find((e) => e.reason === 'RolloutFailed') as { type: string; message: string };
    expect(failed.type).toBe('Warning');
    expect(failed.message).toContain('ProgressDeadlineExceeded: timed out');
  });

  it("a user's own template change: superseded", async () => {
    const fake = cluster();
    const { restarter } = await startRestarter(fake);
    await restartOnce(fake, restarter);
    const current = stored(fake);
    const spec = current.spec as { template: { spec: { containers: { image?: string }[] } } };
    spec.template.spec.containers = [{ image: 'app:2' }];
    fake.put(DEPLOY, current);
    fake.setStatus(DEPLOY, NS, 'w', rolledOut(fake));
    const outcome = await restarter.handle(statusEvent);
    expect(outcome.rollouts?.[0]?.outcome).toBe('superseded');
    expect(reasons(fake)).toEqual(['Restarted', 'RolloutSuperseded']);
  });

  it('a newer restart while the first still rolls: the first is reported superseded with the new decisions', async () => {
    const fake = cluster();
    // A clock that moves a second per reading: the two restarts never share a millisecond.
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const { restarter } = await startRestarter(fake, {}, { now: () => new Date((clock += 1000)) });
    await restartOnce(fake, restarter);
    const first = record(fake)!;
    fake.put('configmaps', configMap('cm', { A: '2' }, { labels }));
    const outcome = await restarter.handle(edit);
    expect(outcome.decisions.map((d) => d.action)).toEqual(['restart']);
    expect(outcome.rollouts).toEqual([
      expect.objectContaining({ outcome: 'superseded', restartedAt: first.restartedAt }),
    ]);
    expect(record(fake)!.restartedAt).not.toBe(first.restartedAt);
    expect(reasons(fake)).toEqual(['Restarted', 'Restarted', 'RolloutSuperseded']);
  });

  it('two instances see the end: one outcome written, one Event', async () => {
    const fake = cluster();
    const a = await startRestarter(fake);
    const b = await startRestarter(fake);
    await restartOnce(fake, a.restarter);
    fake.setStatus(DEPLOY, NS, 'w', rolledOut(fake));
    const outcomes = await Promise.all([a.restarter.handle(statusEvent), b.restarter.handle(statusEvent)]);
    expect(outcomes.map((o) => o.result).sort()).toEqual(['ignored', 'processed']);
    expect(reasons(fake)).toEqual(['Restarted', 'RolledOut']);
  });

  it('a lost status event: a cold instance resumes at its resync from the record on the workload', async () => {
    const fake = cluster();
    const first = await startRestarter(fake);
    await restartOnce(fake, first.restarter);
    first.runtime.stop();
    fake.setStatus(DEPLOY, NS, 'w', rolledOut(fake));
    const cold = await startRestarter(fake);
    const outcome = await cold.restarter.handle(resync);
    expect(outcome.rollouts).toEqual([expect.objectContaining({ outcome: 'rolled-out' })]);
    expect(outcome.decisions.map((d) => d.action)).toEqual(['skip']);
    expect(record(fake)!.state).toBe('rolled-out');
  });

  it('an Event the API server refuses is counted and logged; the restart still succeeds', async () => {
    const fake = cluster();
    const { restarter, metrics } = await startRestarter(fake);
    fake.failures.push({ verb: 'create', resource: 'events', status: 403 });
    fake.put('configmaps', configMap('cm', { A: '1' }, { labels }));
    const outcome = await restarter.handle(edit);
    expect(outcome.result).toBe('processed');
    expect(outcome.failures).toEqual([]);
    expect(record(fake)!.state).toBe('progressing');
    expect(await metrics.registry.metrics()).toContain(
      'config_restarter_event_write_errors_total{reason="Restarted"} 1',
    );
  });

  it("an event about a Knative Revision's own Deployment (it carries the watch label too) reads nothing", async () => {
    const fake = cluster();
    fake.put(
      DEPLOY,
      workload('Deployment', 'web-00001-deployment', {
        labels: { ...labels, 'serving.knative.dev/service': 'web' },
        ownerReferences: [{ apiVersion: 'serving.knative.dev/v1', kind: 'Revision', name: 'web-00001' }],
      }),
    );
    const { restarter } = await startRestarter(fake);
    const outcome = await restarter.handle({
      type: 'rollout',
      event: info,
      ref: { kind: deploymentKind, namespace: NS, name: 'web-00001-deployment' },
    });
    expect(outcome.result).toBe('ignored');
    expect(outcome.reason).toContain('owned by Knative Revision web-00001');
    expect(fake.calls).toEqual([]);
  });

  it('dry run: no record, no Event', async () => {
    const fake = cluster();
    const { restarter } = await startRestarter(fake, { dryRun: true });
    await restartOnce(fake, restarter);
    expect(record(fake)).toBeUndefined();
    expect(fake.events).toEqual([]);
  });

  it('kinds whose rollouts are not followed still get their Restarted Event, and no record', async () => {
    const fake = new FakeCluster();
    fake.put('configmaps', configMap('cm', { A: '0' }, { labels }));
    fake.put(RESOURCE.CronJob!, workload('CronJob', 'job', { labels }));
    const { restarter } = await startRestarter(fake);
    await restartOnce(fake, restarter);
    expect(reasons(fake)).toEqual(['Restarted']);
    expect(fake.read(RESOURCE.CronJob!, NS, 'job')!.metadata?.annotations?.[keys.rollout]).toBeUndefined();
  });
});

describe('POST / with an event about a followed workload', () => {
  it('answers 200 with a config-restarter.outcome CloudEvent when the rollout ended, 202 while it rolls', async () => {
    const fake = cluster();
    const { runtime, restarter } = await startRestarter(fake);
    await restartOnce(fake, restarter);
    const object = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'w', namespace: NS } };
    const wire = apiServerSourceRequest({ action: 'update', mode: 'Reference', object });
    const rolling = await request(runtime.app).post('/').set(wire.headers).send(wire.body);
    expect(rolling.status).toBe(202);
    expect(rolling.body).toMatchObject({ result: 'ignored' });
    fake.setStatus(DEPLOY, NS, 'w', rolledOut(fake));
    const res = await request(runtime.app).post('/').set(wire.headers).send(wire.body);
    expect(res.status).toBe(200);
    const reply = HTTP.toEvent({ headers: res.headers, body: res.text });
    expect(Array.isArray(reply)).toBe(false);
    const event = reply as { type: string; data: Record<string, unknown> };
    expect(event.type).toBe(OUTCOME_EVENT_TYPE);
    expect(event.data).toMatchObject({
      workload: { apiVersion: 'apps/v1', kind: 'Deployment', namespace: NS, name: 'w' },
      outcome: 'rolled-out',
      configs: { 'ConfigMap/cm': expect.stringMatching(/^sha256:/) as string },
      restartedAt: expect.any(String) as string,
      changedAt: expect.any(String) as string,
      finishedAt: expect.any(String) as string,
      seconds: expect.any(Number) as number,
      message: '1/1 updated, 1 available, 0 old',
    });
  });
});

describe('a Knative Service whose new Revision fails', () => {
  const KSVC = RESOURCE.Service!;
  const ksvcKind = WORKLOAD_KINDS.find((k) => k.group === 'serving.knative.dev')!;
  const ksvcEvent: Notice = {
    type: 'rollout',
    event: info,
    ref: { kind: ksvcKind, namespace: NS, name: 'web' },
  };
  const earlier = '2026-01-01T00:00:00.000Z';
  const stamp = (fake: FakeCluster) =>
    (fake.read(KSVC, NS, 'web')!.spec as { template: { metadata: { annotations?: Record<string, string> } } })
      .template.metadata.annotations?.[keys.restartTimestamp];

  async function failedRevision(onFailure?: string) {
    const fake = new FakeCluster();
    fake.put('configmaps', configMap('cm', { A: '0' }, { labels }));
    fake.put(
      KSVC,
      workload('Service', 'web', {
        labels,
        templateAnnotations: { [keys.restartTimestamp]: earlier },
        annotations: onFailure ? { [keys.onFailure]: onFailure } : {},
      }),
    );
    const { restarter } = await startRestarter(fake);
    await restartOnce(fake, restarter);
    expect(stamp(fake)).not.toBe(earlier);
    fake.setStatus(KSVC, NS, 'web', {
      observedGeneration: fake.read(KSVC, NS, 'web')!.metadata!.generation,
      latestCreatedRevisionName: 'web-00002',
      latestReadyRevisionName: 'web-00001',
      conditions: [
        {
          type: 'ConfigurationsReady',
          status: 'False',
          reason: 'RevisionFailed',
          message: 'Revision "web-00002" failed with message: probe failed.',
        },
        { type: 'Ready', status: 'False', reason: 'RevisionFailed' },
      ],
    });
    return { fake, outcome: await restarter.handle(ksvcEvent) };
  }

  it("reports failed with the Revision's message; the template and traffic stay as Knative left them", async () => {
    const { fake, outcome } = await failedRevision();
    expect(outcome.rollouts?.[0]).toMatchObject({
      outcome: 'failed',
      message: 'RevisionFailed: Revision "web-00002" failed with message: probe failed.',
    });
    expect(outcome.rollouts?.[0]?.reverted).toBeUndefined();
    expect(stamp(fake)).not.toBe(earlier);
    expect((fake.read(KSVC, NS, 'web')!.spec as { traffic?: unknown }).traffic).toBeUndefined();
  });

  it('with onFailure: revert, the template goes back to the previous restart: the failed Revision is no longer the latest', async () => {
    const { fake, outcome } = await failedRevision('revert');
    expect(outcome.rollouts?.[0]).toMatchObject({ outcome: 'failed', reverted: true });
    expect(outcome.rollouts?.[0]?.message).toContain(
      'reverted (onFailure: revert): restartTimestamp back to',
    );
    expect(stamp(fake)).toBe(earlier);
    expect(
      parseRolloutRecord(fake.read(KSVC, NS, 'web')!.metadata?.annotations?.[keys.rollout]),
    ).toMatchObject({
      state: 'failed',
      reverted: true,
      previous: earlier,
    });
    expect((fake.read(KSVC, NS, 'web')!.spec as { traffic?: unknown }).traffic).toBeUndefined();
  });
});
