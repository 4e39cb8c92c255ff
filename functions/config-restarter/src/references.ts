/**
 * Which ConfigMaps and Secrets a pod spec references, and through which keys: volumes, projected volumes,
 * envFrom and env valueFrom, in containers, init containers and ephemeral containers. Pure functions; where
 * each kind appears is data in the config-kind table.
 */
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_LIST, type ConfigKindSpec, type ConfigUse } from './config-kinds.js';
import type { ContainerLike, PodSpecLike } from './model.js';

/** A pod-spec volume. */
type PodVolume = NonNullable<PodSpecLike['volumes']>[number];

/**
 * The keys a pod spec uses of one config object: `'all'` when any use sees every key (envFrom, a
 * whole-volume mount), otherwise the sorted union of the keys named by env `valueFrom` and `items`.
 */
export type KeySet = 'all' | readonly string[];

/** Per config kind: config object name -> the keys the pod spec uses of it. */
export type ConfigUses = Record<ConfigKind, Map<string, KeySet>>;

function merge(uses: Map<string, KeySet>, found: ConfigUse | undefined): void {
  if (!found) return;
  const current = uses.get(found.name);
  if (current === 'all' || found.keys === undefined) {
    uses.set(found.name, 'all');
    return;
  }
  uses.set(found.name, [...new Set([...(current ?? []), ...found.keys])].sort());
}

/** The uses of one config kind in a pod spec's volumes and containers. */
function usesOfKind(
  spec: ConfigKindSpec,
  volumes: PodVolume[],
  containers: ContainerLike[],
): Map<string, KeySet> {
  const found = new Map<string, KeySet>();
  for (const volume of volumes) {
    merge(found, spec.fromVolume(volume));
    for (const source of asArray(volume?.projected?.sources)) merge(found, spec.fromProjection(source));
  }
  for (const container of containers) {
    for (const from of asArray(container?.envFrom)) merge(found, spec.fromEnvFrom(from));
    for (const variable of asArray(container?.env)) merge(found, spec.fromEnv(variable));
  }
  return found;
}

/** Collects every ConfigMap and Secret a pod spec uses, with the keys it uses of each. */
export function collectUses(podSpec: PodSpecLike | undefined): ConfigUses {
  const spec = podSpec && typeof podSpec === 'object' ? podSpec : {};
  const containers: ContainerLike[] = [
    ...asArray(spec.containers),
    ...asArray(spec.initContainers),
    ...asArray(spec.ephemeralContainers),
  ];
  // imagePullSecrets are deliberately not references: the running containers do not read them.
  return Object.fromEntries(
    CONFIG_KIND_LIST.map((kind) => [kind.kind, usesOfKind(kind, asArray(spec.volumes), containers)]),
  ) as ConfigUses;
}

function asArray<T>(value: T[] | undefined): T[] {
  return Array.isArray(value) ? value : [];
}
