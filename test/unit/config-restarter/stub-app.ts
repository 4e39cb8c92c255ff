/**
 * The function's express app over a {@link FakeCluster}, built by the composition root with a synced warm
 * index, for the HTTP-layer tests (server, authentication, fuzzing). `cluster.calls` is emptied once the
 * index has synced, so it holds only what requests cause.
 */
import type express from 'express';
import type { TokenReviewer } from '../../../functions/config-restarter/src/auth.js';
import type { Config } from '../../../functions/config-restarter/src/config.js';
import type { HealthState } from '../../../functions/config-restarter/src/health.js';
import { silentLogger, type Logger } from '../../../functions/config-restarter/src/log.js';
import type { Metrics } from '../../../functions/config-restarter/src/metrics.js';
import type { WorkloadIndex } from '../../../functions/config-restarter/src/workload-index.js';
import { startRestarter, type FakeCluster } from './fake-cluster.js';

/** An app over `cluster`; call `stop()` when done (stops the index's watches). */
export async function stubApp(
  cluster: FakeCluster,
  options: {
    dryRun?: boolean;
    /** Sender authentication (`AUTH_AUDIENCE` / `AUTH_ALLOWED_SUBJECTS`) with this TokenReview stub. */
    auth?: { settings: NonNullable<Config['auth']>; reviewTokens: TokenReviewer };
    logger?: Logger;
    /** False: the app answers as during a drain (readiness 503). */
    ready?: boolean;
    bodyLimit?: string;
  } = {},
): Promise<{
  app: express.Express;
  metrics: Metrics;
  index: WorkloadIndex;
  health: HealthState;
  stop(): void;
}> {
  const { runtime } = await startRestarter(
    cluster,
    { dryRun: options.dryRun ?? false, patchConcurrency: 2, auth: options.auth?.settings },
    {
      logger: options.logger ?? silentLogger,
      reviewTokens: options.auth?.reviewTokens,
      ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
    },
  );
  if (options.ready === false) runtime.health.beginShutdown();
  const { app, metrics, index, health } = runtime;
  return { app, metrics, index, health, stop: () => runtime.stop() };
}
