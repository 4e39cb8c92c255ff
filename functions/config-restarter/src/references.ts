/**
 * Which ConfigMaps and Secrets a pod spec references: volumes, projected volumes, envFrom and env
 * valueFrom, in containers, init containers and ephemeral containers. Pure functions; where each kind
 * appears is data in the config-kind table.
 */
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_LIST } from './config-kinds.js';
import type { ContainerLike, PodSpecLike } from './model.js';

/** Names of the config objects a pod spec uses, per config kind. */
export type ConfigReferences = Record<ConfigKind, Set<string>>;

function add(set: Set<string>, name: string | undefined): void {
  if (typeof name === 'string' && name.length > 0) set.add(name);
}

/** Collects every ConfigMap and Secret name a pod spec references. */
export function collectReferences(podSpec: PodSpecLike | undefined): ConfigReferences {
  const refs = Object.fromEntries(
    CONFIG_KIND_LIST.map((spec) => [spec.kind, new Set<string>()]),
  ) as ConfigReferences;
  if (!podSpec || typeof podSpec !== 'object') return refs;
  const containers: ContainerLike[] = [
    ...asArray(podSpec.containers),
    ...asArray(podSpec.initContainers),
    ...asArray(podSpec.ephemeralContainers),
  ];
  for (const spec of CONFIG_KIND_LIST) {
    const names = refs[spec.kind];
    for (const volume of asArray(podSpec.volumes)) {
      add(names, spec.fromVolume(volume));
      for (const source of asArray(volume?.projected?.sources)) add(names, spec.fromProjection(source));
    }
    for (const container of containers) {
      for (const from of asArray(container?.envFrom)) add(names, spec.fromEnvFrom(from));
      for (const variable of asArray(container?.env)) add(names, spec.fromEnv(variable));
    }
  }
  // imagePullSecrets are deliberately not references: the running containers do not read them.
  return refs;
}

/** True when the pod spec references the config object `kind`/`name`. */
export function usesConfig(podSpec: PodSpecLike | undefined, kind: ConfigKind, name: string): boolean {
  return collectReferences(podSpec)[kind].has(name);
}

function asArray<T>(value: T[] | undefined): T[] {
  return Array.isArray(value) ? value : [];
}
