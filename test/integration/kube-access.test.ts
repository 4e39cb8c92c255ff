/**
 * How the function gets into the cluster (functions/config-restarter/src/kube-credentials.ts), against the real
 * kube-apiserver:
 * - the in-cluster contract, through the built function as a process: a token rotated by rewriting the
 *   ServiceAccount directory is used from the next request on, and the old one, revoked, is not;
 * - kubeconfigs (laptop use), through client-node's KubeConfig: a `proxy-url` (a real HTTP CONNECT proxy written
 *   here), a multi-file `KUBECONFIG`, and an exec plugin whose credential client-node runs again when it expires.
 */
import { jest } from '@jest/globals';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import yaml from 'js-yaml';
import { createKubeClient } from '../../functions/config-restarter/src/kube.js';
import { loadApiAccess } from '../../functions/config-restarter/src/kube-credentials.js';
import { createKubePost } from '../../functions/config-restarter/src/token-review.js';
import { WORKLOAD_KINDS } from '../../functions/config-restarter/src/workload-kinds.js';
import { apiServerSourceRequest } from '../../cluster/apiserver-event.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { kubeRequest, KubeRequestError, type KubeTarget } from '../../cluster/kube.js';
import {
  applyKustomizationIn,
  appsWorkload,
  deleteNamespace,
  mergePatch,
  optedInConfigMap,
  PATHS,
  readWorkload,
} from '../../cluster/objects.js';
import { requestServiceAccountToken } from '../../cluster/service-account.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';

jest.setTimeout(120_000);

const ns = uniqueName('kube-access');
const labels = { app: 'access', env: 'test' };
const deployment = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
let admin: KubeTarget;
let dir: string;

beforeAll(async () => {
  admin = adminTarget();
  dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: ns } });
  // The ServiceAccount config-restarter and the project's Roles, in this namespace.
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
  await kubeRequest(
    admin,
    'POST',
    PATHS.configmaps(ns),
    optedInConfigMap('access-config', labels, { V: '0' }),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(ns),
    appsWorkload('Deployment', 'access', { labels, optIn: true }),
  );
});

afterAll(async () => {
  await deleteNamespace(admin, ns);
});

/** A Secret to bind a token to: deleting it revokes the token, as deleting its pod revokes a kubelet's token. */
async function tokenHolder(name: string): Promise<{ kind: 'Secret'; name: string; uid: string }> {
  const { body } = await kubeRequest<{ metadata: { uid: string } }>(admin, 'POST', PATHS.secrets(ns), {
    metadata: { name },
  });
  return { kind: 'Secret', name, uid: body.metadata.uid };
}

/** The status the API server gives a request made with `token`. */
async function statusWith(token: string): Promise<number> {
  try {
    return (await kubeRequest({ ...admin, token }, 'GET', `${PATHS.configmaps(ns)}/access-config`)).status;
  } catch (error) {
    if (error instanceof KubeRequestError) return error.status;
    throw error;
  }
}

/** Waits until the API server refuses `token` (it caches accepted tokens for 10 s). */
async function untilRefused(token: string): Promise<number> {
  const deadline = Date.now() + 30_000;
  let status = await statusWith(token);
  while (status !== 401 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    status = await statusWith(token);
  }
  return status;
}

describe('the in-cluster contract (the built function as a process)', () => {
  let fn: FunctionProcess;

  beforeAll(async () => {
    fn = await startFunction({
      adminKubeconfig: adminKubeconfigPath(),
      namespace: ns,
      logFile: path.join(dir, 'config-restarter.log'),
    });
  });

  afterAll(async () => {
    expect(await fn?.stop()).toBe(0);
  });

  /** Changes the ConfigMap and sends the event the adapter would send; resolves with the HTTP status. */
  async function editAndNotify(value: string): Promise<number> {
    await mergePatch(admin, `${PATHS.configmaps(ns)}/access-config`, { data: { V: value } });
    const wire = apiServerSourceRequest({
      action: 'update',
      mode: 'Reference',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'access-config', namespace: ns } },
    });
    const res = await fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });
    await res.text();
    return res.status;
  }

  const generation = async (): Promise<number> =>
    (await readWorkload(admin, PATHS.deployments(ns), 'access')).generation;

  it('uses a rotated token from the next request on, and never the old, revoked one', async () => {
    const first = await tokenHolder('token-holder-1');
    const second = await tokenHolder('token-holder-2');
    const old = await fn.serviceAccount.rotate({ boundTo: first });
    expect(await editAndNotify('1')).toBe(200);
    const afterFirst = await generation();

    // Rotation: the kubelet writes a new token; the old one is then revoked (its bound object deleted).
    await fn.serviceAccount.rotate({ boundTo: second });
    await kubeRequest(admin, 'DELETE', `${PATHS.secrets(ns)}/token-holder-1`);
    expect(await untilRefused(old)).toBe(401);
    expect(await editAndNotify('2')).toBe(200);
    expect(await generation()).toBe(afterFirst + 1);

    // What the file holds is what is sent: with the revoked token back in the file, the event fails and the
    // workload stays as it is; with a fresh token it goes through again.
    fn.serviceAccount.writeToken(old);
    expect(await editAndNotify('3')).not.toBe(200);
    expect(await generation()).toBe(afterFirst + 1);
    await fn.serviceAccount.rotate();
    expect(await editAndNotify('4')).toBe(200);
    expect(await generation()).toBe(afterFirst + 2);
  });
});

/** A kubeconfig with the given parts, written as YAML. */
function writeYaml(file: string, content: unknown): string {
  writeFileSync(file, yaml.dump(content, { lineWidth: -1 }), { mode: 0o600 });
  return file;
}

const cluster = (extra: Record<string, unknown> = {}) => ({
  name: 'local',
  cluster: { server: admin.server, 'certificate-authority-data': admin.caData, ...extra },
});
const context = { name: 'access', context: { cluster: 'local', user: 'someone', namespace: ns } };

describe('kubeconfigs, through client-node', () => {
  it('sends every request, watches included, through the proxy of `proxy-url`', async () => {
    const tunnels: string[] = [];
    const proxy = http.createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = net.connect(Number(port), host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    try {
      const kubeconfig = writeYaml(path.join(dir, 'proxied.kubeconfig'), {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [cluster({ 'proxy-url': proxyUrl })],
        users: [{ name: 'someone', user: { token: admin.token } }],
        contexts: [context],
        'current-context': 'access',
      });
      const access = await loadApiAccess({ KUBECONFIG: kubeconfig });
      const client = createKubeClient(access, { timeoutMs: 5000 });
      const found = await client.getConfig({ kind: 'ConfigMap', namespace: ns, name: 'access-config' });
      expect(found?.metadata?.name).toBe('access-config');
      const tunnelsForCalls = tunnels.length;
      expect(tunnelsForCalls).toBeGreaterThanOrEqual(1);

      const { resourceVersion } = await client.listWorkloads(deployment, ns, { map: () => null });
      const seen: string[] = [];
      const watch = client.watchWorkloads(deployment, ns, {
        resourceVersion,
        timeoutSeconds: 30,
        onEvent: (type, object) => seen.push(`${type} ${object.metadata?.name}`),
      });
      try {
        await kubeRequest(
          admin,
          'POST',
          PATHS.deployments(ns),
          appsWorkload('Deployment', 'via-proxy', { labels: {}, optIn: false }),
        );
        const deadline = Date.now() + 10_000;
        while (!seen.includes('ADDED via-proxy') && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 50));
        expect(seen).toContain('ADDED via-proxy');
      } finally {
        watch.stop();
      }
      const apiserver = new URL(admin.server);
      expect(tunnels.length).toBeGreaterThan(tunnelsForCalls);
      expect(new Set(tunnels)).toEqual(new Set([`${apiserver.hostname}:${apiserver.port}`]));
    } finally {
      proxy.closeAllConnections();
      proxy.close();
    }
  });

  it('merges a multi-file KUBECONFIG: context and user in one file, the cluster in another', async () => {
    const first = writeYaml(path.join(dir, 'context-and-user.kubeconfig'), {
      apiVersion: 'v1',
      kind: 'Config',
      users: [{ name: 'someone', user: { token: admin.token } }],
      contexts: [context],
      'current-context': 'access',
    });
    const second = writeYaml(path.join(dir, 'cluster.kubeconfig'), {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [cluster()],
    });
    const access = await loadApiAccess({ KUBECONFIG: [first, second].join(path.delimiter) });
    expect(access.namespace).toBe(ns);
    expect(access.server.href).toBe(new URL(admin.server).href);
    const client = createKubeClient(access, { timeoutMs: 5000 });
    expect(
      (await client.getConfig({ kind: 'ConfigMap', namespace: ns, name: 'access-config' }))?.data,
    ).toBeDefined();
  });

  it('runs an exec plugin, and runs it again for a new credential once the last one expired', async () => {
    // Two identities, so the answer shows which credential a request carried.
    for (const name of ['exec-first', 'exec-second']) {
      await kubeRequest(admin, 'POST', `/api/v1/namespaces/${ns}/serviceaccounts`, { metadata: { name } });
    }
    const tokens = [
      await requestServiceAccountToken(admin, ns, 'exec-first'),
      await requestServiceAccountToken(admin, ns, 'exec-second'),
    ];
    const runs = path.join(dir, 'exec-runs');
    writeFileSync(runs, '0');
    writeFileSync(path.join(dir, 'exec-tokens.json'), JSON.stringify(tokens));
    // The plugin: the next token of the list, valid for 2 seconds, as an ExecCredential on stdout.
    const plugin = path.join(dir, 'exec-plugin.mjs');
    writeFileSync(
      plugin,
      `import { readFileSync, writeFileSync } from 'node:fs';
const run = Number(readFileSync(${JSON.stringify(runs)}, 'utf8'));
writeFileSync(${JSON.stringify(runs)}, String(run + 1));
const tokens = JSON.parse(readFileSync(${JSON.stringify(path.join(dir, 'exec-tokens.json'))}, 'utf8'));
process.stdout.write(JSON.stringify({
  apiVersion: 'client.authentication.k8s.io/v1',
  kind: 'ExecCredential',
  status: { token: tokens[Math.min(run, tokens.length - 1)], expirationTimestamp: new Date(Date.now() + 2000).toISOString() },
}));
`,
    );
    chmodSync(plugin, 0o755);
    const kubeconfig = writeYaml(path.join(dir, 'exec.kubeconfig'), {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [cluster()],
      users: [
        {
          name: 'someone',
          user: {
            exec: {
              apiVersion: 'client.authentication.k8s.io/v1',
              command: process.execPath,
              args: [plugin],
              interactiveMode: 'Never',
            },
          },
        },
      ],
      contexts: [context],
      'current-context': 'access',
    });
    const access = await loadApiAccess({ KUBECONFIG: kubeconfig });
    const post = createKubePost(access, { timeoutMs: 5000 });
    const whoAmI = async (): Promise<string> => {
      const { status, json } = await post('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'SelfSubjectReview',
      });
      expect(status).toBe(201);
      return (json as { status: { userInfo: { username: string } } }).status.userInfo.username;
    };
    expect(await whoAmI()).toBe(`system:serviceaccount:${ns}:exec-first`);
    expect(await whoAmI()).toBe(`system:serviceaccount:${ns}:exec-first`);
    expect(readFileSync(runs, 'utf8')).toBe('1');
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(await whoAmI()).toBe(`system:serviceaccount:${ns}:exec-second`);
    expect(readFileSync(runs, 'utf8')).toBe('2');
  });
});
