import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { IndexState } from './workload-index.js';

/** The function's Prometheus metrics, on a registry of their own. */
export interface Metrics {
  registry: Registry;
  /** Events by category (`apiserver`, `resync`, `other`) and result. */
  events: Counter<'category' | 'result'>;
  /** Decisions by workload kind, action and dry-run. */
  decisions: Counter<'kind' | 'action' | 'dry_run'>;
  /** Failed API requests by verb, resource and HTTP status (0 = no answer). */
  apiErrors: Counter<'verb' | 'resource' | 'code'>;
  /** Patches that met a resourceVersion conflict and were decided again. */
  patchConflicts: Counter;
  /** Time to handle one event. */
  eventDuration: Histogram<'category'>;
  /** Settle windows opened, extended (more config objects) and closed, by decisions that went through. */
  settleWindows: Counter<'transition'>;
  /** Rollout outcomes written, by workload kind and outcome (`rolled-out`, `failed`, `superseded`). */
  rolloutOutcomes: Counter<'kind' | 'outcome'>;
  /** Seconds from the config edit to `rolled-out`, by workload kind. */
  rolloutSeconds: Histogram<'kind'>;
  /** Kubernetes Events that could not be written, by reason. */
  eventWriteErrors: Counter<'reason'>;
  /** Lists of the workload index, by reason. */
  indexRelists: Counter<'reason'>;
  /** Makes the index gauges read `state` at every scrape. */
  observeIndex(state: () => IndexState): void;
}

/** The index gauges: each reads its value from the index's state at every scrape (undefined = unset). */
const INDEX_GAUGES: { name: string; help: string; value(state: IndexState): number | undefined }[] = [
  {
    name: 'config_restarter_index_synced',
    help: '1 once every shard of the workload index has listed, else 0.',
    value: (state) => (state.synced ? 1 : 0),
  },
  {
    name: 'config_restarter_index_workloads',
    help: 'Workloads held by the warm index.',
    value: (state) => state.workloads,
  },
  {
    name: 'config_restarter_index_last_relist_timestamp_seconds',
    help: 'Unix time of the latest list of the warm index.',
    value: (state) => (state.lastRelist ? Date.parse(state.lastRelist) / 1000 : undefined),
  },
];

/** The per-event metrics. */
function eventMetrics(
  registry: Registry,
): Pick<Metrics, 'events' | 'decisions' | 'apiErrors' | 'patchConflicts' | 'eventDuration'> {
  return {
    events: new Counter({
      name: 'config_restarter_events_total',
      help: 'CloudEvents received, by category and result.',
      labelNames: ['category', 'result'],
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'config_restarter_decisions_total',
      help: 'Decisions about workloads, by kind and action.',
      labelNames: ['kind', 'action', 'dry_run'],
      registers: [registry],
    }),
    apiErrors: new Counter({
      name: 'config_restarter_api_errors_total',
      help: 'Failed Kubernetes API requests, by verb, resource and HTTP status (0 = no answer).',
      labelNames: ['verb', 'resource', 'code'],
      registers: [registry],
    }),
    patchConflicts: new Counter({
      name: 'config_restarter_patch_conflicts_total',
      help: 'Workload patches refused for a stale resourceVersion and decided again.',
      registers: [registry],
    }),
    eventDuration: new Histogram({
      name: 'config_restarter_event_duration_seconds',
      help: 'Time to handle one CloudEvent.',
      labelNames: ['category'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

/** The outcome metrics (rollout-follow.ts). */
function rolloutMetrics(
  registry: Registry,
): Pick<Metrics, 'rolloutOutcomes' | 'rolloutSeconds' | 'eventWriteErrors'> {
  return {
    rolloutOutcomes: new Counter({
      name: 'config_restarter_rollout_outcomes_total',
      help: 'Outcomes of restarts, by workload kind and outcome (rolled-out, failed, superseded).',
      labelNames: ['kind', 'outcome'],
      registers: [registry],
    }),
    rolloutSeconds: new Histogram({
      name: 'config_restarter_rollout_seconds',
      help: 'Seconds from the config edit to the rollout reported rolled-out, by workload kind.',
      labelNames: ['kind'],
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
      registers: [registry],
    }),
    eventWriteErrors: new Counter({
      name: 'config_restarter_event_write_errors_total',
      help: 'Kubernetes Events (Restarted, RolledOut, ...) the API server did not accept, by Event reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}

/** Creates the metrics on a fresh registry (so tests and several apps never share counters). */
export function createMetrics(): Metrics {
  const registry = new Registry();
  let indexState: (() => IndexState) | undefined;
  const indexRelists = new Counter({
    name: 'config_restarter_index_relists_total',
    help: 'Lists of workloads by the warm index: initial, expired (410 Gone) or after a failure.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const settleWindows = new Counter({
    name: 'config_restarter_settle_windows_total',
    help: 'Settle windows opened, extended by more config objects, and closed.',
    labelNames: ['transition'],
    registers: [registry],
  });
  for (const gauge of INDEX_GAUGES) {
    new Gauge({
      name: gauge.name,
      help: gauge.help,
      registers: [registry],
      collect() {
        const value = indexState && gauge.value(indexState());
        if (value !== undefined) this.set(value);
      },
    });
  }
  return {
    registry,
    ...eventMetrics(registry),
    ...rolloutMetrics(registry),
    settleWindows,
    indexRelists,
    observeIndex(state) {
      indexState = state;
    },
  };
}
