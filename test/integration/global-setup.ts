import { tsImport } from 'tsx/esm/api';

/** The harness module's type; it is loaded through tsx, see below. */
export type TestClusterModule = typeof import('./test-cluster.js');

/**
 * Jest global setup of the `integration` project. Jest loads this file with Node's own module loader, which neither
 * maps `.js` imports to `.ts` sources nor compiles them, so the harness is imported through tsx.
 */
export default async function globalSetup(): Promise<void> {
  const harness = (await tsImport('./test-cluster.ts', import.meta.url)) as TestClusterModule;
  await harness.setupTestCluster();
}
