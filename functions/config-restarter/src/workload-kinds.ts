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
  /**
   * Path of the pod template inside the object, e.g. `['spec', 'template']`. A merge patch of the
   * template's annotations restarts the pods.
   */
  templatePath: readonly string[];
  /** Why this object must not be patched directly, or undefined when it may be. */
  unpatchableReason(object: KubeObject): string | undefined;
}

/** The pod template of an object of `kind`, when it is an object. */
export function podTemplate(kind: WorkloadKind, object: KubeObject): PodTemplateLike | undefined {
  let node: unknown = object;
  for (const key of kind.templatePath) {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node && typeof node === 'object' && !Array.isArray(node) ? node : undefined;
}

/**
 * A merge-patch fragment that sets `annotations` on the pod template of `kind`: `{spec: {template:
 * {metadata: {annotations}}}}` for most kinds.
 */
export function templateAnnotationsPatch(
  kind: WorkloadKind,
  annotations: Record<string, string>,
): Record<string, unknown> {
  let fragment: Record<string, unknown> = { metadata: { annotations } };
  for (const key of [...kind.templatePath].reverse()) fragment = { [key]: fragment };
  return fragment;
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
  const spec = object.spec as { template?: { metadata?: { name?: unknown } } } | undefined;
  const revisionName = spec?.template?.metadata?.name;
  return typeof revisionName === 'string' && revisionName
    ? `spec.template.metadata.name is fixed to "${revisionName}"; Knative refuses a new Revision under the same name`
    : undefined;
}

const SPEC_TEMPLATE = ['spec', 'template'] as const;

/** The supported workload kinds. */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = [
  {
    kind: 'Deployment',
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: knativeOwnedReason,
  },
  {
    kind: 'StatefulSet',
    group: 'apps',
    version: 'v1',
    plural: 'statefulsets',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: () => undefined,
  },
  {
    kind: 'DaemonSet',
    group: 'apps',
    version: 'v1',
    plural: 'daemonsets',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: () => undefined,
  },
  {
    kind: 'Service',
    group: 'serving.knative.dev',
    version: 'v1',
    plural: 'services',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: knativeServiceReason,
  },
];

/** `Kind.group`, unambiguous between a core Service and a Knative Service. */
export function qualifiedKind(kind: WorkloadKind): string {
  return `${kind.kind}.${kind.group}`;
}
