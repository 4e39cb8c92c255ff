/**
 * The one module that talks to the API server (functions/config-restarter/src/kube.ts), against the real
 * kube-apiserver, through the production credential path (the in-cluster contract: service host and port, a
 * ServiceAccount directory): discovery, pagination, watches, merge patches with preconditions, dry-run,
 * deadlines, cancellation and error mapping.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import {
  createKubeClient,
  KubeApiError,
  type ClusterClient,
  type WatchEventType,
} from '../../functions/config-restarter/src/kube.js';
import { loadApiAccess } from '../../functions/config-restarter/src/kube-credentials.js';
import { WORKLOAD_KINDS, type WorkloadKind } from '../../functions/config-restarter/src/workload-kinds.js';
import { createServiceAccountToken, kubeRequest, type KubeTarget } from '../../cluster/kube.js';
import { inClusterEnv, writeServiceAccountDir } from '../../cluster/service-account.js';
import { freePorts, REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';
import { appsWorkload, optedInConfigMap, PATHS } from '../../cluster/objects.js';

jest.setTimeout(60_000);

const ns = uniqueName('kube-client');
const deployment = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
let admin: KubeTarget;
let client: ClusterClient;

let accounts = 0;

/** A client as the function builds it in a pod: the target's token and CA in a ServiceAccount directory. */
async function clientFor(
  target: KubeTarget,
  options: { timeoutMs?: number; pageSize?: number } = {},
): Promise<ClusterClient> {
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);
  const serviceAccountDir = path.join(dir, `serviceaccount-${++accounts}`);
  writeServiceAccountDir(serviceAccountDir, { token: target.token, caData: target.caData, namespace: ns });
  const access = await loadApiAccess(inClusterEnv(target.server, serviceAccountDir));
  return createKubeClient(access, { timeoutMs: options.timeoutMs ?? 5000, pageSize: options.pageSize ?? 2 });
}

const names = (items: { metadata?: { name?: string } }[]): string[] =>
  items.map((item) => item.metadata?.name ?? '').sort();

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
  client = await clientFor(admin);
});

it('pages through lists (page size 2, 5 objects) and filters on the server', async () => {
  expect((await client.listConfigs('ConfigMap', ns)).map((c) => c.metadata?.name).sort()).toEqual([
    'cm-0',
    'cm-1',
    'cm-2',
    'cm-3',
    'cm-4',
    // Published into every namespace by kube-controller-manager.
    'kube-root-ca.crt',
  ]);
  const all = await client.listWorkloads(deployment, ns, { map: (object) => object });
  expect(all.items).toHaveLength(5);
  expect(Number(all.resourceVersion)).toBeGreaterThan(0);
  const selected = await client.listWorkloads(deployment, ns, {
    labelSelector: 'app=a',
    map: (object) => ({ metadata: { name: object.metadata?.name } }),
  });
  expect(names(selected.items)).toEqual(['d-0', 'd-1']);
});

it('answers undefined for a missing object, and tells served kinds from discovery', async () => {
  expect(await client.getConfig({ kind: 'ConfigMap', namespace: ns, name: 'missing' })).toBeUndefined();
  expect(await client.getWorkload(deployment, ns, 'missing')).toBeUndefined();
  for (const kind of WORKLOAD_KINDS) expect(await client.serves(kind)).toBe(true);
  const unservedGroup: WorkloadKind = { ...deployment, group: 'example.com', plural: 'widgets' };
  const unservedPlural: WorkloadKind = { ...deployment, plural: 'widgets' };
  expect(await client.serves(unservedGroup)).toBe(false);
  expect(await client.serves(unservedPlural)).toBe(false);
});

it('watches from a list: additions, changes and deletions arrive in order', async () => {
  const { resourceVersion } = await client.listWorkloads(deployment, ns, { map: () => null });
  const seen: [WatchEventType, string][] = [];
  const watch = client.watchWorkloads(deployment, ns, {
    resourceVersion,
    timeoutSeconds: 30,
    onEvent: (type, object) => {
      if (type !== 'BOOKMARK') seen.push([type, object.metadata?.name ?? '']);
    },
  });
  try {
    await kubeRequest(
      admin,
      'POST',
      PATHS.deployments(ns),
      appsWorkload('Deployment', 'w-new', { labels: {}, optIn: true }),
    );
    await kubeRequest(
      admin,
      'PATCH',
      `${PATHS.deployments(ns)}/w-new`,
      { metadata: { labels: { x: '1' } } },
      {
        contentType: 'application/merge-patch+json',
      },
    );
    await kubeRequest(admin, 'DELETE', `${PATHS.deployments(ns)}/w-new`);
    const deadline = Date.now() + 10_000;
    const ofNew = () => seen.filter(([, name]) => name === 'w-new').map(([type]) => type);
    while (!ofNew().includes('DELETED') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // kube-controller-manager writes the status of every Deployment too: more MODIFIED events, of this one and the
    // others; in order, this one is added, changed, deleted.
    expect(ofNew().filter((type, i, all) => type !== all[i - 1])).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
  } finally {
    watch.stop();
  }
  await expect(watch.ended).resolves.toEqual({ reason: 'closed' });
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
  // Not the resourceVersion: kube-controller-manager writes the Deployment's status at any time.
  expect(after.metadata?.generation).toBe(before.metadata?.generation);
  expect(after.metadata?.annotations).toEqual(before.metadata?.annotations);
  expect(after.metadata?.annotations?.['example.com/dry']).toBeUndefined();
});

it('maps an unknown identity to 401 and RBAC denials to forbidden errors that name the request', async () => {
  const stranger = { ...admin, token: 'not-a-valid-token' };
  await expect((await clientFor(stranger)).listConfigs('ConfigMap', ns)).rejects.toMatchObject({
    status: 401,
  });

  await kubeRequest(admin, 'POST', `/api/v1/namespaces/${ns}/serviceaccounts`, {
    metadata: { name: 'nobody' },
  });
  const nobody = { ...admin, token: await createServiceAccountToken(adminKubeconfigPath(), ns, 'nobody') };
  const error = await (
    await clientFor(nobody)
  )
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
  const unreachable = { ...admin, server: `https://127.0.0.1:${port}` };
  await expect(
    (await clientFor(unreachable, { timeoutMs: 2000 })).listConfigs('ConfigMap', ns),
  ).rejects.toMatchObject({
    status: 0,
    transient: true,
  });
});

it('cancels a call when its event is cancelled, and never waits past the request deadline', async () => {
  const cancelled = new AbortController();
  cancelled.abort(new Error('an earlier call failed'));
  await expect(
    client.getConfig({ kind: 'ConfigMap', namespace: ns, name: 'cm-0' }, { signal: cancelled.signal }),
  ).rejects.toMatchObject({ status: 0, transient: true, detail: 'cancelled: an earlier call failed' });

  // A listener that accepts connections and never answers: the deadline, not the socket, ends the call.
  const net = await import('node:net');
  const silent = net.createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as { port: number };
  const hanging = { ...admin, server: `https://127.0.0.1:${port}` };
  const started = Date.now();
  try {
    await expect(
      (await clientFor(hanging, { timeoutMs: 700 })).getConfig({
        kind: 'ConfigMap',
        namespace: ns,
        name: 'x',
      }),
    ).rejects.toMatchObject({ status: 0, detail: 'no answer within 700 ms' });
    expect(Date.now() - started).toBeLessThan(1500);
  } finally {
    silent.close();
  }
});
