/**
 * One table of per-kind accessors: where each workload kind lives in the API, where its pod template
 * is, and why a given object of that kind must not be patched. Adding a kind is one entry here.
 */
import type { KubeObject, PodTemplateLike } from './model.js';
import {
  daemonSetRollout,
  deploymentRollout,
  knativeServiceRollout,
  statefulSetRollout,
  type RolloutRule,
} from './rollout-status.js';

/**
 * How a restart is written: `template` sets the `<prefix>/restartTimestamp` annotation of the pod template
 * (the kind's controller rolls the pods); `field` sets an RFC 3339 time at `path` that the kind's own
 * controller acts on (Argo Rollouts' `spec.restartAt`). `note` says what that means for the kind and is
 * added to the decision's reason.
 */
export type RestartMethod =
  { via: 'template'; note?: string } | { via: 'field'; path: readonly string[]; note: string };

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
  /** How a restart of this object is written; default: the pod template annotation. */
  restartMethod?(object: KubeObject): RestartMethod;
  /**
   * Set for kinds whose RBAC comes from an optional kustomize component (its path): when the API server
   * serves the kind but denies the list, the kind is left out (and rechecked) instead of failing events.
   */
  optionalAccess?: string;
  /**
   * How the outcome of a restart is read from the object (rollout-status.ts); unset for kinds whose rollouts
   * are not followed. `deadlineSeconds`: for kinds whose controller never reports a failed rollout, how long
   * after the restart a rollout still progressing counts as `failed`. `revert`: a failed rollout may be
   * reverted (`<prefix>/onFailure: revert`, rollout.ts).
   */
  rollout?: { status: RolloutRule; deadlineSeconds?: number; revert?: true };
}

/** StatefulSets and DaemonSets report no failed rollout: the Deployment's default progress deadline applies. */
const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;

const TEMPLATE_RESTART: RestartMethod = { via: 'template' };

/** How a restart of `object` is written. */
export function restartMethodOf(kind: WorkloadKind, object: KubeObject): RestartMethod {
  return kind.restartMethod?.(object) ?? TEMPLATE_RESTART;
}

function valueAt(object: unknown, path: readonly string[]): unknown {
  let node = object;
  for (const key of path) {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function nest(path: readonly string[], value: unknown): Record<string, unknown> {
  let fragment = value;
  for (const key of [...path].reverse()) fragment = { [key]: fragment };
  return fragment as Record<string, unknown>;
}

/** The merge-patch fragment that restarts a workload at `now` (`restartTimestamp` = the annotation key). */
export function restartPatch(
  kind: WorkloadKind,
  method: RestartMethod,
  restartTimestamp: string,
  now: Date,
): Record<string, unknown> {
  if (method.via === 'field') return nest(method.path, rfc3339Seconds(now));
  return templateAnnotationsPatch(kind, { [restartTimestamp]: now.toISOString() });
}

/** When the workload was last restarted as `method` writes it (an RFC 3339 string), if ever. */
export function lastRestartOf(
  kind: WorkloadKind,
  method: RestartMethod,
  object: KubeObject,
  restartTimestamp: string,
): string | undefined {
  const value =
    method.via === 'field'
      ? valueAt(object, method.path)
      : podTemplate(kind, object)?.metadata?.annotations?.[restartTimestamp];
  return typeof value === 'string' && value ? value : undefined;
}

/** RFC 3339 in UTC without fractions, as Kubernetes `metav1.Time` fields are written. */
function rfc3339Seconds(time: Date): string {
  return time.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The pod template of an object of `kind`, when it is an object. */
export function podTemplate(kind: WorkloadKind, object: KubeObject): PodTemplateLike | undefined {
  const node = valueAt(object, kind.templatePath);
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
  return nest(kind.templatePath, { metadata: { annotations } });
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

/**
 * A Knative Service whose `spec.traffic` has no `latestRevision: true` target pins its traffic to named
 * Revisions: a template change still creates a Revision, but Knative routes it 0 % of the requests. The
 * decision says so instead of claiming the new configuration is served; `spec.traffic` is never touched.
 */
function knativeServiceRestart(object: KubeObject): RestartMethod {
  const traffic = (object.spec as { traffic?: unknown } | undefined)?.traffic;
  if (!Array.isArray(traffic) || traffic.length === 0) return TEMPLATE_RESTART;
  const targets = traffic as { latestRevision?: unknown; revisionName?: unknown; percent?: unknown }[];
  if (targets.some((t) => t?.latestRevision === true)) return TEMPLATE_RESTART;
  const pinned = targets
    .map((t) => `${typeof t?.revisionName === 'string' ? t.revisionName : '?'} ${Number(t?.percent ?? 0)} %`)
    .join(', ');
  return {
    via: 'template',
    note:
      `traffic is pinned (${pinned}; no latestRevision: true): the new Revision gets 0 % of the traffic ` +
      'until spec.traffic routes to it',
  };
}

const SPEC_TEMPLATE = ['spec', 'template'] as const;

/** A CronJob's template change reaches the next Job it creates; Jobs already running keep their pods. */
const CRONJOB_RESTART: RestartMethod = {
  via: 'template',
  note: 'CronJob: the next Job runs with the new configuration; running Jobs are left alone',
};

/**
 * An Argo Rollout with its own `spec.template` rolls a template change out with its strategy (canary or
 * blue-green steps, analysis). One with `spec.workloadRef` takes its template from a Deployment: there the
 * restart is Argo's own, `spec.restartAt` = now, which Argo performs by evicting and recreating every pod
 * older than that time, ReplicaSet by ReplicaSet, without the canary or blue-green steps.
 */
function rolloutRestart(object: KubeObject): RestartMethod {
  const spec = object.spec as { workloadRef?: unknown } | undefined;
  if (spec?.workloadRef && typeof spec.workloadRef === 'object') {
    return {
      via: 'field',
      path: ['spec', 'restartAt'],
      note: 'Rollout with spec.workloadRef: spec.restartAt set, Argo Rollouts restarts its pods',
    };
  }
  return {
    via: 'template',
    note: "Rollout: Argo Rollouts rolls the new template out with the Rollout's strategy",
  };
}

/** The supported workload kinds. */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = [
  {
    kind: 'Deployment',
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: knativeOwnedReason,
    rollout: { status: deploymentRollout },
  },
  {
    kind: 'StatefulSet',
    group: 'apps',
    version: 'v1',
    plural: 'statefulsets',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: () => undefined,
    rollout: { status: statefulSetRollout, deadlineSeconds: DEFAULT_PROGRESS_DEADLINE_SECONDS },
  },
  {
    kind: 'DaemonSet',
    group: 'apps',
    version: 'v1',
    plural: 'daemonsets',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: () => undefined,
    rollout: { status: daemonSetRollout, deadlineSeconds: DEFAULT_PROGRESS_DEADLINE_SECONDS },
  },
  {
    kind: 'Service',
    group: 'serving.knative.dev',
    version: 'v1',
    plural: 'services',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: knativeServiceReason,
    restartMethod: knativeServiceRestart,
    // A failed Revision can be reverted: the previous template becomes the latest again (onFailure: revert).
    rollout: { status: knativeServiceRollout, revert: true },
  },
  {
    kind: 'CronJob',
    group: 'batch',
    version: 'v1',
    plural: 'cronjobs',
    templatePath: ['spec', 'jobTemplate', 'spec', 'template'],
    unpatchableReason: () => undefined,
    restartMethod: () => CRONJOB_RESTART,
  },
  {
    kind: 'Rollout',
    group: 'argoproj.io',
    version: 'v1alpha1',
    plural: 'rollouts',
    templatePath: SPEC_TEMPLATE,
    unpatchableReason: () => undefined,
    restartMethod: rolloutRestart,
    optionalAccess: 'knative/components/argo-rollouts',
  },
];

/** `Kind.group`, unambiguous between a core Service and a Knative Service. */
export function qualifiedKind(kind: WorkloadKind): string {
  return `${kind.kind}.${kind.group}`;
}
