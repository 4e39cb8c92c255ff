/** The rendered manifests apply server-side to the real API server (with the local CRDs installed). */
import { jest } from '@jest/globals';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';
import { kubeRequest } from '../../cluster/kube.js';
import { applyKustomization } from '../../cluster/objects.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../../cluster/util.js';

jest.setTimeout(60_000);
const run = promisify(execFile);

it.each(['knative', 'kustomize/overlays/test', 'kustomize/overlays/prod', 'istio'])(
  '%s applies server-side',
  async (dir) => {
    const output = await applyKustomization(adminKubeconfigPath(), dir);
    expect(output).toMatch(/serverside-applied|unchanged|configured|created/);
    expect(output).not.toMatch(/error|warning/i);
  },
);

it.each(['knative/broker', 'knative/secrets', 'knative/argo-rollouts'])(
  '%s passes server-side dry-run',
  async (dir) => {
    const { stdout, stderr } = await run(
      'kubectl',
      [
        '--kubeconfig',
        adminKubeconfigPath(),
        'apply',
        '--server-side',
        '--dry-run=server',
        '--field-manager=integration-test',
        '-k',
        dir,
      ],
      { cwd: REPO_ROOT },
    );
    expect(stdout).toMatch(/server dry run/);
    expect(stderr).not.toMatch(/error|warning/i);
  },
);

it('the API server holds both environments side by side in one namespace', async () => {
  const { body } = await kubeRequest<{
    items: { metadata: { name: string; labels: Record<string, string> } }[];
  }>(
    adminTarget(),
    'GET',
    '/apis/serving.knative.dev/v1/namespaces/helloworld/services?labelSelector=app%3Dhelloworld',
  );
  const byName = Object.fromEntries(body.items.map((item) => [item.metadata.name, item.metadata.labels.env]));
  expect(byName).toMatchObject({ 'helloworld-test': 'test', 'helloworld-prod': 'prod' });
});
