/**
 * One table of per-kind accessors: where each workload kind lives in the API, where its pod template
 * is, and why a given object of that kind must not be patched. Adding a kind is one entry here.
 */
import type { KubeObject, PodTemplateLike } from './model.js';

/** How to find and restart one workload kind. */
export interface WorkloadKind {
  /** Kind name, e.g. `Deployment`. */
  kind: string;
  /** API group (`apps`, `serving.knative.dev`). */
  group: string;
  /** API version within the group. */
  version: string;
  /** Resource name in URLs and RBAC rules. */
  plural: string;
  /** The pod template of an object; a patch of its annotations restarts the pods. */
  podTemplate(object: KubeObject): PodTemplateLike | undefined;
  /** Why this object must not be patched directly, or undefined when it may be. */
  unpatchableReason(object: KubeObject): string | undefined;
}

/** `spec.template` of an object, when it is an object. */
function specTemplate(object: KubeObject): PodTemplateLike | undefined {
  const spec = object.spec as { template?: unknown } | undefined;
  const template = spec?.template;
  return template && typeof template === 'object' ? template : undefined;
}

/** Knative owns the Deployments behind its Revisions and reverts or drops edits to them. */
function knativeOwnedReason(object: KubeObject): string | undefined {
  const owner = object.metadata?.ownerReferences?.find(
    (ref) => ref.kind === 'Revision' && (ref.apiVersion ?? '').startsWith('serving.knative.dev/'),
  );
  const service = object.metadata?.labels?.['serving.knative.dev/service'];
  if (owner || service) {
    const via = service ? `Knative Service ${service}` : 'its Knative Service';
    return `owned by Knative Revision ${owner?.name ?? '(unknown)'}; restarted through ${via}, never directly`;
  }
  return undefined;
}

/** Knative rejects a template change that keeps a user-chosen revision name ("bring your own name"). */
function knativeServiceReason(object: KubeObject): string | undefined {
  const revisionName = specTemplate(object)?.metadata?.name;
  return revisionName
    ? `spec.template.metadata.name is fixed to "${revisionName}"; Knative refuses a new Revision under the same name`
    : undefined;
}

/** The supported workload kinds. */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = [
  {
    kind: 'Deployment',
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    podTemplate: specTemplate,
    unpatchableReason: knativeOwnedReason,
  },
  {
    kind: 'StatefulSet',
    group: 'apps',
    version: 'v1',
    plural: 'statefulsets',
    podTemplate: specTemplate,
    unpatchableReason: () => undefined,
  },
  {
    kind: 'DaemonSet',
    group: 'apps',
    version: 'v1',
    plural: 'daemonsets',
    podTemplate: specTemplate,
    unpatchableReason: () => undefined,
  },
  {
    kind: 'Service',
    group: 'serving.knative.dev',
    version: 'v1',
    plural: 'services',
    podTemplate: specTemplate,
    unpatchableReason: knativeServiceReason,
  },
];

/** `Kind.group`, unambiguous between a core Service and a Knative Service. */
export function qualifiedKind(kind: WorkloadKind): string {
  return `${kind.kind}.${kind.group}`;
}
