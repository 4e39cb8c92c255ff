/**
 * Carrying an ordered change on once a rollout ended: the config objects the ended rollout rolled out are read
 * again and acted on as an update, so the next `restartOrder` group restarts (or is held) right away instead
 * of at the next resync. Their current content counts: a newer edit meanwhile is what gets rolled out.
 */
import type { ConfigKind } from './config.js';
import { toChange } from './config-change.js';
import type { EventRun } from './event-run.js';
import type { ClusterClient } from './kube.js';
import { isConfigOptedIn, type ConfigOptIn } from './opt-in.js';
import type { Outcome } from './outcome.js';
import { configOfRecordKey } from './records.js';
import type { TimedChange } from './settle.js';
import type { WorkloadIndex } from './workload-index.js';
import { listOptedIn } from './resync-list.js';

/** The act layer's handling of changes (restarter.ts). */
export type Act = (changes: TimedChange[], run: EventRun) => Promise<Omit<Outcome, 'result' | 'reason'>>;

/** What carrying on needs. */
export interface CarryOnDeps {
  client: ClusterClient;
  index: WorkloadIndex;
  configKinds: readonly ConfigKind[];
  optIn: ConfigOptIn;
  act: Act;
}

/**
 * Reads the config objects `recordKeys` name in `namespace` and acts on them as an update; with `namespace`,
 * every opted-in config object of the namespace, as a resync (pending restarts are owed on the workloads).
 */
export async function carryOn(
  deps: CarryOnDeps,
  namespace: string,
  recordKeys: readonly string[] | 'namespace',
  run: EventRun,
): Promise<Omit<Outcome, 'result' | 'reason'>> {
  if (recordKeys === 'namespace') {
    const listed = await listOptedIn(deps, [namespace], run);
    return deps.act(listed.get(namespace) ?? [], run);
  }
  const refs = new Map<string, { kind: ConfigKind; name: string }>();
  for (const key of recordKeys) {
    const config = configOfRecordKey(key);
    if (config && deps.configKinds.includes(config.kind)) refs.set(`${config.kind}/${config.name}`, config);
  }
  const read = await Promise.all(
    [...refs.values()].map(async (ref): Promise<TimedChange | undefined> => {
      const readAt = deps.index.tick();
      const object = await run.call((call) => deps.client.getConfig({ ...ref, namespace }, call));
      if (!object || !isConfigOptedIn(object.metadata, deps.optIn)) return undefined;
      return { change: toChange(ref.kind, object, 'update'), readAt };
    }),
  );
  const changes = read.filter((timed) => timed !== undefined);
  return changes.length === 0 ? { decisions: [], failures: [] } : deps.act(changes, run);
}
