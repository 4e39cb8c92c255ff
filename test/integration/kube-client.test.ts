/**
 * The one module that talks to the API server (functions/config-restarter/src/kube.ts), against the real
 * kube-apiserver: pagination, 404s, merge patches with preconditions, dry-run, and error mapping.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  createKubeClient,
  KubeApiError,
  type ClusterClient,
} from '../../functions/config-restarter/src/kube.js';
import { WORKLOAD_KINDS, type WorkloadKind } from '../../functions/config-restarter/src/workload-kinds.js';
import {
  kubeRequest,
  writeKubeconfig,
  writeServiceAccountKubeconfig,
  type KubeTarget,
} from '../cluster/kube.js';
import { freePorts, REPO_ROOT } from '../cluster/util.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';
import { appsWorkload, optedInConfigMap, PATHS } from './kube-helpers.js';

jest.setTimeout(60_000);

const ns = uniqueName('kube-client');
const deployment = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
let admin: KubeTarget;
let client: ClusterClient;

function clientFor(
  kubeconfig: string,
  options: { timeoutMs?: number; pageSize?: number } = {},
): ClusterClient {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return createKubeClient(kc, { timeoutMs: options.timeoutMs ?? 5000, pageSize: options.pageSize ?? 2 });
}

beforeAll(async () => {
  admin = adminTarget();
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: ns } });
  for (let i = 0; i < 5; i++) {
    await kubeRequest(
      admin,
      'POST',
      PATHS.configmaps(ns),
      optedInConfigMap(`cm-${i}`, { app: 'a' }, { i: String(i) }),
    );
    await kubeRequest(
      admin,
      'POST',
      PATHS.deployments(ns),
      appsWorkload('Deployment', `d-${i}`, { labels: { app: i < 2 ? 'a' : 'b' }, optIn: true }),
    );
  }
  client = clientFor(adminKubeconfigPath());
});

it('pages through lists (page size 2, 5 objects) and filters on the server', async () => {
  expect((await client.listConfigs('ConfigMap', ns)).map((c) => c.metadata?.name).sort()).toEqual([
    'cm-0',
    'cm-1',
    'cm-2',
    'cm-3',
    'cm-4',
  ]);
  expect((await client.listWorkloads(deployment, ns))?.length).toBe(5);
  expect((await client.listWorkloads(deployment, ns, 'app=a'))?.map((d) => d.metadata?.name).sort()).toEqual([
    'd-0',
    'd-1',
  ]);
});

it('answers undefined for a missing object and for a kind the API does not serve', async () => {
  expect(await client.getConfig({ kind: 'ConfigMap', namespace: ns, name: 'missing' })).toBeUndefined();
  expect(await client.getWorkload(deployment, ns, 'missing')).toBeUndefined();
  const unserved: WorkloadKind = { ...deployment, group: 'example.com', plural: 'widgets' };
  expect(await client.listWorkloads(unserved, ns)).toBeUndefined();
});

it('applies a merge patch with a resourceVersion precondition, and refuses a stale one with 409', async () => {
  const current = (await client.getWorkload(deployment, ns, 'd-0'))!;
  const patch = {
    metadata: { resourceVersion: current.metadata?.resourceVersion, annotations: { 'example.com/a': '1' } },
    spec: { template: { metadata: { annotations: { 'example.com/t': '1' } } } },
  };
  const patched = await client.patchWorkload(deployment, ns, 'd-0', patch, { dryRun: false });
  expect(patched.metadata?.annotations?.['example.com/a']).toBe('1');
  expect(patched.metadata?.generation).toBe((current.metadata?.generation ?? 0) + 1);
  await expect(client.patchWorkload(deployment, ns, 'd-0', patch, { dryRun: false })).rejects.toMatchObject({
    status: 409,
    verb: 'patch',
    resource: 'deployments.apps',
  });
});

it('dry-run validates on the server and persists nothing', async () => {
  const before = (await client.getWorkload(deployment, ns, 'd-1'))!;
  const patch = { metadata: { annotations: { 'example.com/dry': 'yes' } } };
  const answer = await client.patchWorkload(deployment, ns, 'd-1', patch, { dryRun: true });
  expect(answer.metadata?.annotations?.['example.com/dry']).toBe('yes');
  const after = (await client.getWorkload(deployment, ns, 'd-1'))!;
  expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  expect(after.metadata?.annotations?.['example.com/dry']).toBeUndefined();
});

it('maps an unknown identity to 401 and RBAC denials to forbidden errors that name the request', async () => {
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);
  const stranger = path.join(dir, 'stranger.kubeconfig');
  writeKubeconfig(stranger, { ...admin, token: 'not-a-valid-token' });
  await expect(clientFor(stranger).listConfigs('ConfigMap', ns)).rejects.toMatchObject({ status: 401 });

  await kubeRequest(admin, 'POST', `/api/v1/namespaces/${ns}/serviceaccounts`, {
    metadata: { name: 'nobody' },
  });
  const nobody = path.join(dir, 'nobody.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), nobody, ns, 'nobody');
  const error = await clientFor(nobody)
    .getConfig({ kind: 'ConfigMap', namespace: ns, name: 'cm-0' })
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(KubeApiError);
  expect(error).toMatchObject({ status: 403, forbidden: true, transient: false });
  expect((error as Error).message).toMatch(
    new RegExp(`get configmaps "cm-0" in namespace "${ns}" failed with HTTP 403`),
  );
});

it('reports an unreachable API server as a transient error (status 0)', async () => {
  const [port] = (await freePorts(1)) as [number];
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);
  const unreachable = path.join(dir, 'unreachable.kubeconfig');
  writeKubeconfig(unreachable, { ...admin, server: `https://127.0.0.1:${port}` });
  await expect(
    clientFor(unreachable, { timeoutMs: 2000 }).listConfigs('ConfigMap', ns),
  ).rejects.toMatchObject({
    status: 0,
    transient: true,
  });
});
