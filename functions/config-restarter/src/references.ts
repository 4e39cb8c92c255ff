/**
 * Which ConfigMaps and Secrets a pod spec references: volumes, projected volumes, envFrom and env
 * valueFrom, in containers, init containers and ephemeral containers. Pure functions.
 */
import type { ContainerLike, PodSpecLike } from './model.js';

/** Names of the ConfigMaps and Secrets a pod spec uses. */
export interface ConfigReferences {
  configMaps: Set<string>;
  secrets: Set<string>;
}

function add(set: Set<string>, name: string | undefined): void {
  if (typeof name === 'string' && name.length > 0) set.add(name);
}

/** Collects every ConfigMap and Secret name a pod spec references. */
export function collectReferences(podSpec: PodSpecLike | undefined): ConfigReferences {
  const refs: ConfigReferences = { configMaps: new Set(), secrets: new Set() };
  if (!podSpec || typeof podSpec !== 'object') return refs;
  for (const volume of asArray(podSpec.volumes)) {
    add(refs.configMaps, volume?.configMap?.name);
    add(refs.secrets, volume?.secret?.secretName);
    for (const source of asArray(volume?.projected?.sources)) {
      add(refs.configMaps, source?.configMap?.name);
      add(refs.secrets, source?.secret?.name);
    }
  }
  const containers: ContainerLike[] = [
    ...asArray(podSpec.containers),
    ...asArray(podSpec.initContainers),
    ...asArray(podSpec.ephemeralContainers),
  ];
  for (const container of containers) {
    for (const from of asArray(container?.envFrom)) {
      add(refs.configMaps, from?.configMapRef?.name);
      add(refs.secrets, from?.secretRef?.name);
    }
    for (const variable of asArray(container?.env)) {
      add(refs.configMaps, variable?.valueFrom?.configMapKeyRef?.name);
      add(refs.secrets, variable?.valueFrom?.secretKeyRef?.name);
    }
  }
  // imagePullSecrets are deliberately not references: the running containers do not read them.
  return refs;
}

/** True when the pod spec references the ConfigMap `name`. */
export function usesConfigMap(podSpec: PodSpecLike | undefined, name: string): boolean {
  return collectReferences(podSpec).configMaps.has(name);
}

/** True when the pod spec references the Secret `name`. */
export function usesSecret(podSpec: PodSpecLike | undefined, name: string): boolean {
  return collectReferences(podSpec).secrets.has(name);
}

function asArray<T>(value: T[] | undefined): T[] {
  return Array.isArray(value) ? value : [];
}
