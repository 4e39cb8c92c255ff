/** Helpers shared by the demo, the benchmark and the integration suite: kubectl, typed reads of what the API server
 * holds, manifests of test workloads, waiting. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { kubeRequest, type KubeTarget } from './kube.js';
import { REPO_ROOT, sleep } from './util.js';

const run = promisify(execFile);

/**
 * `kubectl apply --server-side -k <dir>` as the admin; returns kubectl's output. Conflicts are forced, as a
 * GitOps tool would: the suite edits ConfigMaps out of band, and re-applying the manifests takes them back.
 */
export async function applyKustomization(kubeconfig: string, dir: string): Promise<string> {
  const { stdout, stderr } = await run(
    'kubectl',
    [
      '--kubeconfig',
      kubeconfig,
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager=integration-test',
      '-k',
      dir,
    ],
    { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  return stdout + stderr;
}

/** API paths of the kinds the suite creates. */
export const PATHS = {
  configmaps: (ns: string) => `/api/v1/namespaces/${ns}/configmaps`,
  secrets: (ns: string) => `/api/v1/namespaces/${ns}/secrets`,
  deployments: (ns: string) => `/apis/apps/v1/namespaces/${ns}/deployments`,
  statefulsets: (ns: string) => `/apis/apps/v1/namespaces/${ns}/statefulsets`,
  daemonsets: (ns: string) => `/apis/apps/v1/namespaces/${ns}/daemonsets`,
  ksvcs: (ns: string) => `/apis/serving.knative.dev/v1/namespaces/${ns}/services`,
  cronjobs: (ns: string) => `/apis/batch/v1/namespaces/${ns}/cronjobs`,
  rollouts: (ns: string) => `/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts`,
} as const;

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
  options: { labels: Record<string, string>; optIn: boolean; podSpec?: Record<string, unknown> },
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
        metadata: { labels: options.labels },
        spec: { containers: [{ image: 'registry.example/app:1' }], ...options.podSpec },
      },
    },
  };
}

/** An opted-in ConfigMap manifest. */
export function optedInConfigMap(
  name: string,
  labels: Record<string, string>,
  data: Record<string, string>,
): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, labels, annotations: { 'rolling.restart.controller/triggerRestart': 'true' } },
    data,
  };
}
