import { rmSync } from 'node:fs';
import path from 'node:path';
import {
  COMPONENTS,
  ensureBinaries,
  ensureImageBinaries,
  ensureIstioBinaries,
  ensureKnativePathBinaries,
  ensureNodeBinaries,
  type Component,
} from '../../cluster/binaries.js';
import { ensureEnvoy } from '../../cluster/envoy.js';
import { startCluster, stopCluster } from '../../cluster/control-plane.js';
import { REPO_ROOT, elapsed, isProcessAlive } from '../../cluster/util.js';

/** Directory of the integration-test cluster: separate from `.cluster/` so a user's cluster is never touched. */
export const TEST_CLUSTER_DIR = path.resolve(
  process.env.TEST_CLUSTER_DIR || path.join(REPO_ROOT, '.cluster', 'test'),
);

/**
 * Starts the integration-test cluster (called by global-setup.ts): makes sure the binaries exist (built once, then
 * cached), starts a fresh control plane with its controllers (kube-controller-manager, Knative Serving controller
 * and webhook) and a node in {@link TEST_CLUSTER_DIR} and publishes it to the tests through environment variables:
 * `CLUSTER_KUBECONFIG` (admin kubeconfig), `TEST_CLUSTER_DIR`, `CLUSTER_NODE_NETNS` (the node's network namespace),
 * `CLUSTER_CONTAINERD_ADDRESS` (its containerd socket), and every binary's `TEST_ASSET_*` variable (e.g.
 * `TEST_ASSET_APISERVER_ADAPTER`, so tests find the receive adapter without building anything).
 */
export async function setupTestCluster(): Promise<void> {
  const start = Date.now();
  const log = (line: string): void => {
    process.stderr.write(`[cluster] ${line}\n`);
  };
  process.stderr.write('\n');
  const binaries = await ensureBinaries(log);
  const nodeBinaries = await ensureNodeBinaries(log);
  // Built (or downloaded) here, with network access, for knative-path.test.ts: never inside a test's timeout.
  const knativePathBinaries = await ensureKnativePathBinaries(log);
  // The images' Go commands too (the Broker's data plane, event_display): the images are built inside the tests.
  await ensureImageBinaries(log);
  await ensureEnvoy(log);
  // istiod and pilot-agent, for istio-gateway.test.ts (their Go module also holds Istio's CRDs).
  await ensureIstioBinaries(log);
  // A previous run killed before its teardown may have left processes behind: always start from scratch.
  if (await stopCluster(TEST_CLUSTER_DIR, log)) log('stopped a test cluster left over from an earlier run');
  // Files of the previous run (logs, per-test kubeconfigs) are kept for post-mortems until now.
  rmSync(TEST_CLUSTER_DIR, { recursive: true, force: true });
  const cluster = await startCluster({ dir: TEST_CLUSTER_DIR, binaries, log, detached: false });
  // Last resort if Jest exits without running the teardown (e.g. a crash): never leave the processes behind.
  process.once('exit', () => {
    for (const [pid, binary] of [
      ...cluster.controllers.map((c) => [c.pid, c.binary] as const),
      ...(cluster.node?.processes ?? []).map((p) => [p.pid, p.binary] as const),
      [cluster.pids.kubeApiserver, binaries.kubeApiserver],
      [cluster.pids.etcd, binaries.etcd],
    ] as const) {
      if (isProcessAlive(pid, binary)) process.kill(pid, 'SIGKILL');
    }
  });
  process.env.CLUSTER_KUBECONFIG = cluster.kubeconfig;
  process.env.TEST_CLUSTER_DIR = TEST_CLUSTER_DIR;
  if (cluster.node) {
    process.env.CLUSTER_NODE_NETNS = cluster.node.netns;
    process.env.CLUSTER_CONTAINERD_ADDRESS = cluster.node.containerdAddress;
  }
  for (const [component, binary] of Object.entries({
    ...binaries,
    ...nodeBinaries,
    ...knativePathBinaries,
  }) as [Component, string][]) {
    process.env[COMPONENTS[component].envVar] = binary;
  }
  log(`test cluster ready at ${cluster.server} in ${elapsed(start)} s (kubeconfig ${cluster.kubeconfig})`);
}

/** Stops the integration-test cluster and removes its data (called by global-teardown.ts). */
export async function teardownTestCluster(): Promise<void> {
  await stopCluster(TEST_CLUSTER_DIR, (line) => {
    process.stderr.write(`[cluster] ${line}\n`);
  });
}
