/**
 * What a resync reads: every opted-in config object of the watched namespaces, listed from the API server
 * (one list per kind and namespace), as changes grouped by namespace.
 */
import type { ConfigKind } from './config.js';
import { toChange } from './config-change.js';
import type { EventRun } from './event-run.js';
import type { ClusterClient } from './kube.js';
import type { ConfigObject } from './model.js';
import { isConfigOptedIn, type ConfigOptIn } from './opt-in.js';
import type { TimedChange } from './settle.js';
import type { WorkloadIndex } from './workload-index.js';

/** What {@link listOptedIn} reads with. */
export interface ListSource {
  client: ClusterClient;
  index: WorkloadIndex;
  configKinds: readonly ConfigKind[];
  optIn: ConfigOptIn;
}

/** The opted-in config objects of the namespaces (all when undefined), by namespace. */
export async function listOptedIn(
  { client, index, configKinds, optIn }: ListSource,
  namespaces: readonly string[] | undefined,
  run: EventRun,
): Promise<Map<string, TimedChange[]>> {
  const byNamespace = new Map<string, TimedChange[]>();
  const add = (kind: ConfigKind, object: ConfigObject, readAt: number): void => {
    const namespace = object.metadata?.namespace;
    if (!namespace || !isConfigOptedIn(object.metadata, optIn)) return;
    const list = byNamespace.get(namespace) ?? [];
    list.push({ change: toChange(kind, object, 'resync'), readAt });
    byNamespace.set(namespace, list);
  };
  for (const kind of configKinds) {
    for (const namespace of namespaces ?? [undefined]) {
      const readAt = index.tick();
      const objects = await run.call((call) => client.listConfigs(kind, namespace, call));
      for (const object of objects) add(kind, object, readAt);
    }
  }
  return byNamespace;
}
