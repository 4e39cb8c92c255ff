/**
 * The function's express app over a {@link FakeCluster}, with a synced workload index, for the HTTP-layer
 * tests (server, authentication, fuzzing). `cluster.calls` is emptied once the index has synced, so it holds
 * only what requests cause.
 */
import type express from 'express';
import type { Authenticator } from '../../../functions/config-restarter/src/auth.js';
import { createApp } from '../../../functions/config-restarter/src/app.js';
import { silentLogger } from '../../../functions/config-restarter/src/log.js';
import { createMetrics, type Metrics } from '../../../functions/config-restarter/src/metrics.js';
import { createRestarter } from '../../../functions/config-restarter/src/restarter.js';
import { startIndex, type FakeCluster } from './fake-cluster.js';

/** An app over `cluster`; call `stop()` when done (stops the index's watches). */
export async function stubApp(
  cluster: FakeCluster,
  options: { dryRun?: boolean; authenticator?: Authenticator } = {},
): Promise<{ app: express.Express; metrics: Metrics; stop(): void }> {
  const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app', 'env'] };
  const index = startIndex(cluster, settings);
  await index.whenSynced(undefined, AbortSignal.timeout(5_000));
  cluster.calls.length = 0;
  const metrics = createMetrics();
  const restarter = createRestarter({
    client: cluster,
    index,
    logger: silentLogger,
    metrics,
    settings: {
      ...settings,
      dryRun: options.dryRun ?? false,
      configKinds: ['ConfigMap'],
      patchConcurrency: 2,
      scope: { all: false, namespaces: ['helloworld'] },
      syncTimeoutMs: 1000,
    },
  });
  const app = createApp({
    restarter,
    logger: silentLogger,
    metrics,
    isReady: () => true,
    indexState: () => index.state(),
    authenticator: options.authenticator,
  });
  return { app, metrics, stop: () => index.stop() };
}
