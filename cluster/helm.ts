/**
 * Runs the `helm` binary built from the pinned Go module (see binaries.ts, component `helm`) on the chart in
 * charts/config-restarter. Helm's own state (config, cache, data) goes to a private directory so a user's
 * repositories and plugins never play a part.
 */
import { execFile } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from './util.js';

/** The chart directory. */
export const CHART_DIR = path.join(REPO_ROOT, 'charts', 'config-restarter');

/** Outcome of one helm run: never rejects on a non-zero exit, the tests assert on it. */
export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

const HELM_HOME = path.join(os.tmpdir(), `config-restarter-helm-${process.getuid?.() ?? 'user'}`);

/** `helm <args>` with a private HELM_*_HOME; `kubeconfig` sets KUBECONFIG for commands that talk to a cluster. */
export function runHelm(helm: string, args: readonly string[], kubeconfig?: string): Promise<HelmResult> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HELM_CONFIG_HOME: path.join(HELM_HOME, 'config'),
    HELM_CACHE_HOME: path.join(HELM_HOME, 'cache'),
    HELM_DATA_HOME: path.join(HELM_HOME, 'data'),
    KUBECONFIG: kubeconfig ?? path.join(HELM_HOME, 'no-cluster.kubeconfig'),
  };
  return new Promise((resolve, reject) => {
    execFile(helm, [...args], { cwd: REPO_ROOT, env, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`could not run ${helm}: ${err.message}`));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}
