/**
 * The settle window, the step of a decision between "restart" and storm control: opened by the first
 * change, extended by further config objects, closed by one restart with every config object's content of
 * that moment; with storm control, reverted content, lost ties and first contacts inside the window.
 */
import { annotationKeys } from '../../../functions/config-restarter/src/annotations.js';
import { decideForWorkload } from '../../../functions/config-restarter/src/decide.js';
import type {
  ConfigChange,
  DecisionSettings,
  Trigger,
} from '../../../functions/config-restarter/src/decision-types.js';
import type { ConfigKind } from '../../../functions/config-restarter/src/config.js';
import type { KubeObject } from '../../../functions/config-restarter/src/model.js';
import {
  configOfRecordKey,
  formatSettleWindow,
  parseHashRecord,
  parsePendingRestart,
  parseSettleWindow,
} from '../../../functions/config-restarter/src/records.js';
import { endedWindow, windowGaps } from '../../../functions/config-restarter/src/settle-window.js';
import { WORKLOAD_KINDS } from '../../../functions/config-restarter/src/workload-kinds.js';
import { summarizeWorkload } from '../../../functions/config-restarter/src/workload-summary.js';
import { workload } from './fake-cluster.js';

const settings: DecisionSettings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app'] };
const keys = annotationKeys(settings.annotationPrefix);
const T0 = '2026-11-21T12:00:00.000Z';
const at = (offsetMs: number): Date => new Date(Date.parse(T0) + offsetMs);
const labels = { app: 'web' };
/** Tied to the ConfigMap `cm` by labels and to the Secret `s` by a volume. */
const podSpec = { containers: [{}], volumes: [{ name: 's', secret: { secretName: 's' } }] };

/** The change a config object's content amounts to (hashes written out, so records are easy to read). */
function changeOf(kind: ConfigKind, name: string, hash: string, trigger: Trigger = 'update'): ConfigChange {
  return {
    ref: { kind, namespace: 'helloworld', name },
    hash,
    labels: kind === 'ConfigMap' ? labels : {},
    trigger,
  };
}
const cm = (hash: string, trigger?: Trigger) => changeOf('ConfigMap', 'cm', hash, trigger);
const secret = (hash: string, trigger?: Trigger) => changeOf('Secret', 's', hash, trigger);

/** Rolled out: `old` for both. */
const RECORDED = { 'configmap/cm': 'old-cm', 'secret/s': 'old-s' };

function deployment(
  annotations: Record<string, string> = {},
  records: Record<string, string> = RECORDED,
  lastRestart?: string,
): KubeObject {
  return workload('Deployment', 'w', {
    labels,
    podSpec,
    annotations: { [keys.configHashes]: JSON.stringify(records), ...annotations },
    ...(lastRestart ? { templateAnnotations: { [keys.restartTimestamp]: lastRestart } } : {}),
  });
}

const windowOf = (records: string[], until: Date, opened = T0) => ({
  [keys.settleWindow]: formatSettleWindow({ records, opened, until: until.toISOString() }),
});

function decide(object: KubeObject, changes: ConfigChange[], now: Date, s: DecisionSettings = settings) {
  const kind = WORKLOAD_KINDS.find((k) => k.kind === object.kind)!;
  return decideForWorkload(s, summarizeWorkload(s, kind, object), changes, now);
}

function path(object: unknown, keysOf: string[]): unknown {
  return keysOf.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], object);
}

interface Case {
  name: string;
  object: KubeObject;
  changes: ConfigChange[];
  now: Date;
  settings?: DecisionSettings;
  action: string;
  /** The settle-window annotation the patch writes: the window, `null` (closed) or undefined (untouched). */
  window?: { records: string[]; opened: string; until: string } | null;
  transition?: string;
  /** The records the patch writes, when it writes any. */
  records?: Record<string, string>;
  restarted: boolean;
  reason: string[];
}

const CASES: Case[] = [
  {
    name: 'no window configured: the change restarts at once',
    object: deployment(),
    changes: [cm('new-cm')],
    now: at(0),
    action: 'restart',
    records: { 'configmap/cm': 'new-cm', 'secret/s': 'old-s' },
    restarted: true,
    reason: ['content changed from old-cm to new-cm'],
  },
  {
    name: 'settle 2s: the first change opens a window and restarts nothing',
    object: deployment({ [keys.settle]: '2s' }),
    changes: [cm('new-cm')],
    now: at(0),
    action: 'defer',
    window: { records: ['configmap/cm'], opened: T0, until: at(2000).toISOString() },
    transition: 'opened',
    restarted: false,
    reason: [
      `settle: window open until ${at(2000).toISOString()}, covers ConfigMap/cm`,
      'opened now (settle 2s): one restart at its end',
    ],
  },
  {
    name: 'SETTLE_WINDOW 30s applies without the annotation',
    object: deployment(),
    changes: [cm('new-cm')],
    now: at(0),
    settings: { ...settings, settleWindowMs: 30_000 },
    action: 'defer',
    window: { records: ['configmap/cm'], opened: T0, until: at(30_000).toISOString() },
    transition: 'opened',
    restarted: false,
    reason: ['opened now (settle 30s)'],
  },
  {
    name: 'the annotation 0 turns a default window off',
    object: deployment({ [keys.settle]: '0' }),
    changes: [cm('new-cm')],
    now: at(0),
    settings: { ...settings, settleWindowMs: 30_000 },
    action: 'restart',
    records: { 'configmap/cm': 'new-cm', 'secret/s': 'old-s' },
    restarted: true,
    reason: ['content changed'],
  },
  {
    name: 'an unreadable annotation: the default applies and the reason says so',
    object: deployment({ [keys.settle]: 'a while' }),
    changes: [cm('new-cm')],
    now: at(0),
    settings: { ...settings, settleWindowMs: 5000 },
    action: 'defer',
    window: { records: ['configmap/cm'], opened: T0, until: at(5000).toISOString() },
    transition: 'opened',
    restarted: false,
    reason: ['"a while" is not a duration such as 2s or 30s, the default applies'],
  },
  {
    name: 'a Secret 200 ms later joins the open window; its end stays',
    object: deployment({ [keys.settle]: '2s', ...windowOf(['configmap/cm'], at(2000)) }),
    changes: [secret('new-s')],
    now: at(200),
    action: 'defer',
    window: { records: ['configmap/cm', 'secret/s'], opened: T0, until: at(2000).toISOString() },
    transition: 'extended',
    restarted: false,
    reason: [`covers ConfigMap/cm, Secret/s; added Secret/s`],
  },
  {
    name: 'the same ConfigMap again inside the window: already covered, nothing written',
    object: deployment({ [keys.settle]: '2s', ...windowOf(['configmap/cm'], at(2000)) }),
    changes: [cm('newer-cm')],
    now: at(1000),
    action: 'skip',
    restarted: false,
    reason: ['(already covered)'],
  },
  {
    name: 'the window has ended: one restart with the content of that moment of both',
    object: deployment({ [keys.settle]: '2s', ...windowOf(['configmap/cm', 'secret/s'], at(2000)) }),
    changes: [cm('latest-cm', 'resync'), secret('latest-s', 'resync')],
    now: at(2000),
    action: 'restart',
    window: null,
    transition: 'closed',
    records: { 'configmap/cm': 'latest-cm', 'secret/s': 'latest-s' },
    restarted: true,
    reason: [
      `settle: window opened at ${T0} ended at ${at(2000).toISOString()}, covers ConfigMap/cm, Secret/s`,
    ],
  },
  {
    name: 'a first contact of a config object of the window is owed its restart, not recorded',
    object: deployment({ [keys.settle]: '2s', ...windowOf(['configmap/cm'], at(2000)) }, {}),
    changes: [cm('new-cm', 'resync')],
    now: at(2500),
    action: 'restart',
    window: null,
    transition: 'closed',
    records: { 'configmap/cm': 'new-cm' },
    restarted: true,
    reason: ['restart owed: changed inside the settle window opened at'],
  },
  {
    name: 'a resync inside the window records nothing the window owes',
    object: deployment({ [keys.settle]: '2s', ...windowOf(['configmap/cm'], at(2000)) }, {}),
    changes: [cm('new-cm', 'resync')],
    now: at(1000),
    action: 'skip',
    restarted: false,
    reason: ['(already covered)'],
  },
  {
    name: 'the content went back inside the window: it closes without a restart',
    object: deployment({ [keys.settle]: '2s', ...windowOf(['configmap/cm'], at(2000)) }),
    changes: [cm('old-cm', 'resync')],
    now: at(3000),
    action: 'record',
    window: null,
    transition: 'closed',
    restarted: false,
    reason: ['nothing to roll out, content is what was rolled out'],
  },
  {
    name: 'ended, but inside the minimum interval: the window closes into a pending restart',
    object: deployment(
      {
        [keys.settle]: '2s',
        [keys.minRestartInterval]: '5m',
        ...windowOf(['configmap/cm', 'secret/s'], at(2000)),
      },
      RECORDED,
      at(-60_000).toISOString(),
    ),
    changes: [cm('latest-cm', 'resync'), secret('latest-s', 'resync')],
    now: at(2000),
    action: 'defer',
    window: null,
    transition: 'closed',
    restarted: false,
    reason: ['restart deferred until', 'settle: window opened at'],
  },
  {
    name: 'ended, and none of its config objects is tied any more: closed, nothing rolled',
    object: deployment({ [keys.settle]: '2s', ...windowOf(['configmap/gone'], at(2000)) }),
    changes: [],
    now: at(2000),
    action: 'record',
    window: null,
    transition: 'closed',
    restarted: false,
    reason: ['none of them is tied to it any more'],
  },
];

describe('the settle-window step', () => {
  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const decision = decide(c.object, c.changes, c.now, c.settings);
    expect(decision?.action).toBe(c.action);
    for (const part of c.reason) expect(decision?.reason).toContain(part);
    const written = decision?.patch?.metadata.annotations ?? {};
    if (c.window === undefined) expect(written).not.toHaveProperty([keys.settleWindow]);
    else if (c.window === null) expect(written[keys.settleWindow]).toBeNull();
    else expect(parseSettleWindow(written[keys.settleWindow] ?? undefined)).toEqual(c.window);
    expect(decision?.window?.transition).toBe(c.transition);
    if (c.records) expect(parseHashRecord(written[keys.configHashes])).toEqual(c.records);
    else expect(written[keys.configHashes]).toBeUndefined();
    const restartedAt = path(decision?.patch, ['spec', 'template', 'metadata', 'annotations']);
    expect(restartedAt).toEqual(c.restarted ? { [keys.restartTimestamp]: c.now.toISOString() } : undefined);
  });

  it('a window closed into storm control keeps every config object owed in pendingRestart', () => {
    const c = CASES.find((x) => x.name.startsWith('ended, but inside the minimum interval'))!;
    const decision = decide(c.object, c.changes, c.now);
    expect(
      parsePendingRestart(decision?.patch?.metadata.annotations[keys.pendingRestart] ?? undefined),
    ).toEqual({
      records: ['configmap/cm', 'secret/s'],
      since: c.now.toISOString(),
      due: at(-60_000 + 300_000).toISOString(),
    });
  });

  it('opening a window writes the first contact of another config object right away', () => {
    const decision = decide(
      deployment({ [keys.settle]: '2s' }, { 'configmap/cm': 'old-cm' }),
      [cm('new-cm'), secret('first-s', 'add')],
      at(0),
    );
    expect(decision?.action).toBe('defer');
    const written = decision!.patch!.metadata.annotations;
    expect(parseSettleWindow(written[keys.settleWindow] ?? undefined)?.records).toEqual(['configmap/cm']);
    expect(parseHashRecord(written[keys.configHashes])).toEqual({
      'configmap/cm': 'old-cm',
      'secret/s': 'first-s',
    });
  });

  it('a workload not opted in keeps its window: nothing is written to it', () => {
    const object = deployment({ [keys.settle]: '2s', ...windowOf(['configmap/cm'], at(2000)) });
    object.metadata!.annotations![keys.restartOnTrigger] = 'false';
    expect(decide(object, [], at(3000))).toBeUndefined();
    expect(decide(object, [cm('new-cm')], at(3000))?.action).toBe('skip');
  });
});

describe('the window on the workload', () => {
  const summary = (annotations: Record<string, string>) =>
    summarizeWorkload(
      settings,
      WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!,
      deployment(annotations),
    );

  it('has ended once its end is reached, not before', () => {
    const w = summary(windowOf(['configmap/cm'], at(2000)));
    expect(endedWindow(w, at(1999))).toBeUndefined();
    expect(endedWindow(w, at(2000))?.until).toBe(at(2000).toISOString());
  });

  it('an ended window names the config objects an event did not read, once each and of its namespace', () => {
    const w = summary(windowOf(['configmap/cm#A,B', 'configmap/cm', 'secret/s', 'secret/t'], at(2000)));
    expect(windowGaps(w, [{ kind: 'Secret', name: 's' }], at(1000))).toEqual([]);
    expect(windowGaps(w, [{ kind: 'Secret', name: 's' }], at(2000))).toEqual([
      { kind: 'ConfigMap', name: 'cm', namespace: 'helloworld' },
      { kind: 'Secret', name: 't', namespace: 'helloworld' },
    ]);
  });

  it.each<[string, string | undefined]>([
    ['nothing', undefined],
    ['not JSON', '{'],
    ['no records', '{"records":[],"opened":"x","until":"2026-11-21T12:00:02.000Z"}'],
    ['no end', '{"records":["configmap/cm"],"opened":"x"}'],
    ['an end that is no time', '{"records":["configmap/cm"],"opened":"x","until":"soon"}'],
  ])('reads %s as no window', (_name, value) => {
    expect(parseSettleWindow(value)).toBeUndefined();
  });

  it('is written with sorted records, each once', () => {
    const text = formatSettleWindow({
      records: ['secret/s', 'configmap/cm', 'secret/s'],
      opened: 'o',
      until: 'u',
    });
    expect(text).toBe('{"records":["configmap/cm","secret/s"],"opened":"o","until":"u"}');
  });

  it.each<[string, ReturnType<typeof configOfRecordKey>]>([
    ['configmap/cm', { kind: 'ConfigMap', name: 'cm' }],
    ['configmap/cm#A,B', { kind: 'ConfigMap', name: 'cm' }],
    ['secret/s', { kind: 'Secret', name: 's' }],
    ['deployment/x', undefined],
    ['configmap/', undefined],
    ['nonsense', undefined],
  ])('the record key %s names %j', (key, config) => {
    expect(configOfRecordKey(key)).toEqual(config);
  });
});
