/**
 * The function's express app over a {@link FakeCluster}, with a synced workload index, for the HTTP-layer
 * tests (server, authentication, fuzzing). `cluster.calls` is emptied once the index has synced, so it holds
 * only what requests cause.
 */
import type express from 'express';
import type { Authenticator } from '../../../functions/config-restarter/src/auth.js';
import { createApp } from '../../../functions/config-restarter/src/app.js';
import { silentLogger, type Logger } from '../../../functions/config-restarter/src/log.js';
import type { Metrics } from '../../../functions/config-restarter/src/metrics.js';
import type { WorkloadIndex } from '../../../functions/config-restarter/src/workload-index.js';
import { startRestarter, type FakeCluster } from './fake-cluster.js';

/** An app over `cluster`; call `stop()` when done (stops the index's watches). */
export async function stubApp(
  cluster: FakeCluster,
  options: {
    dryRun?: boolean;
    authenticator?: Authenticator;
    logger?: Logger;
    isReady?: () => boolean;
    bodyLimit?: string;
  } = {},
): Promise<{ app: express.Express; metrics: Metrics; index: WorkloadIndex; stop(): void }> {
  const logger = options.logger ?? silentLogger;
  const { restarter, index, metrics } = await startRestarter(
    cluster,
    { dryRun: options.dryRun ?? false, patchConcurrency: 2 },
    { logger },
  );
  const app = createApp({
    restarter,
    logger,
    metrics,
    isReady: options.isReady ?? (() => true),
    indexState: () => index.state(),
    authenticator: options.authenticator,
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
  });
  return { app, metrics, index, stop: () => index.stop() };
}
