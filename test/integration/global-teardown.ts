import { tsImport } from 'tsx/esm/api';
import type { TestClusterModule } from './global-setup.js';

/** Jest global teardown of the `integration` project: stops the test cluster (see global-setup.ts for tsx). */
export default async function globalTeardown(): Promise<void> {
  const harness = (await tsImport('./test-cluster.ts', import.meta.url)) as TestClusterModule;
  await harness.teardownTestCluster();
}
