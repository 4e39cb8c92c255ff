import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { kubeRequest, writeServiceAccountKubeconfig } from '../../cluster/kube.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

const namespace = uniqueName('adapter');
const received: Received[] = [];
let sink: Server;
let adapter: ApiServerSourceAdapter | undefined;

beforeAll(async () => {
  sink = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  await adapter?.stop();
  await new Promise((resolve) => sink.close(resolve));
});

it('the real ApiServerSource adapter sends a Reference-mode update for a watched ConfigMap', async () => {
  const admin = adminTarget();
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: namespace } });
  await kubeRequest(admin, 'POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    metadata: { name: 'source' },
  });
  await kubeRequest(admin, 'POST', `${rbac}/namespaces/${namespace}/roles`, {
    metadata: { name: 'source' },
    rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] }],
  });
  await kubeRequest(admin, 'POST', `${rbac}/namespaces/${namespace}/rolebindings`, {
    metadata: { name: 'source' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'source' },
    subjects: [{ kind: 'ServiceAccount', name: 'source', namespace }],
  });
  const cmPath = `/api/v1/namespaces/${namespace}/configmaps`;
  await kubeRequest(admin, 'POST', cmPath, {
    metadata: { name: 'app-config', labels: { app: 'helloworld' } },
    data: { a: '1' },
  });

  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? '.', namespace);
  const kubeconfig = path.join(dir, 'source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), kubeconfig, namespace, 'source');
  adapter = await startApiServerSourceAdapter({
    binary: process.env.TEST_ASSET_APISERVER_ADAPTER ?? 'apiserver_receive_adapter',
    kubeconfig,
    namespace,
    name: 'config-source',
    sink: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/`,
    mode: 'Reference',
    resources: [{ group: '', version: 'v1', resource: 'configmaps', selector: 'app=helloworld' }],
    logFile: path.join(dir, 'adapter.log'),
  });
  await adapter.waitUntilWatching();
  // Existing objects produce no event at start.
  expect(received).toHaveLength(0);

  await kubeRequest(
    admin,
    'PATCH',
    `${cmPath}/app-config`,
    { data: { a: '2' } },
    {
      contentType: 'application/merge-patch+json',
    },
  );
  const deadline = Date.now() + 10_000;
  while (received.length === 0 && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50));

  expect(received).toHaveLength(1);
  const [event] = received as [Received];
  expect(event.headers).toMatchObject({
    'ce-specversion': '1.0',
    'ce-type': 'dev.knative.apiserver.ref.update',
    'ce-source': admin.server,
    'ce-subject': `/apis/v1/namespaces/${namespace}/configmaps/app-config`,
    'ce-kind': 'ConfigMap',
    'ce-name': 'app-config',
    'ce-namespace': namespace,
    'kn-namespace': namespace,
  });
  expect(JSON.parse(event.body)).toEqual({
    kind: 'ConfigMap',
    namespace,
    name: 'app-config',
    apiVersion: 'v1',
  });
}, 60_000);
