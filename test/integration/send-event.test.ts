/**
 * `npm run send-event` against the built function and the real API server: a live object in Resource and
 * Reference mode, a manifest file, and the resync event.
 */
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { kubeRequest } from '../../cluster/kube.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { applyKustomization, appsWorkload, optedInConfigMap, PATHS } from '../../cluster/objects.js';

jest.setTimeout(60_000);
const run = promisify(execFile);
const NS = 'helloworld';
let fn: FunctionProcess;

async function sendEvent(...args: string[]): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', 'scripts/send-event.ts', '--url', fn.url, ...args],
    {
      cwd: REPO_ROOT,
    },
  );
  return stdout;
}

beforeAll(async () => {
  await applyKustomization(adminKubeconfigPath(), 'knative');
  const admin = adminTarget();
  const labels = { app: 'it-send-event', env: 'test' };
  await kubeRequest(
    admin,
    'POST',
    PATHS.configmaps(NS),
    optedInConfigMap('it-send-event', labels, { A: '1' }),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(NS),
    appsWorkload('Deployment', 'it-send-event', { labels, optIn: true }),
  );
  const dir = path.join(
    process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'),
    'send-event',
  );
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: NS,
    logFile: path.join(dir, 'config-restarter.log'),
  });
});

afterAll(async () => {
  await fn?.stop();
});

it('sends a live object in Resource mode and prints the reply', async () => {
  const out = await sendEvent(
    '--live',
    '--kubeconfig',
    adminKubeconfigPath(),
    '--namespace',
    NS,
    '--name',
    'it-send-event',
    '--mode',
    'resource',
    '--action',
    'add',
  );
  expect(out).toContain('ce-type: dev.knative.apiserver.resource.add');
  expect(out).toContain('"resourceVersion"');
  expect(out).toContain('HTTP 200');
  expect(out).toContain('ce-type: config-restarter.decisions');
  expect(out).toMatch(/"action": "record"/);
});

it('sends a Reference-mode update of unchanged content: the function skips it', async () => {
  const out = await sendEvent(
    '--live',
    '--kubeconfig',
    adminKubeconfigPath(),
    '--namespace',
    NS,
    '--name',
    'it-send-event',
  );
  expect(out).toContain('ce-type: dev.knative.apiserver.ref.update');
  expect(out).toContain('HTTP 200');
  expect(out).toMatch(/"action": "skip"/);
});

it('sends the fixture ConfigMap file and the resync event', async () => {
  const fromFile = await sendEvent('--file', 'test/fixtures/configmap.yaml');
  expect(fromFile).toContain('ce-subject: /apis/v1/namespaces/helloworld/configmaps/helloworld-config-test');
  expect(fromFile).toMatch(/HTTP (200|202)/);
  const resync = await sendEvent('--resync');
  expect(resync).toContain('ce-type: dev.knative.sources.ping');
  expect(resync).toContain('HTTP 200');
});

it('refuses to put Secret data into an event', async () => {
  const failure = await sendEvent('--live', '--kind', 'Secret', '--name', 'x', '--mode', 'resource').catch(
    (error: unknown) => error as { code: number; stderr: string },
  );
  expect(failure).toMatchObject({ code: 2 });
  expect((failure as { stderr: string }).stderr).toContain('refusing to put Secret data into an event');
});
