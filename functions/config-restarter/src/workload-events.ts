/**
 * The Kubernetes Events the function writes on a workload (`kubectl describe` shows them): `Restarted`,
 * `Deferred`, `Held` (a lower `restartOrder` group failed), and the rollout outcomes `RolledOut`, `RolloutFailed`, `RolloutSuperseded`. Pure: the body
 * of a core v1 Event; rollout-follow.ts and restarter.ts send them through kube.ts (`create` on events).
 */
import type { KubeObject, WorkloadRef } from './model.js';
import type { RolloutOutcomeState } from './rollout.js';

/** The reasons of the Events, and whether each is a warning. */
export const EVENT_REASONS = {
  Restarted: 'Normal',
  Deferred: 'Normal',
  Held: 'Warning',
  RolledOut: 'Normal',
  RolloutFailed: 'Warning',
  RolloutSuperseded: 'Normal',
} as const;

/** An Event reason. */
export type EventReason = keyof typeof EVENT_REASONS;

/** The Event reason of each outcome. */
export const OUTCOME_REASONS: Record<RolloutOutcomeState, EventReason> = {
  'rolled-out': 'RolledOut',
  failed: 'RolloutFailed',
  superseded: 'RolloutSuperseded',
};

/** What one Event says about one workload. */
export interface WorkloadEvent {
  workload: WorkloadRef;
  uid: string;
  reason: EventReason;
  message: string;
}

/** The component named as the Events' source. */
const COMPONENT = 'config-restarter';

/** The API server refuses an Event message over 1 kB. */
const MAX_MESSAGE = 1024;

/** `ConfigMap/app sha256:…, Secret/db sha256:…`: the config objects (as reports name them) and their content. */
export function describeContent(configs: Readonly<Record<string, string>>): string {
  return Object.keys(configs)
    .sort()
    .map((name) => `${name} ${configs[name]}`)
    .join(', ');
}

/**
 * The core v1 Event body. `suffix` makes the name unique (as client-go does: `<name>.<hex>`); `now` is its
 * time.
 */
export function eventBody(
  event: WorkloadEvent,
  now: Date,
  suffix: string,
): KubeObject & { metadata: { namespace: string } } {
  const { workload } = event;
  const time = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  const message =
    event.message.length > MAX_MESSAGE ? `${event.message.slice(0, MAX_MESSAGE - 1)}…` : event.message;
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${workload.name}.${suffix}`, namespace: workload.namespace },
    involvedObject: {
      apiVersion: workload.apiVersion,
      kind: workload.kind,
      namespace: workload.namespace,
      name: workload.name,
      ...(event.uid ? { uid: event.uid } : {}),
    },
    reason: event.reason,
    message,
    type: EVENT_REASONS[event.reason],
    source: { component: COMPONENT },
    reportingComponent: COMPONENT,
    firstTimestamp: time,
    lastTimestamp: time,
    count: 1,
  };
}
