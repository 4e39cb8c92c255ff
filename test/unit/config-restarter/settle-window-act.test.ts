/**
 * Settle windows in the act layer, over the stubbed API module: the timers of a warm instance close a
 * window at its end with one restart covering a ConfigMap and a Secret; a cold instance's first list, an
 * event and a resync each close a window no timer closed; a failed close is tried again; the timers follow
 * the index's entries.
 */
import { jest } from '@jest/globals';
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import type { Notice } from '../../../functions/config-restarter/src/event.js';
import { Failure } from '../../../functions/config-restarter/src/failure.js';
import { contentHash } from '../../../functions/config-restarter/src/hash.js';
import { silentLogger } from '../../../functions/config-restarter/src/log.js';
import { createMetrics } from '../../../functions/config-restarter/src/metrics.js';
import type { ConfigObject } from '../../../functions/config-restarter/src/model.js';
import type { Outcome } from '../../../functions/config-restarter/src/outcome.js';
import {
  formatSettleWindow,
  parseHashRecord,
  parseSettleWindow,
} from '../../../functions/config-restarter/src/records.js';
import type { RestarterSettings } from '../../../functions/config-restarter/src/restarter.js';
import { WindowTimers } from '../../../functions/config-restarter/src/window-timers.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { configMap, FakeCluster, RESOURCE, startRestarter, stopStarted, workload } from './fake-cluster.js';

afterEach(stopStarted);

const NS = 'helloworld';
const keys = annotationKeys('rolling.restart.controller');
const labels = { app: 'web', env: 'test' };
const podSpec = { containers: [{}], volumes: [{ name: 's', secret: { secretName: 's' } }] };
const SETTINGS: Partial<RestarterSettings> = { configKinds: ['ConfigMap', 'Secret'] };
const event = { id: 'e1', type: 'dev.knative.apiserver.ref.update', source: 'test', subject: undefined };
const change = (kind: 'ConfigMap' | 'Secret', name: string): Notice => ({
  type: 'change',
  event,
  action: 'update',
  mode: 'reference',
  ref: { kind, namespace: NS, name },
});
const resync: Notice = { type: 'resync', event: { ...event, type: 'dev.knative.sources.ping' } };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function secretOf(value: string): ConfigObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 's', namespace: NS, annotations: { [keys.triggerRestart]: 'true' } },
    data: { password: Buffer.from(value).toString('base64') },
  };
}

/** A cluster with the ConfigMap `cm` (by labels) and the Secret `s` (by a volume) of the Deployment `w`. */
function clusterWith(settle: string): FakeCluster {
  const cluster = new FakeCluster();
  const put = cluster.put('configmaps', configMap('cm', { A: '0' }, { labels }));
  const secret = cluster.put('secrets', secretOf('p0'));
  cluster.put(
    RESOURCE.Deployment!,
    workload('Deployment', 'w', {
      labels,
      podSpec,
      annotations: {
        [keys.settle]: settle,
        [keys.configHashes]: JSON.stringify({
          'configmap/cm': contentHash('ConfigMap', put),
          'secret/s': contentHash('Secret', secret),
        }),
      },
    }),
  );
  return cluster;
}

const stored = (cluster: FakeCluster) => cluster.read(RESOURCE.Deployment!, NS, 'w')!;
const generation = (cluster: FakeCluster) => stored(cluster).metadata!.generation!;
const annotations = (cluster: FakeCluster) => stored(cluster).metadata!.annotations ?? {};
const restartedAt = (cluster: FakeCluster) =>
  (stored(cluster).spec as { template: { metadata: { annotations?: Record<string, string> } } }).template
    .metadata.annotations?.[keys.restartTimestamp];
const currentHashes = (cluster: FakeCluster) => ({
  'configmap/cm': contentHash('ConfigMap', cluster.read('configmaps', NS, 'cm')!),
  'secret/s': contentHash('Secret', cluster.read('secrets', NS, 's')!),
});
const patches = (cluster: FakeCluster) => cluster.calls.filter((c) => c.verb === 'patch').length;

/** The ConfigMap, then 100 ms later the Secret, each with its event. */
async function changeBoth(cluster: FakeCluster, handle: (notice: Notice) => Promise<Outcome>) {
  cluster.put('configmaps', configMap('cm', { A: '1' }, { labels }));
  const first = await handle(change('ConfigMap', 'cm'));
  await sleep(100);
  cluster.put('secrets', secretOf('p1'));
  const second = await handle(change('Secret', 's'));
  return [first, second].map((o) => o.decisions.map((d) => d.action).join());
}

async function metric(metrics: ReturnType<typeof createMetrics>, transition: string): Promise<number> {
  const values = (await metrics.settleWindows.get()).values;
  return values.find((v) => v.labels.transition === transition)?.value ?? 0;
}

describe('a warm instance', () => {
  it('closes the window at its end: one restart with both new contents, nothing before, nothing after', async () => {
    const cluster = clusterWith('600ms');
    const { restarter, metrics } = await startRestarter(cluster, SETTINGS);
    const before = generation(cluster);
    const opened = Date.now();
    expect(await changeBoth(cluster, (n) => restarter.handle(n))).toEqual(['defer', 'defer']);
    const window = parseSettleWindow(annotations(cluster)[keys.settleWindow]);
    expect(window?.records).toEqual(['configmap/cm', 'secret/s']);
    expect(restartedAt(cluster)).toBeUndefined();

    await sleep(Math.max(0, Date.parse(window!.until) - Date.now() - 150));
    expect(restartedAt(cluster)).toBeUndefined();
    const deadline = Date.now() + 3000;
    while (restartedAt(cluster) === undefined && Date.now() < deadline) await sleep(20);
    expect(Date.parse(restartedAt(cluster)!)).toBeGreaterThanOrEqual(Date.parse(window!.until));
    expect(Date.now() - opened).toBeGreaterThanOrEqual(600);
    expect(parseHashRecord(annotations(cluster)[keys.configHashes])).toEqual(currentHashes(cluster));
    expect(annotations(cluster)[keys.settleWindow]).toBeUndefined();
    // One new pod template; three patches: the window opened, extended, and the timer's restart.
    expect(generation(cluster) - before).toBe(1);
    expect(patches(cluster)).toBe(3);

    const after = patches(cluster);
    await sleep(300);
    expect(patches(cluster)).toBe(after);
    expect(await restarter.handle(resync)).toMatchObject({ decisions: [{ action: 'skip' }] });
    expect(patches(cluster)).toBe(after);
    expect([await metric(metrics, 'opened'), await metric(metrics, 'extended')]).toEqual([1, 1]);
    expect(await metric(metrics, 'closed')).toBe(1);
  });

  it('the timer restarts with the content at the window end, not the content of the events', async () => {
    const cluster = clusterWith('300ms');
    const { restarter } = await startRestarter(cluster, SETTINGS);
    await changeBoth(cluster, (n) => restarter.handle(n));
    cluster.put('configmaps', configMap('cm', { A: 'final' }, { labels }));
    const deadline = Date.now() + 3000;
    while (restartedAt(cluster) === undefined && Date.now() < deadline) await sleep(20);
    expect(parseHashRecord(annotations(cluster)[keys.configHashes])).toEqual(currentHashes(cluster));
  });
});

describe('a window no timer closed (the instance stopped inside it)', () => {
  /** Opens a window with both changes on an instance that then stops, and waits past the window's end. */
  async function leftOpen(settle = '200ms') {
    const cluster = clusterWith(settle);
    const first = await startRestarter(cluster, SETTINGS);
    await changeBoth(cluster, (n) => first.restarter.handle(n));
    first.restarter.stop();
    first.index.stop();
    const until = parseSettleWindow(annotations(cluster)[keys.settleWindow])!.until;
    await sleep(Math.max(0, Date.parse(until) - Date.now() + 50));
    expect(restartedAt(cluster)).toBeUndefined();
    return { cluster, generation: generation(cluster) };
  }

  it("is closed by a cold instance's first list, without any event", async () => {
    const { cluster, generation: before } = await leftOpen();
    cluster.calls.splice(0);
    await startRestarter(cluster, SETTINGS);
    const deadline = Date.now() + 3000;
    while (restartedAt(cluster) === undefined && Date.now() < deadline) await sleep(20);
    expect(restartedAt(cluster)).toBeDefined();
    expect(generation(cluster)).toBe(before + 1);
    expect(parseHashRecord(annotations(cluster)[keys.configHashes])).toEqual(currentHashes(cluster));
    expect(annotations(cluster)[keys.settleWindow]).toBeUndefined();
  });

  it.each([
    ['an event about one of its config objects', change('ConfigMap', 'cm')],
    ['the resync', resync],
  ])('is closed by %s, covering every config object of the window', async (_name, notice) => {
    const { cluster, generation: before } = await leftOpen();
    const { restarter } = await startRestarter(cluster, SETTINGS);
    // No timers: the close must come from the notice itself.
    restarter.stop();
    const outcome = await restarter.handle(notice);
    expect(outcome.decisions.map((d) => d.action)).toContain('restart');
    expect(outcome.decisions[0]?.reason).toContain('covers ConfigMap/cm, Secret/s');
    expect(generation(cluster)).toBe(before + 1);
    expect(parseHashRecord(annotations(cluster)[keys.configHashes])).toEqual(currentHashes(cluster));
    expect(annotations(cluster)[keys.settleWindow]).toBeUndefined();
  });

  it('a window whose config objects are all gone closes without a restart', async () => {
    const { cluster, generation: before } = await leftOpen();
    cluster.remove('configmaps', NS, 'cm');
    cluster.remove('secrets', NS, 's');
    const { restarter } = await startRestarter(cluster, SETTINGS);
    restarter.stop();
    const outcome = await restarter.closeWindow({ kind: WORKLOAD_KINDS[0]!, namespace: NS, name: 'w' });
    expect(outcome.decisions.map((d) => d.action)).toEqual(['record']);
    expect(outcome.decisions[0]?.reason).toContain('none of them is tied to it any more');
    expect(restartedAt(cluster)).toBeUndefined();
    expect(generation(cluster)).toBe(before);
    expect(annotations(cluster)[keys.settleWindow]).toBeUndefined();
  });
});

describe('the window timers', () => {
  const deployment = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
  const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app'] };
  /** A summary of `name` with a window ending `untilMs` from now (none when undefined). */
  const summary = (untilMs?: number, name = 'w') =>
    summarizeWorkload(
      settings,
      deployment,
      workload('Deployment', name, {
        annotations:
          untilMs === undefined
            ? {}
            : {
                [keys.settleWindow]: formatSettleWindow({
                  records: ['configmap/cm'],
                  opened: new Date().toISOString(),
                  until: new Date(Date.now() + untilMs).toISOString(),
                }),
              },
      }),
    );
  const processed: Outcome = { result: 'processed', reason: 'closed', decisions: [], failures: [] };

  /** Timers over a close that answers `outcomes` in turn, with a clock `lag` ms behind the real one. */
  function timers(outcomes: Outcome[] = []) {
    let lag = 0;
    const close = jest.fn((_key: unknown) => Promise.resolve(outcomes.shift() ?? processed));
    const timed = new WindowTimers({
      close,
      logger: silentLogger,
      metrics: createMetrics(),
      now: () => new Date(Date.now() - lag),
      retryMs: 20,
    });
    return { timed, close, setLag: (ms: number) => (lag = ms) };
  }

  it('closes a window at its end, once, and an ended one at once', async () => {
    const { timed, close } = timers();
    timed.observed(summary(150));
    timed.observed(summary(-5000, 'ended'));
    await sleep(80);
    expect(close.mock.calls.map(([key]) => (key as { name: string }).name)).toEqual(['ended']);
    await sleep(200);
    expect(close).toHaveBeenCalledTimes(2);
    // The same window observed again (a watch event of the workload) is not closed twice.
    const again = summary(-1000);
    timed.observed(again);
    timed.observed(again);
    await sleep(80);
    expect(close).toHaveBeenCalledTimes(3);
    timed.stop();
  });

  it('moves the timer when the end moves, drops it when the window or the workload goes, and on stop', async () => {
    const { timed, close } = timers();
    timed.observed(summary(50));
    timed.observed(summary(400));
    timed.observed(summary(50, 'gone'));
    timed.removed(summary(50, 'gone'));
    timed.observed(summary(50, 'closed-elsewhere'));
    timed.observed(summary(undefined, 'closed-elsewhere'));
    await sleep(200);
    expect(close).not.toHaveBeenCalled();
    timed.stop();
    await sleep(350);
    expect(close).not.toHaveBeenCalled();
  });

  it('tries a close that failed transiently again, and not one that failed for good', async () => {
    const failed = (failure: Failure): Outcome => ({
      result: 'failed',
      reason: failure.message,
      decisions: [],
      failures: [],
      failure,
    });
    const later = timers([
      failed(new Failure('api-unavailable', 'HTTP 503')),
      failed(new Failure('conflicts', 'still conflicting')),
    ]);
    later.timed.observed(summary(-1));
    await sleep(300);
    expect(later.close).toHaveBeenCalledTimes(3);
    later.timed.stop();
    const never = timers([failed(new Failure('api-forbidden', 'HTTP 403'))]);
    never.timed.observed(summary(-1));
    await sleep(150);
    expect(never.close).toHaveBeenCalledTimes(1);
    never.timed.stop();
  });

  it('a window longer than a timer can wait (about 24.8 days) is neither closed early nor spun on', async () => {
    const setTimer = jest.spyOn(globalThis, 'setTimeout');
    const { timed, close } = timers();
    timed.observed(summary(30 * 24 * 3600 * 1000));
    await sleep(100);
    timed.stop();
    expect(close).not.toHaveBeenCalled();
    // Node fires a longer timer at once: the delay is capped, and the window armed once.
    const delays = setTimer.mock.calls.map(([, ms]) => ms ?? 0).filter((ms) => ms > 1000);
    setTimer.mockRestore();
    expect(delays).toEqual([2 ** 31 - 1]);
  });

  it('a timer that fires before the instance clock reaches the end waits for it', async () => {
    const { timed, close, setLag } = timers();
    timed.observed(summary(30));
    // The clock the decisions use is 250 ms behind when the timer fires: the close waits for it.
    setLag(250);
    await sleep(150);
    expect(close).not.toHaveBeenCalled();
    await sleep(300);
    expect(close).toHaveBeenCalledTimes(1);
    timed.stop();
  });
});
