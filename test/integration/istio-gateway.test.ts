/**
 * Istio in front of helloworld on the test node: the Knative path (CoreDNS, Kourier, the Eventing controller) plus
 * istiod and the Istio ingress gateway (pilot-agent + Envoy), started for this file and stopped after it. Applies
 * `kustomize/overlays/test`, `/prod` (with the local image) and `istio/` unchanged, and asserts on what the real
 * cluster holds and serves: istiod's validation webhook judging the objects, each host answering from its own
 * environment through the gateway (HTTP, HTTPS for prod with a test certificate), and a ConfigMap edit, carried by
 * the ApiServerSource adapter pod to the function, changing the test host's message and not prod's.
 */
import path from 'node:path';
import { restoreAutoscalerConfig, setAutoscalerConfig } from '../../cluster/autoscaler-config.js';
import { clusterStatus } from '../../cluster/control-plane.js';
import { buildImages, importImages, type BuiltImage } from '../../cluster/images.js';
import { INGRESS_GATEWAY, ISTIO_NAMESPACE } from '../../cluster/istio-config.js';
import {
  requestGateway,
  selfSignedCertificate,
  startIstio,
  stopIstio,
  validationWebhookArmed,
  type GatewayAnswer,
} from '../../cluster/istio-path.js';
import { KOURIER_GATEWAY, KOURIER_GATEWAY_NAMESPACE } from '../../cluster/knative-path-config.js';
import { startKnativePath, stopKnativePath } from '../../cluster/knative-path.js';
import { KubeRequestError, kubeRequest } from '../../cluster/kube.js';
import { localManifests } from '../../cluster/local-manifests.js';
import type { NodeProcess } from '../../cluster/node.js';
import { applyKustomization, deleteNamespace, eventually } from '../../cluster/objects.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, testNode } from './cluster-env.js';
import { TEST_CLUSTER_DIR } from './test-cluster.js';

const target = adminTarget();
const node = testNode();
/** The namespace of kustomize/, knative/ and istio/ (applied unchanged). */
const NAMESPACE = 'helloworld';
const TEST_HOST = 'helloworld-test.example.com';
const PROD_HOST = 'helloworld.example.com';
const processes: NodeProcess[] = [];
let istiod: NodeProcess | undefined;
let nodeRoot: string | undefined;
let images: Record<'helloworld' | 'config-restarter', BuiltImage>;
let gatewayIp = '';
let certificate = '';
let autoscalerBefore: Record<string, string> | undefined;
/** The test environment's message after the edit. */
const EDITED = 'Hello from the edited test environment';

interface Condition {
  type: string;
  status: string;
}
interface Ksvc {
  status?: { conditions?: Condition[]; url?: string; latestReadyRevisionName?: string };
}

const ready = (conditions: Condition[] | undefined): boolean =>
  conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function get<T>(objectPath: string): Promise<T | undefined> {
  const { status, body } = await kubeRequest<T>(target, 'GET', objectPath, undefined, { allowStatus: [404] });
  return status === 404 ? undefined : body;
}

const ksvcPath = (name: string): string =>
  `/apis/serving.knative.dev/v1/namespaces/${NAMESPACE}/services/${name}`;

function readyKsvc(name: string, timeoutMs = 240_000): Promise<Ksvc> {
  return eventually(
    `Knative Service ${name} Ready`,
    async () => {
      const ksvc = await get<Ksvc>(ksvcPath(name));
      return ready(ksvc?.status?.conditions) ? ksvc : undefined;
    },
    timeoutMs,
  );
}

/** HTTP to the gateway Service's port 80, or HTTPS to 443 trusting the test certificate. */
function viaGateway(host: string, scheme: 'http' | 'https', urlPath = '/message'): Promise<GatewayAnswer> {
  return requestGateway(node.netns, {
    address: gatewayIp,
    port: scheme === 'https' ? 443 : 80,
    host,
    path: urlPath,
    ...(scheme === 'https' ? { tlsCa: certificate } : {}),
    timeoutMs: 20_000,
  });
}

/** Waits until the gateway answers `host` with 200 (routes reach the gateway a moment after they are applied). */
function answered(host: string, scheme: 'http' | 'https', body?: string, timeoutMs = 90_000) {
  return eventually(
    `${scheme}://${host} through the gateway`,
    async () => {
      const res = await viaGateway(host, scheme).catch(() => undefined);
      return res?.status === 200 && (body === undefined || res.body === body) ? res : undefined;
    },
    timeoutMs,
  );
}

/**
 * Deletes the namespace and waits until it is gone (its Knative objects are finalized first, by controllers that
 * must be running); on a timeout the error names what the namespace still waits for.
 */
async function removeNamespace(name: string): Promise<void> {
  await deleteNamespace(target, name);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ns = await get<{ status?: { conditions?: { type: string; status: string; message?: string }[] } }>(
      `/api/v1/namespaces/${name}`,
    );
    if (ns === undefined) return;
    if (Date.now() > deadline) {
      const waiting = (ns.status?.conditions ?? []).filter((c) => c.status === 'True').map((c) => c.message);
      throw new Error(`namespace ${name} still terminating after 120 s: ${waiting.join('; ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

beforeAll(async () => {
  const info = (await clusterStatus(TEST_CLUSTER_DIR)).info;
  if (!info?.node) throw new Error('Istio needs the test cluster to run a node');
  nodeRoot = info.node.root;
  const log = (line: string): void => {
    process.stderr.write(`[istio] ${line}\n`);
  };
  const common = {
    dir: TEST_CLUSTER_DIR,
    node: info.node,
    kubeconfig: info.kubeconfig,
    target,
    detached: false,
    timeoutMs: 180_000,
    log,
  };
  await startKnativePath({ ...common, onSpawned: (p) => processes.push(p) });
  await startIstio({ ...common, onSpawned: (p) => (istiod = p) });
  // The manifests' own namespace: start from an empty one (another test may have applied them there), so the
  // Revisions are numbered from 00001. Now, with Kourier and the Eventing controller running to finalize what an
  // earlier test left in it.
  await removeNamespace(NAMESPACE);
  images = await buildImages(['helloworld', 'config-restarter'], { log: () => undefined });
  await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
  const { body: service } = await kubeRequest<{ spec: { clusterIP: string } }>(
    target,
    'GET',
    `/api/v1/namespaces/${ISTIO_NAMESPACE}/services/${INGRESS_GATEWAY}`,
  );
  gatewayIp = service.spec.clusterIP;
}, 900_000);

afterAll(async () => {
  try {
    if (autoscalerBefore) await restoreAutoscalerConfig(target, autoscalerBefore);
    // While the Knative path still runs: its controllers finalize the namespace's Knative objects (Ingresses,
    // sources). Gone before the next test file, which may apply the manifests into the same namespace.
    await removeNamespace(NAMESPACE);
  } finally {
    await stopIstio(istiod, target, () => undefined);
    await stopKnativePath(processes, () => undefined, nodeRoot);
    for (const deployment of [
      `${KOURIER_GATEWAY_NAMESPACE}/deployments/${KOURIER_GATEWAY}`,
      'knative-eventing/deployments/pingsource-mt-adapter',
    ]) {
      await kubeRequest(target, 'DELETE', `/apis/apps/v1/namespaces/${deployment}`, undefined, {
        allowStatus: [404],
      });
    }
    // istiod is gone: its webhooks (failurePolicy Fail) would deny every later Istio object.
    for (const name of ['istiod-default-validator', 'istio-validator-istio-system']) {
      await kubeRequest(
        target,
        'DELETE',
        `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${name}`,
        undefined,
        { allowStatus: [404] },
      );
    }
  }
  await removeNamespace(ISTIO_NAMESPACE);
}, 360_000);

describe('Istio in front of helloworld', () => {
  it('runs istiod with its validation webhook, which accepts istio/ and denies a broken VirtualService', async () => {
    expect(await validationWebhookArmed(target)).toBe(true);
    // The gateway pod got its certificate from istiod's CA and its configuration from istiod.
    const { body: pods } = await kubeRequest<{
      items: { status: { conditions?: Condition[] }; spec: { containers: { image: string }[] } }[];
    }>(target, 'GET', `/api/v1/namespaces/${ISTIO_NAMESPACE}/pods?labelSelector=istio%3Dingressgateway`);
    expect(pods.items.length).toBe(1);
    expect(ready(pods.items[0]?.status.conditions)).toBe(true);
    expect(pods.items[0]?.spec.containers[0]?.image).toMatch(/^localhost\/config-restarter\/istio-proxy:/);

    await kubeRequest(
      target,
      'POST',
      '/api/v1/namespaces',
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: NAMESPACE },
      },
      { allowStatus: [409] },
    );
    const dryRun = await applyKustomization(adminKubeconfigPath(), path.join(REPO_ROOT, 'istio'), {
      dryRun: true,
    });
    expect(dryRun).toContain(
      'gateway.networking.istio.io/helloworld-gateway serverside-applied (server dry run)',
    );
    expect(dryRun).toContain('virtualservice.networking.istio.io/helloworld-test serverside-applied');
    expect(dryRun).toContain('virtualservice.networking.istio.io/helloworld-prod serverside-applied');

    const denied = await kubeRequest(
      target,
      'POST',
      `/apis/networking.istio.io/v1/namespaces/${NAMESPACE}/virtualservices?dryRun=All`,
      {
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: 'broken' },
        spec: { hosts: ['broken.example.com'], http: [{ route: [{ destination: { host: '' } }] }] },
      },
    ).catch((err: unknown) => err);
    expect(denied).toBeInstanceOf(KubeRequestError);
    expect((denied as KubeRequestError).status).toBe(400);
    expect((denied as KubeRequestError).message).toContain('admission webhook "validation.istio.io" denied');
  }, 120_000);

  it('answers each host from its own environment through the gateway (HTTP, and HTTPS for prod)', async () => {
    for (const environment of ['test', 'prod'] as const) {
      const manifests = localManifests(images, {
        dir: path.join(TEST_CLUSTER_DIR, `istio-${environment}`),
        environment,
      });
      await applyKustomization(adminKubeconfigPath(), manifests.helloworld);
    }
    await readyKsvc('helloworld-test');
    await readyKsvc('helloworld-prod');

    const tls = await selfSignedCertificate(PROD_HOST);
    certificate = tls.cert;
    await kubeRequest(target, 'POST', `/api/v1/namespaces/${ISTIO_NAMESPACE}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: 'helloworld-prod-tls' },
      stringData: { 'tls.crt': tls.cert, 'tls.key': tls.key },
    });
    await applyKustomization(adminKubeconfigPath(), path.join(REPO_ROOT, 'istio'));

    const test = await answered(TEST_HOST, 'http');
    expect(test.body).toBe('Hello from the test environment');
    expect(test.headers.server).toBe('istio-envoy');
    const prod = await answered(PROD_HOST, 'https');
    expect(prod.body).toBe('Hello from production');
    // The gateway presented the Secret's certificate for the prod host (SNI), which the client verified.
    expect(prod.peerSubjectAltName).toBe(`DNS:${PROD_HOST}`);
    // Production over HTTP: only the redirect the Gateway asks for.
    const redirect = await viaGateway(PROD_HOST, 'http');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`https://${PROD_HOST}/message`);
    // A host no VirtualService names gets the gateway's 404.
    expect((await viaGateway('unknown.example.com', 'http')).status).toBe(404);
  }, 600_000);

  it('serves the edited message on the test host after the function restarted it; prod does not change', async () => {
    // The plumbing of knative/ (ApiServerSource, PingSource, RBAC) and the function's Knative Service.
    const manifests = localManifests(images, { dir: path.join(TEST_CLUSTER_DIR, 'istio-function') });
    await applyKustomization(adminKubeconfigPath(), manifests.function);
    await readyKsvc('config-restarter');
    await eventually(
      'ApiServerSource Ready',
      async () => {
        const s = await get<Ksvc>(
          `/apis/sources.knative.dev/v1/namespaces/${NAMESPACE}/apiserversources/config-restarter-source`,
        );
        return ready(s?.status?.conditions) ? s : undefined;
      },
      180_000,
    );
    const prodBefore = (await get<Ksvc>(ksvcPath('helloworld-prod')))?.status?.latestReadyRevisionName;
    expect(prodBefore).toBe('helloworld-prod-00001');

    const message = EDITED;
    const editedAt = Date.now();
    await kubeRequest(
      target,
      'PATCH',
      `/api/v1/namespaces/${NAMESPACE}/configmaps/helloworld-config-test`,
      { data: { MESSAGE: message } },
      { contentType: 'application/merge-patch+json' },
    );
    const served = await answered(TEST_HOST, 'http', message, 240_000);
    process.stderr.write(
      `[istio] edit -> new message through the gateway: ${(Date.now() - editedAt) / 1000} s\n`,
    );
    expect(served.body).toBe(message);
    expect((await readyKsvc('helloworld-test')).status?.latestReadyRevisionName).toBe(
      'helloworld-test-00002',
    );

    // Prod: same Revision, same message, over HTTPS, also a while after the edit.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    expect((await get<Ksvc>(ksvcPath('helloworld-prod')))?.status?.latestReadyRevisionName).toBe(prodBefore);
    const prod = await viaGateway(PROD_HOST, 'https');
    expect(prod).toMatchObject({ status: 200, body: 'Hello from production' });
  }, 600_000);

  it('wakes helloworld-test from zero for a request through the gateway: the activator is in the path', async () => {
    // Shorter windows for this cluster only (cluster/autoscaler-config.ts): at zero in about 12 s.
    autoscalerBefore = await setAutoscalerConfig(target);
    const pods = async (): Promise<unknown[]> =>
      (
        await kubeRequest<{ items: unknown[] }>(
          target,
          'GET',
          `/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=${encodeURIComponent('serving.knative.dev/service=helloworld-test')}`,
        )
      ).body.items;
    await eventually(
      'no helloworld-test pod',
      async () => ((await pods()).length === 0 ? true : undefined),
      240_000,
    );
    const revision = (await get<Ksvc>(ksvcPath('helloworld-test')))?.status?.latestReadyRevisionName;
    const sks = await get<{ spec: { mode: string } }>(
      `/apis/networking.internal.knative.dev/v1alpha1/namespaces/${NAMESPACE}/serverlessservices/${revision}`,
    );
    expect(sks?.spec.mode).toBe('Proxy');

    // One request: held by the activator until a pod of the Revision is Ready, then answered.
    const res = await viaGateway(TEST_HOST, 'http');
    expect(res).toMatchObject({ status: 200, body: EDITED });
    expect((await pods()).length).toBe(1);
  }, 360_000);
});
