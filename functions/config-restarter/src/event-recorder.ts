/**
 * Writes the Kubernetes Events of workload-events.ts through kube.ts. Best effort: an Event the API server
 * refuses (RBAC, quota, a timeout) is logged and counted, never fails the CloudEvent that caused it, since
 * the restart or outcome it tells of is already on the workload.
 */
import { randomBytes } from 'node:crypto';
import type { ClusterClient } from './kube.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { eventBody, type WorkloadEvent } from './workload-events.js';

/** Sends Events about workloads. */
export class EventRecorder {
  constructor(
    private readonly client: Pick<ClusterClient, 'createEvent'>,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly now: () => Date,
  ) {}

  /** Writes every event, at once; failures are logged and counted. */
  async record(events: readonly WorkloadEvent[]): Promise<void> {
    await Promise.all(events.map((event) => this.one(event)));
  }

  private async one(event: WorkloadEvent): Promise<void> {
    const suffix = `${Date.now().toString(16)}${randomBytes(4).toString('hex')}`;
    try {
      await this.client.createEvent(eventBody(event, this.now(), suffix));
    } catch (error) {
      this.metrics.eventWriteErrors.inc({ reason: event.reason });
      this.logger.warn('event not written', {
        workload: event.workload,
        reason: event.reason,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
