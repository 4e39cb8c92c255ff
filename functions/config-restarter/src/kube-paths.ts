/**
 * The API paths of the calls kube.ts makes, and how error messages name what a call is about
 * (`plural[.group]` as in RBAC rules, namespace, name).
 */
import type { ConfigKind } from './config.js';
import { CONFIG_KIND_SPECS } from './config-kinds.js';
import type { WorkloadKind } from './workload-kinds.js';

/** The object(s) a request is about, as error messages name them. */
export interface Target {
  resource: string;
  namespace: string | undefined;
  name?: string | undefined;
}

function resourceName(group: string, plural: string): string {
  return group ? `${plural}.${group}` : plural;
}

/** The path of an API group version (`/api/v1`, `/apis/apps/v1`): discovery, and the prefix of its resources. */
export function basePath(group: string, version: string): string {
  return group ? `/apis/${group}/${version}` : `/api/${version}`;
}

function namespaced(namespace: string | undefined, plural: string): string {
  return namespace ? `/namespaces/${encodeURIComponent(namespace)}/${plural}` : `/${plural}`;
}

/** A workload collection, or one workload when `name` is given. */
export function workloadCall(
  kind: WorkloadKind,
  namespace: string | undefined,
  name?: string,
): Target & { path: string } {
  const collection = basePath(kind.group, kind.version) + namespaced(namespace, kind.plural);
  return {
    path: name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`,
    resource: resourceName(kind.group, kind.plural),
    namespace,
    name,
  };
}

/** ConfigMaps or Secrets of a namespace, or one of them when `name` is given. */
export function configCall(
  kind: ConfigKind,
  namespace: string | undefined,
  name?: string,
): Target & { path: string } {
  const plural = CONFIG_KIND_SPECS[kind].plural;
  const collection = `/api/v1${namespaced(namespace, plural)}`;
  return {
    path: name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`,
    resource: plural,
    namespace,
    name,
  };
}
