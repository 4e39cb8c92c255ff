/**
 * How far the rollout of one workload object has come, read from its `status` alone: the per-kind rules the
 * workload-kinds.ts table points to. Pure. Every rule first requires the controller to have observed the
 * object's current generation, so a status written for the previous template is never taken for the new one.
 */
import type { KubeObject } from './model.js';

/** Where a rollout stands: still moving, done, or stopped by the kind's controller. */
export type RolloutStatus =
  | { state: 'progressing'; detail: string }
  | { state: 'rolled-out'; detail: string }
  | { state: 'failed'; detail: string };

/** The per-kind rule: the state of the object's rollout. */
export type RolloutRule = (object: KubeObject) => RolloutStatus;

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

interface Status {
  observedGeneration?: number;
  conditions?: Condition[];
  [field: string]: unknown;
}

function statusOf(object: KubeObject): Status {
  const status = object.status;
  return status && typeof status === 'object' && !Array.isArray(status) ? (status as Status) : {};
}

function count(status: Status, field: string): number {
  const value = status[field];
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function condition(status: Status, type: string): Condition | undefined {
  return Array.isArray(status.conditions) ? status.conditions.find((c) => c?.type === type) : undefined;
}

function specReplicas(object: KubeObject): number {
  const replicas = (object.spec as { replicas?: unknown } | undefined)?.replicas;
  return typeof replicas === 'number' ? replicas : 1;
}

/** `progressing` while the controller has not yet seen the current generation, else undefined. */
function unobserved(object: KubeObject, status: Status): RolloutStatus | undefined {
  const generation = object.metadata?.generation ?? 0;
  const observed = status.observedGeneration ?? 0;
  return observed < generation
    ? { state: 'progressing', detail: `generation ${generation} not yet observed (at ${observed})` }
    : undefined;
}

/**
 * Deployment: `failed` once the controller reports `ProgressDeadlineExceeded` (the Deployment's
 * `progressDeadlineSeconds`); `rolled-out` when every replica is updated and available and no old one is left.
 */
export function deploymentRollout(object: KubeObject): RolloutStatus {
  const status = statusOf(object);
  const early = unobserved(object, status);
  if (early) return early;
  const progressing = condition(status, 'Progressing');
  if (progressing?.status === 'False' && progressing.reason === 'ProgressDeadlineExceeded') {
    return { state: 'failed', detail: `ProgressDeadlineExceeded: ${progressing.message ?? ''}`.trim() };
  }
  const desired = specReplicas(object);
  const [updated, total, available] = ['updatedReplicas', 'replicas', 'availableReplicas'].map((f) =>
    count(status, f),
  ) as [number, number, number];
  const detail = `${updated}/${desired} updated, ${available} available, ${Math.max(total - updated, 0)} old`;
  return updated >= desired && total === updated && available >= desired
    ? { state: 'rolled-out', detail }
    : { state: 'progressing', detail };
}

/** StatefulSet: `rolled-out` when the update revision is current and every replica is updated and ready. */
export function statefulSetRollout(object: KubeObject): RolloutStatus {
  const status = statusOf(object);
  const early = unobserved(object, status);
  if (early) return early;
  const desired = specReplicas(object);
  const [updated, ready] = [count(status, 'updatedReplicas'), count(status, 'readyReplicas')];
  const current = status.currentRevision === status.updateRevision;
  const detail = `${updated}/${desired} updated, ${ready} ready${current ? '' : ', update revision not yet current'}`;
  return current && updated >= desired && ready >= desired
    ? { state: 'rolled-out', detail }
    : { state: 'progressing', detail };
}

/** DaemonSet: `rolled-out` when every scheduled pod is updated and available. */
export function daemonSetRollout(object: KubeObject): RolloutStatus {
  const status = statusOf(object);
  const early = unobserved(object, status);
  if (early) return early;
  const desired = count(status, 'desiredNumberScheduled');
  const updated = count(status, 'updatedNumberScheduled');
  const available = count(status, 'numberAvailable');
  const detail = `${updated}/${desired} updated, ${available} available`;
  return updated >= desired && available >= desired && count(status, 'numberUnavailable') === 0
    ? { state: 'rolled-out', detail }
    : { state: 'progressing', detail };
}

/** The share of the traffic the Revision gets, as the Route reports it (`status.traffic`). */
function trafficOf(status: Status, revision: unknown): string {
  const targets = Array.isArray(status.traffic)
    ? (status.traffic as { revisionName?: string; percent?: number }[])
    : [];
  const percent = targets
    .filter((t) => t?.revisionName === revision)
    .reduce((sum, t) => sum + (t.percent ?? 0), 0);
  return percent > 0
    ? `${percent} % of the traffic`
    : '0 % of the traffic (spec.traffic routes to pinned Revisions)';
}

/**
 * Knative Service: `rolled-out` when it is Ready and its latest created Revision is its latest ready one (so
 * the route serves it; the message says which share of the traffic it gets, 0 % when `spec.traffic` pins named
 * Revisions); `failed` when Ready or ConfigurationsReady is False (a Revision that fails readiness
 * or crash-loops), with Knative's message.
 */
export function knativeServiceRollout(object: KubeObject): RolloutStatus {
  const status = statusOf(object);
  const early = unobserved(object, status);
  if (early) return early;
  const failedCondition = [condition(status, 'ConfigurationsReady'), condition(status, 'Ready')].find(
    (c) => c?.status === 'False',
  );
  if (failedCondition) {
    const why = [failedCondition.reason, failedCondition.message].filter(Boolean).join(': ');
    return { state: 'failed', detail: why || `${failedCondition.type} is False` };
  }
  const created = status.latestCreatedRevisionName;
  const latestReady = status.latestReadyRevisionName;
  const ready = condition(status, 'Ready')?.status === 'True';
  const detail = `latest created Revision ${String(created)}, latest ready ${String(latestReady)}, ${trafficOf(status, latestReady)}`;
  return ready && typeof created === 'string' && created === latestReady
    ? { state: 'rolled-out', detail }
    : { state: 'progressing', detail };
}
