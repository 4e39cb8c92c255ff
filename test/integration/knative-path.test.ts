/**
 * The Knative path on the test node: CoreDNS, the Kourier ingress (control plane + Envoy gateway) and the Knative
 * Eventing controller, started on the shared test cluster for this file and stopped after it. Asserts on what the
 * real cluster holds and serves: DNS answers, Ready Knative Services answering through Envoy, the ApiServerSource's
 * sink URI and the adapter pod the Eventing controller made, a ConfigMap edit restarting helloworld end to end, and
 * the same with the function at zero: the adapter's event wakes it through the activator.
 */
import path from 'node:path';
import { clusterStatus } from '../../cluster/control-plane.js';
import { buildImages, importImages, type BuiltImage } from '../../cluster/images.js';
import {
  KOURIER_GATEWAY_NAMESPACE,
  KOURIER_INGRESS_CLASS,
  PATH_DEPLOYMENTS,
} from '../../cluster/knative-path-config.js';
import { requestThroughClusterDns, startKnativePath, stopKnativePath } from '../../cluster/knative-path.js';
import { kubeRequest } from '../../cluster/kube.js';
import { restoreAutoscalerConfig, setAutoscalerConfig } from '../../cluster/autoscaler-config.js';
import { localManifests } from '../../cluster/local-manifests.js';
import type { NodeProcess } from '../../cluster/node.js';
import { NODE_NETWORK } from '../../cluster/node-network.js';
import { applyKustomization, deleteNamespace, eventually } from '../../cluster/objects.js';
import { adminKubeconfigPath, adminTarget, testNode, uniqueName } from './cluster-env.js';
import { TEST_CLUSTER_DIR } from './test-cluster.js';

const target = adminTarget();
const node = testNode();
const namespace = uniqueName('knpath');
const processes: NodeProcess[] = [];
let nodeRoot: string | undefined;
let autoscalerBefore: Record<string, string> | undefined;
let images: Record<'helloworld' | 'config-restarter' | 'apiserver-adapter' | 'mtping', BuiltImage>;

interface Condition {
  type: string;
  status: string;
}
interface KnativeObject {
  metadata: { name: string; uid: string; annotations?: Record<string, string> };
  status?: {
    conditions?: Condition[];
    url?: string;
    sinkUri?: string;
    latestReadyRevisionName?: string;
    traffic?: { revisionName: string; percent: number; latestRevision?: boolean }[];
  };
}
interface Pod {
  metadata: { name: string; creationTimestamp?: string; ownerReferences?: { kind: string; name: string }[] };
  spec: { serviceAccountName?: string; containers: { image: string }[] };
  status: { conditions?: Condition[] };
}

const ready = (conditions: Condition[] | undefined): boolean =>
  conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function get<T>(objectPath: string): Promise<T | undefined> {
  const { status, body } = await kubeRequest<T>(target, 'GET', objectPath, undefined, { allowStatus: [404] });
  return status === 404 ? undefined : body;
}

/** The pods of one Revision. */
async function revisionPods(revision: string): Promise<Pod[]> {
  const selector = encodeURIComponent(`serving.knative.dev/revision=${revision}`);
  const { body } = await kubeRequest<{ items: Pod[] }>(
    target,
    'GET',
    `/api/v1/namespaces/${namespace}/pods?labelSelector=${selector}`,
  );
  return body.items;
}

const ksvcPath = (name: string): string =>
  `/apis/serving.knative.dev/v1/namespaces/${namespace}/services/${name}`;

/** A Knative Service once it is Ready. */
function readyKsvc(name: string, timeoutMs = 180_000): Promise<KnativeObject> {
  return eventually(
    `Knative Service ${name} Ready`,
    async () => {
      const ksvc = await get<KnativeObject>(ksvcPath(name));
      return ready(ksvc?.status?.conditions) ? ksvc : undefined;
    },
    timeoutMs,
  );
}

beforeAll(async () => {
  const status = await clusterStatus(TEST_CLUSTER_DIR);
  const info = status.info;
  if (!info?.node) throw new Error('the Knative path needs the test cluster to run a node');
  nodeRoot = info.node.root;
  const log = (line: string): void => {
    process.stderr.write(`[knative-path] ${line}\n`);
  };
  await startKnativePath({
    dir: TEST_CLUSTER_DIR,
    node: info.node,
    kubeconfig: info.kubeconfig,
    target,
    detached: false,
    timeoutMs: 120_000,
    log,
    onSpawned: (p) => processes.push(p),
  });
  images = await buildImages(['helloworld', 'config-restarter', 'apiserver-adapter', 'mtping'], {
    log: () => undefined,
  });
  await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
}, 600_000);

afterAll(async () => {
  if (autoscalerBefore) await restoreAutoscalerConfig(target, autoscalerBefore);
  await stopKnativePath(processes, () => undefined, nodeRoot);
  // The gateway's Envoy pods would otherwise keep asking the stopped control plane for configuration, the
  // PingSource adapter pod would fire the PingSources of later tests next to the cluster's own mtping process, and the
  // Broker's data plane would keep running without its controllers.
  for (const deployment of PATH_DEPLOYMENTS) {
    const [ns, name] = deployment.split('/');
    await kubeRequest(target, 'DELETE', `/apis/apps/v1/namespaces/${ns}/deployments/${name}`, undefined, {
      allowStatus: [404],
    });
  }
  await deleteNamespace(target, namespace);
}, 120_000);

describe('the Knative path', () => {
  it('resolves cluster names through CoreDNS and nothing outside the cluster', async () => {
    const { body: kubernetes } = await kubeRequest<{ spec: { clusterIP: string } }>(
      target,
      'GET',
      '/api/v1/namespaces/default/services/kubernetes',
    );
    expect(kubernetes.spec.clusterIP).toBe(NODE_NETWORK.kubernetesServiceIp);
    // The API server answers (401/403 without a token) at the address CoreDNS gives for the Service's name.
    const answer = await requestThroughClusterDns(
      node.netns,
      'http://kubernetes.default.svc.cluster.local:443/',
    ).catch((err: Error) => err);
    // Plain HTTP to the TLS port: the connection reaches the API server, which answers 400.
    expect(answer).toMatchObject({ addresses: [NODE_NETWORK.kubernetesServiceIp], status: 400 });
    await expect(requestThroughClusterDns(node.netns, 'http://example.com/')).rejects.toThrow(
      /ESERVFAIL|EREFUSED|ENOTFOUND/,
    );
  }, 60_000);

  it('makes a Knative Service Ready through Kourier, and its URL answers through Envoy', async () => {
    await kubeRequest(target, 'POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: namespace },
    });
    await kubeRequest(target, 'POST', `/apis/serving.knative.dev/v1/namespaces/${namespace}/services`, {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name: 'hello' },
      spec: {
        template: {
          spec: {
            containers: [
              { image: images.helloworld.ref, env: [{ name: 'ENV_MESSAGE', value: 'via kourier' }] },
            ],
          },
        },
      },
    });
    const ksvc = await readyKsvc('hello');
    expect(ksvc.status?.url).toBe(`http://hello.${namespace}.svc.cluster.local`);
    // Kourier, not anything else, made the Route's Ingress Ready.
    const ingress = await get<KnativeObject>(
      `/apis/networking.internal.knative.dev/v1alpha1/namespaces/${namespace}/ingresses/hello`,
    );
    expect(ingress?.metadata.annotations?.['networking.knative.dev/ingress.class']).toBe(
      KOURIER_INGRESS_CLASS,
    );
    expect(ready(ingress?.status?.conditions)).toBe(true);

    const res = await eventually('the ksvc URL', () =>
      requestThroughClusterDns(node.netns, `${ksvc.status?.url}/message`),
    );
    expect(res).toMatchObject({
      cname: `kourier-internal.${KOURIER_GATEWAY_NAMESPACE}.svc.cluster.local`,
      status: 200,
      body: 'via kourier',
    });
    expect(res.headers.server).toBe('envoy');
  }, 300_000);

  it('reconciles the sources of knative/ into Ready adapter pods, and an edit restarts helloworld through them', async () => {
    const manifests = localManifests(images, { dir: TEST_CLUSTER_DIR, namespace });
    await applyKustomization(adminKubeconfigPath(), manifests.function);
    const fn = await readyKsvc('config-restarter');

    const sourcePath = `/apis/sources.knative.dev/v1/namespaces/${namespace}/apiserversources/config-restarter-source`;
    const source = await eventually(
      'ApiServerSource Ready',
      async () => {
        const s = await get<KnativeObject>(sourcePath);
        return ready(s?.status?.conditions) ? s : undefined;
      },
      180_000,
    );
    // The sink URI the Eventing controller resolved from the function's Knative Service.
    expect(source.status?.sinkUri).toBe(fn.status?.url);

    // The adapter runs as the pod of a Deployment the Eventing controller made, with the source's ServiceAccount.
    const { body: deployments } = await kubeRequest<{
      items: {
        metadata: { name: string; ownerReferences?: { kind: string; uid: string }[] };
        spec: { selector: { matchLabels: Record<string, string> } };
      }[];
    }>(target, 'GET', `/apis/apps/v1/namespaces/${namespace}/deployments`);
    const adapter = deployments.items.find((d) =>
      d.metadata.ownerReferences?.some((o) => o.kind === 'ApiServerSource' && o.uid === source.metadata.uid),
    );
    expect(adapter).toBeDefined();
    const selector = Object.entries(adapter?.spec.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const { body: pods } = await kubeRequest<{ items: Pod[] }>(
      target,
      'GET',
      `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`,
    );
    const adapterPod = pods.items.find((p) => ready(p.status.conditions));
    expect(adapterPod?.spec.serviceAccountName).toBe('config-restarter-source');
    expect(adapterPod?.spec.containers[0]?.image).toBe(images['apiserver-adapter'].ref);
    expect(ready(adapterPod?.status.conditions)).toBe(true);

    // The PingSource of knative/ too: its sink URI, and the adapter Deployment the Eventing controller scaled up.
    const ping = await eventually(
      'PingSource Ready',
      async () => {
        const p = await get<KnativeObject>(
          `/apis/sources.knative.dev/v1/namespaces/${namespace}/pingsources/config-restarter-resync`,
        );
        return ready(p?.status?.conditions) ? p : undefined;
      },
      180_000,
    );
    expect(ping.status?.sinkUri).toBe(fn.status?.url);
    const { body: mtping } = await kubeRequest<{
      spec: { replicas: number; template: { spec: { containers: { image: string }[] } } };
      status: { availableReplicas?: number };
    }>(target, 'GET', '/apis/apps/v1/namespaces/knative-eventing/deployments/pingsource-mt-adapter');
    expect(mtping.spec.template.spec.containers[0]?.image).toBe(images.mtping.ref);
    expect(mtping.status.availableReplicas).toBe(1);

    // helloworld's test and prod environments next to it, in one namespace; their ConfigMaps carry the watch label.
    await applyKustomization(adminKubeconfigPath(), manifests.helloworld);
    const prodManifests = localManifests(images, {
      dir: path.join(TEST_CLUSTER_DIR, 'knpath-prod'),
      namespace,
      environment: 'prod',
    });
    await applyKustomization(adminKubeconfigPath(), prodManifests.helloworld);
    const hello = await readyKsvc('helloworld-test');
    const first = hello.status?.latestReadyRevisionName;
    expect(first).toBe('helloworld-test-00001');
    const prod = await readyKsvc('helloworld-prod');
    const prodAnswer = async (): Promise<string> =>
      (await requestThroughClusterDns(node.netns, `${prod.status?.url}/message`, 30_000)).body;
    const prodBefore = await eventually('prod through Kourier', prodAnswer, 90_000);
    await kubeRequest(
      target,
      'PATCH',
      `/api/v1/namespaces/${namespace}/configmaps/helloworld-config-test`,
      { data: { MESSAGE: 'edited through the Knative path' } },
      { contentType: 'application/merge-patch+json' },
    );
    // adapter pod -> Kourier -> the function -> a new Revision of helloworld, serving the new message.
    await eventually(
      'helloworld-test-00002 Ready',
      async () => {
        const k = await get<KnativeObject>(ksvcPath('helloworld-test'));
        return k?.status?.latestReadyRevisionName === 'helloworld-test-00002' && ready(k.status.conditions)
          ? k
          : undefined;
      },
      180_000,
    );
    const page = await eventually(
      'the new message through Kourier',
      async () => {
        const res = await requestThroughClusterDns(node.netns, `${hello.status?.url}/`);
        return res.body.includes('edited through the Knative path') ? res : undefined;
      },
      60_000,
    );
    expect(page.status).toBe(200);
    // Knative moved all traffic to the new Revision and scaled the old one down to no pod.
    const moved = await get<KnativeObject>(ksvcPath('helloworld-test'));
    expect(moved?.status?.traffic).toEqual([
      { revisionName: 'helloworld-test-00002', percent: 100, latestRevision: true },
    ]);
    await eventually(
      'no pod of helloworld-test-00001',
      async () => ((await revisionPods('helloworld-test-00001')).length === 0 ? true : undefined),
      180_000,
    );
    // prod, tied to its own ConfigMap, kept its Revision and its answer.
    const prodAfter = await get<KnativeObject>(ksvcPath('helloworld-prod'));
    expect(prodAfter?.status?.latestReadyRevisionName).toBe('helloworld-prod-00001');
    expect(await prodAnswer()).toBe(prodBefore);
  }, 600_000);

  it('wakes the function from zero for an edit, which restarts helloworld exactly once', async () => {
    // Shorter windows for this cluster only (cluster/autoscaler-config.ts): at zero in about 12 s, not 60-90 s.
    autoscalerBefore = await setAutoscalerConfig(target);
    const functionPods = async (): Promise<Pod[]> =>
      (
        await kubeRequest<{ items: Pod[] }>(
          target,
          'GET',
          `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent('serving.knative.dev/service=config-restarter')}`,
        )
      ).body.items;
    const fn = await readyKsvc('config-restarter');
    const revision = fn.status?.latestReadyRevisionName ?? '';
    // Scaled to zero: no function pod at all, and the Revision's ServerlessService routes through the activator.
    await eventually(
      'no config-restarter pod',
      async () => ((await functionPods()).length === 0 ? true : undefined),
      240_000,
    );
    const sks = await get<{ spec: { mode: string } }>(
      `/apis/networking.internal.knative.dev/v1alpha1/namespaces/${namespace}/serverlessservices/${revision}`,
    );
    expect(sks?.spec.mode).toBe('Proxy');

    const revisions = async (): Promise<string[]> =>
      (
        await kubeRequest<{ items: { metadata: { name: string } }[] }>(
          target,
          'GET',
          `/apis/serving.knative.dev/v1/namespaces/${namespace}/revisions?labelSelector=${encodeURIComponent('serving.knative.dev/service=helloworld-test')}`,
        )
      ).body.items
        .map((r) => r.metadata.name)
        .sort();
    const before = await revisions();
    const latest =
      (await get<KnativeObject>(ksvcPath('helloworld-test')))?.status?.latestReadyRevisionName ?? '';
    const next = `helloworld-test-${String(Number(latest.slice(-5)) + 1).padStart(5, '0')}`;
    const editedAt = Date.now();
    await kubeRequest(
      target,
      'PATCH',
      `/api/v1/namespaces/${namespace}/configmaps/helloworld-config-test`,
      { data: { MESSAGE: 'edited while the function slept' } },
      { contentType: 'application/merge-patch+json' },
    );
    // The adapter pod's event reached the activator, which had a function pod created for it.
    const woken = await eventually(
      'a function pod created after the edit',
      async () => {
        const pods = await functionPods();
        return pods.length > 0 ? pods : undefined;
      },
      120_000,
    );
    expect(woken.length).toBe(1);
    const created = Date.parse(woken[0]?.metadata.creationTimestamp ?? '');
    expect(created).toBeGreaterThanOrEqual(Math.floor(editedAt / 1000) * 1000);
    // A pod of the same Revision (its Deployment's ReplicaSet): woken, not redeployed.
    expect(woken[0]?.metadata.ownerReferences?.[0]?.name).toMatch(new RegExp(`^${revision}-deployment-`));

    const restarted = await eventually(
      `${next} Ready`,
      async () => {
        const k = await get<KnativeObject>(ksvcPath('helloworld-test'));
        return k?.status?.latestReadyRevisionName === next && ready(k.status.conditions) ? k : undefined;
      },
      240_000,
    );
    const page = await eventually(
      'the new message through Kourier',
      async () => {
        const res = await requestThroughClusterDns(node.netns, `${restarted.status?.url}/`);
        return res.body.includes('edited while the function slept') ? res : undefined;
      },
      60_000,
    );
    expect(page.status).toBe(200);
    // Delivered once: one restart, one new Revision, and still one after the path has had time to settle.
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    expect(await revisions()).toEqual([...before, next].sort());

    // Every URL `kubectl get ksvc` shows answers through Kourier (a request wakes a Service that went back to zero).
    const { body: services } = await kubeRequest<{ items: KnativeObject[] }>(
      target,
      'GET',
      `/apis/serving.knative.dev/v1/namespaces/${namespace}/services`,
    );
    expect(services.items.length).toBeGreaterThanOrEqual(3);
    for (const service of services.items) {
      const url = service.status?.url ?? '';
      expect(url).toBe(`http://${service.metadata.name}.${namespace}.svc.cluster.local`);
      const path = service.metadata.name === 'config-restarter' ? '/health/readiness' : '/';
      const answer = await eventually(
        `${url}${path}`,
        async () => {
          const res = await requestThroughClusterDns(node.netns, `${url}${path}`, 30_000);
          return res.status === 200 ? res : undefined;
        },
        90_000,
      );
      expect(answer.headers.server).toBe('envoy');
    }
  }, 600_000);
});
