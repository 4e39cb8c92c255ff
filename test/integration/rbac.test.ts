/**
 * config-restarter runs with the token of its own ServiceAccount, bound only by the project's Role and
 * RoleBinding manifests: what it was not given is denied by the real API server and reported as such.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { kubeRequest, type KubeTarget } from '../../cluster/kube.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { apiServerSourceRequest } from '../../cluster/apiserver-event.js';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import {
  applyKustomization,
  appsWorkload,
  optedInConfigMap,
  PATHS,
  readWorkload,
} from '../../cluster/objects.js';

jest.setTimeout(60_000);

const NS = 'helloworld';
const DENIED = 'it-rbac-denied';
const READ_ONLY = 'it-rbac-readonly';
const labels = { app: 'it-rbac', env: 'test' };
let admin: KubeTarget;
let fn: FunctionProcess;

const event = (namespace: string, name: string, kind = 'ConfigMap') =>
  apiServerSourceRequest({
    action: 'update',
    mode: 'Reference',
    object: { apiVersion: 'v1', kind, metadata: { name, namespace } },
  });

async function post(wire: {
  headers: Record<string, string>;
  body: string;
}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });
  const text = await res.text();
  return {
    status: res.status,
    body: (text.startsWith('{') ? JSON.parse(text) : { text }) as Record<string, unknown>,
  };
}

beforeAll(async () => {
  admin = adminTarget();
  await applyKustomization(adminKubeconfigPath(), 'knative');
  for (const namespace of [DENIED, READ_ONLY]) {
    await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: namespace } });
    await kubeRequest(
      admin,
      'POST',
      PATHS.configmaps(namespace),
      optedInConfigMap('app-config', labels, { A: '1' }),
    );
    await kubeRequest(
      admin,
      'POST',
      PATHS.deployments(namespace),
      appsWorkload('Deployment', 'app', { labels, optIn: true }),
    );
  }
  // In READ_ONLY the function may read but was given no patch: a Role of this test, not of the project.
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  await kubeRequest(admin, 'POST', `${rbac}/namespaces/${READ_ONLY}/roles`, {
    metadata: { name: 'read-only' },
    rules: [
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] },
      {
        apiGroups: ['apps'],
        resources: ['deployments', 'statefulsets', 'daemonsets'],
        verbs: ['get', 'list'],
      },
      { apiGroups: ['serving.knative.dev'], resources: ['services'], verbs: ['get', 'list'] },
      { apiGroups: ['batch'], resources: ['cronjobs'], verbs: ['get', 'list'] },
    ],
  });
  await kubeRequest(admin, 'POST', `${rbac}/namespaces/${READ_ONLY}/rolebindings`, {
    metadata: { name: 'read-only' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-only' },
    subjects: [{ kind: 'ServiceAccount', name: 'config-restarter', namespace: NS }],
  });
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), 'rbac');
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: NS,
    logFile: path.join(dir, 'config-restarter.log'),
    env: { WATCH_NAMESPACES: `${NS},${DENIED},${READ_ONLY}`, CONFIG_KINDS: 'ConfigMap,Secret' },
  });
});

afterAll(async () => {
  await fn?.stop();
});

it('reading in a namespace it was not given is denied and the answer names verb, resource and namespace', async () => {
  const res = await post(event(DENIED, 'app-config'));
  expect(res.status).toBe(500);
  expect(res.body.error).toBe('forbidden');
  // The first request in that namespace is the warm index's list of its workloads.
  expect(res.body.detail).toMatch(
    /list deployments\.apps in namespace "it-rbac-denied" failed with HTTP 403/,
  );
});

it('patching where it may only read is denied, reported, and nothing changes', async () => {
  const before = await readWorkload(admin, PATHS.deployments(READ_ONLY), 'app');
  const res = await post(event(READ_ONLY, 'app-config'));
  expect(res.status).toBe(500);
  expect(res.body.error).toBe('forbidden');
  expect(res.body.detail).toMatch(
    /patch deployments\.apps "app" in namespace "it-rbac-readonly" failed with HTTP 403/,
  );
  const after = await readWorkload(admin, PATHS.deployments(READ_ONLY), 'app');
  expect(after).toEqual(before);
});

it('Secrets stay out of reach until the Secret opt-in is applied', async () => {
  const res = await post(event(NS, 'some-secret', 'Secret'));
  expect(res.status).toBe(500);
  expect(res.body.detail).toMatch(/get secrets "some-secret" in namespace "helloworld" failed with HTTP 403/);
});

it('its own ServiceAccount has exactly the project Role: it can patch workloads in its namespace', async () => {
  await kubeRequest(
    admin,
    'POST',
    PATHS.configmaps(NS),
    optedInConfigMap('it-rbac-config', labels, { A: '1' }),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.daemonsets(NS),
    appsWorkload('DaemonSet', 'it-rbac-ds', { labels, optIn: true }),
  );
  const res = await post(event(NS, 'it-rbac-config'));
  expect(res.status).toBe(200);
  const state = await readWorkload(admin, PATHS.daemonsets(NS), 'it-rbac-ds');
  expect(state.templateAnnotations['rolling.restart.controller/restartTimestamp']).toBeDefined();
  expect(state.generation).toBe(2);
});

it('an event for a namespace outside WATCH_NAMESPACES is refused without touching it', async () => {
  const res = await post(event('kube-system', 'anything'));
  expect(res.status).toBe(403);
  expect(res.body.error).toBe('namespace_not_watched');
});
