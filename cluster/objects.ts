/** Helpers shared by the demo, the benchmark and the integration suite: kubectl, typed reads of what the API server
 * holds, manifests of test workloads, waiting. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { KubeRequestError, kubeRequest, type KubeTarget } from './kube.js';
import { REPO_ROOT, sleep } from './util.js';

const run = promisify(execFile);

/**
 * `kubectl apply --server-side -k <dir>` as the admin (optionally a server dry run); returns kubectl's output. Conflicts are forced, as a
 * GitOps tool would: the suite edits ConfigMaps out of band, and re-applying the manifests takes them back.
 */
export async function applyKustomization(
  kubeconfig: string,
  dir: string,
  options: { dryRun?: boolean } = {},
): Promise<string> {
  const { stdout, stderr } = await run(
    'kubectl',
    [
      '--kubeconfig',
      kubeconfig,
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager=integration-test',
      // Server dry run: every admission step (webhooks included) judges the objects, nothing is stored.
      ...(options.dryRun ? ['--dry-run=server'] : []),
      '-k',
      dir,
    ],
    { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout + stderr;
}

/**
 * `kubectl apply --server-side -k` of `dir` with every object moved to `namespace` (kustomize's namespace
 * transformer, through a throw-away kustomization): the project's manifests, side by side with another copy.
 */
export async function applyKustomizationIn(
  kubeconfig: string,
  dir: string,
  namespace: string,
): Promise<string> {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'kustomize-'));
  try {
    // kustomize takes other kustomizations by relative path only.
    const resource = path.relative(tmp, path.resolve(REPO_ROOT, dir));
    writeFileSync(
      path.join(tmp, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: ${namespace}\nresources:\n  - ${resource}\n`,
    );
    return await applyKustomization(kubeconfig, tmp);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** API paths of the kinds the suite creates and the controllers create. */
export const PATHS = {
  configmaps: (ns: string) => `/api/v1/namespaces/${ns}/configmaps`,
  secrets: (ns: string) => `/api/v1/namespaces/${ns}/secrets`,
  deployments: (ns: string) => `/apis/apps/v1/namespaces/${ns}/deployments`,
  statefulsets: (ns: string) => `/apis/apps/v1/namespaces/${ns}/statefulsets`,
  daemonsets: (ns: string) => `/apis/apps/v1/namespaces/${ns}/daemonsets`,
  ksvcs: (ns: string) => `/apis/serving.knative.dev/v1/namespaces/${ns}/services`,
  cronjobs: (ns: string) => `/apis/batch/v1/namespaces/${ns}/cronjobs`,
  rollouts: (ns: string) => `/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts`,
  replicasets: (ns: string) => `/apis/apps/v1/namespaces/${ns}/replicasets`,
  controllerrevisions: (ns: string) => `/apis/apps/v1/namespaces/${ns}/controllerrevisions`,
  revisions: (ns: string) => `/apis/serving.knative.dev/v1/namespaces/${ns}/revisions`,
} as const;

/** What the controllers made of a workload: a ReplicaSet, ControllerRevision or Knative Revision. */
export interface RolloutObject {
  name: string;
  /** `Kind/name` of the controlling owner. */
  owner: string;
  createdAt: string;
  /**
   * The rollout number: `deployment.kubernetes.io/revision` of a ReplicaSet, `revision` of a ControllerRevision,
   * the `serving.knative.dev/configurationGeneration` label of a Knative Revision.
   */
  revision: number;
  /** `pod-template-hash` label (ReplicaSets only). */
  podTemplateHash?: string;
}

interface OwnedJson {
  metadata: {
    name: string;
    creationTimestamp: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
  };
  revision?: number;
}

/**
 * The ReplicaSets, ControllerRevisions or Revisions (by `collectionPath`) controlled by `owner` (`Kind/name`; a
 * Knative Service's Revisions are owned by its Configuration of the same name), oldest rollout first.
 */
export async function rolloutsOf(
  target: KubeTarget,
  collectionPath: string,
  owner: string,
): Promise<RolloutObject[]> {
  const { body } = await kubeRequest<{ items: OwnedJson[] }>(target, 'GET', collectionPath);
  return body.items
    .map((item): RolloutObject | undefined => {
      const ref = item.metadata.ownerReferences?.find((r) => r.controller);
      if (!ref || `${ref.kind}/${ref.name}` !== owner) return undefined;
      const labels = item.metadata.labels ?? {};
      const revision =
        item.revision ??
        Number(
          item.metadata.annotations?.['deployment.kubernetes.io/revision'] ??
            labels['serving.knative.dev/configurationGeneration'],
        );
      return {
        name: item.metadata.name,
        owner,
        createdAt: item.metadata.creationTimestamp,
        revision,
        ...(labels['pod-template-hash'] ? { podTemplateHash: labels['pod-template-hash'] } : {}),
      };
    })
    .filter((o): o is RolloutObject => o !== undefined)
    .sort((a, b) => a.revision - b.revision);
}

/** The parts of an object that tell who wrote it. */
export interface WriteHistory {
  generation: number;
  resourceVersion: string;
  /** Field managers of `metadata.managedFields`. */
  managers: string[];
}

/** Generation, resourceVersion and field managers of one object. */
export async function writeHistory(target: KubeTarget, objectPath: string): Promise<WriteHistory> {
  const { body } = await kubeRequest<{
    metadata: { generation?: number; resourceVersion: string; managedFields?: { manager?: string }[] };
  }>(target, 'GET', objectPath);
  return {
    generation: body.metadata.generation ?? 0,
    resourceVersion: body.metadata.resourceVersion,
    managers: [...new Set((body.metadata.managedFields ?? []).map((f) => f.manager ?? ''))].sort(),
  };
}

/** Deletes a namespace (the namespace controller of kube-controller-manager empties and removes it). */
export async function deleteNamespace(target: KubeTarget, namespace: string): Promise<void> {
  await kubeRequest(target, 'DELETE', `/api/v1/namespaces/${namespace}`, undefined, { allowStatus: [404] });
}

/** What the tests read back from a workload. */
export interface WorkloadState {
  generation: number;
  annotations: Record<string, string>;
  templateAnnotations: Record<string, string>;
}

interface WorkloadJson {
  metadata: { generation?: number; annotations?: Record<string, string> };
  spec: { template: { metadata?: { annotations?: Record<string, string> } } };
}

/** Reads a workload's generation and annotations from the API server. */
export async function readWorkload(
  target: KubeTarget,
  collectionPath: string,
  name: string,
): Promise<WorkloadState> {
  const { body } = await kubeRequest<WorkloadJson>(target, 'GET', `${collectionPath}/${name}`);
  return {
    generation: body.metadata.generation ?? 0,
    annotations: body.metadata.annotations ?? {},
    templateAnnotations: body.spec.template.metadata?.annotations ?? {},
  };
}

/** JSON merge patch as the admin. */
export async function mergePatch(target: KubeTarget, objectPath: string, patch: unknown): Promise<void> {
  await kubeRequest(target, 'PATCH', objectPath, patch, { contentType: 'application/merge-patch+json' });
}

/** Polls `check` until it returns a value other than undefined, or fails with `what` after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError instanceof Error ? `: ${lastError.message}` : ''}`,
      );
    }
    await sleep(100);
  }
}

/** Waits until `count()` has not changed for `quietMs`: the event stream has settled. */
export async function settle(
  count: () => Promise<number>,
  quietMs = 1500,
  timeoutMs = 30_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = await count();
  let since = Date.now();
  while (Date.now() - since < quietMs) {
    if (Date.now() > deadline) throw new Error('events did not settle');
    await sleep(100);
    const now = await count();
    if (now !== last) {
      last = now;
      since = Date.now();
    }
  }
  return last;
}

/** A Deployment/StatefulSet/DaemonSet manifest (pods never run here: no kubelet). */
export function appsWorkload(
  kind: 'Deployment' | 'StatefulSet' | 'DaemonSet',
  name: string,
  options: {
    labels: Record<string, string>;
    optIn: boolean;
    podSpec?: Record<string, unknown>;
    extraMeta?: Record<string, unknown>;
  },
): Record<string, unknown> {
  const selectorLabels = { 'workload-name': name };
  return {
    apiVersion: 'apps/v1',
    kind,
    metadata: {
      name,
      labels: options.labels,
      annotations: options.optIn ? { 'rolling.restart.controller/restartOnTrigger': 'true' } : {},
      ...options.extraMeta,
    },
    spec: {
      selector: { matchLabels: selectorLabels },
      ...(kind === 'StatefulSet' ? { serviceName: name } : {}),
      template: {
        metadata: { labels: selectorLabels },
        spec: { containers: [{ name: 'main', image: 'registry.example/app:1' }], ...options.podSpec },
      },
    },
  };
}

/** A Knative Service manifest. */
export function knativeService(
  name: string,
  options: {
    labels: Record<string, string>;
    optIn: boolean;
    podSpec?: Record<string, unknown>;
    templateMeta?: Record<string, unknown>;
  },
): Record<string, unknown> {
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: {
      name,
      labels: options.labels,
      annotations: options.optIn ? { 'rolling.restart.controller/restartOnTrigger': 'true' } : {},
    },
    spec: {
      template: {
        metadata: { labels: options.labels, ...options.templateMeta },
        spec: { containers: [{ image: 'registry.example/app:1' }], ...options.podSpec },
      },
    },
  };
}

/** The label that opts a config object in and that the shipped ApiServerSource selects on (default prefix). */
export const WATCH_LABEL = 'rolling.restart.controller/watch';
/** The annotation that opts a config object in (the original contract; alone it leaves the object to the resync). */
const TRIGGER_ANNOTATION = 'rolling.restart.controller/triggerRestart';

/**
 * An opted-in ConfigMap manifest: the watch label (so the shipped source sends its changes) and the annotation.
 * `optIn: 'annotation'` leaves the label out: such an object produces no event and is rolled out by the resync.
 */
export function optedInConfigMap(
  name: string,
  labels: Record<string, string>,
  data: Record<string, string>,
  optIn: 'label+annotation' | 'annotation' = 'label+annotation',
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      labels: optIn === 'annotation' ? labels : { ...labels, [WATCH_LABEL]: 'true' },
      annotations: { [TRIGGER_ANNOTATION]: 'true' },
    },
    data,
  };
}

/** Whether a lease whose name starts with `prefix` has a holder (a knative.dev/pkg reconciler took its bucket). */
export async function leaseHeld(target: KubeTarget, namespace: string, prefix: string): Promise<boolean> {
  const { body } = await kubeRequest<{
    items: { metadata: { name: string }; spec?: { holderIdentity?: string } }[];
  }>(target, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`);
  return body.items.some((l) => l.metadata.name.startsWith(prefix) && l.spec?.holderIdentity);
}

/** Whether a Deployment has at least one available pod; false while it does not exist or cannot be read. */
export async function deploymentAvailable(
  target: KubeTarget,
  namespace: string,
  name: string,
): Promise<boolean> {
  try {
    const { body } = await kubeRequest<{ status?: { availableReplicas?: number } }>(
      target,
      'GET',
      `/apis/apps/v1/namespaces/${namespace}/deployments/${name}`,
    );
    return (body.status?.availableReplicas ?? 0) >= 1;
  } catch (err) {
    if (err instanceof KubeRequestError) return false;
    throw err;
  }
}
