import { tsImport } from 'tsx/esm/api';

/** The binaries module's type; it is loaded through tsx, see below. */
type BinariesModule = typeof import('../../cluster/binaries.js');

/**
 * Jest global setup of the `manifests` project: finds or builds (once, then cached with the control plane
 * binaries) `helm` and `actionlint` from their pinned Go modules, and publishes their paths as
 * `TEST_ASSET_HELM` / `TEST_ASSET_ACTIONLINT` so the test files never build anything. No cluster is started.
 * Jest loads this file with Node's own module loader, so the TypeScript module is imported through tsx.
 */
export default async function globalSetup(): Promise<void> {
  const binaries = (await tsImport('../../cluster/binaries.ts', import.meta.url)) as BinariesModule;
  const tools = await binaries.ensureTools((line) => process.stderr.write(`[tools] ${line}\n`));
  process.env.TEST_ASSET_HELM = tools.helm;
  process.env.TEST_ASSET_ACTIONLINT = tools.actionlint;
}
