/**
 * The Broker and authentication variants of `knative/` on the Knative path, applied as users apply them
 * (`kubectl apply -k` of the variant, through localManifests). The Broker variant: the Broker `config-events` (the
 * multi-tenant channel-based Broker over the in-memory channel: Eventing's ingress, filter and dispatcher pods) and
 * its Triggers become Ready, a ConfigMap edit reaches the function through the Broker and restarts helloworld, and the
 * function's reply (`config-restarter.decisions`) goes back into the Broker, where a Trigger routes it to a real
 * event_display. The authentication variant, with Eventing's `authentication-oidc` on: the Eventing controller gives
 * the adapter the audience and the OIDC identity, the adapter sends real tokens the function accepts, and a request
 * without one is refused with 401.
 */
import { clusterStatus } from '../../cluster/control-plane.js';
import { buildImages, importImages, type BuiltImage } from '../../cluster/images.js';
import { PATH_DEPLOYMENTS } from '../../cluster/knative-path-config.js';
import { requestThroughClusterDns, startKnativePath, stopKnativePath } from '../../cluster/knative-path.js';
import { kubeRequest } from '../../cluster/kube.js';
import { functionAudience, localManifests, type PlumbingComponent } from '../../cluster/local-manifests.js';
import type { NodeProcess } from '../../cluster/node.js';
import { applyKustomization, deleteNamespace, eventually } from '../../cluster/objects.js';
import { knativeOidcSubject } from '../../functions/config-restarter/src/auth.js';
import { adminKubeconfigPath, adminTarget, testNode, uniqueName } from './cluster-env.js';
import { TEST_CLUSTER_DIR } from './test-cluster.js';

const target = adminTarget();
const node = testNode();
const processes: NodeProcess[] = [];
const namespaces: string[] = [];
let nodeRoot: string | undefined;
let featuresBefore: Record<string, string> | undefined;
let images: Record<'helloworld' | 'config-restarter' | 'event-display', BuiltImage>;

interface Condition {
  type: string;
  status: string;
}
interface KnativeObject {
  metadata: { name: string; uid: string };
  spec?: Record<string, unknown>;
  status?: {
    conditions?: Condition[];
    url?: string;
    sinkUri?: string;
    subscriberUri?: string;
    deadLetterSinkUri?: string;
    latestReadyRevisionName?: string;
    address?: { url?: string; audience?: string };
    auth?: { serviceAccountName?: string };
  };
}
interface Pod {
  metadata: { name: string };
  status: { conditions?: Condition[] };
}

const ready = (conditions: Condition[] | undefined): boolean =>
  conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function get<T>(objectPath: string): Promise<T | undefined> {
  const { status, body } = await kubeRequest<T>(target, 'GET', objectPath, undefined, { allowStatus: [404] });
  return status === 404 ? undefined : body;
}

/** An object once its Ready condition is True. */
function readyObject(what: string, objectPath: string, timeoutMs = 180_000): Promise<KnativeObject> {
  return eventually(
    `${what} Ready`,
    async () => {
      const o = await get<KnativeObject>(objectPath);
      return ready(o?.status?.conditions) ? o : undefined;
    },
    timeoutMs,
  );
}

const ksvcPath = (ns: string, name: string): string =>
  `/apis/serving.knative.dev/v1/namespaces/${ns}/services/${name}`;
const triggerPath = (ns: string, name: string): string =>
  `/apis/eventing.knative.dev/v1/namespaces/${ns}/triggers/${name}`;
const sourcePath = (ns: string): string =>
  `/apis/sources.knative.dev/v1/namespaces/${ns}/apiserversources/config-restarter-source`;

/** Applies the plumbing and helloworld's test environment into a fresh namespace, as `kubectl apply -k` does. */
async function applyVariant(components: PlumbingComponent[], prefix: string): Promise<string> {
  const namespace = uniqueName(prefix);
  namespaces.push(namespace);
  const manifests = localManifests(images, {
    dir: `${TEST_CLUSTER_DIR}/${namespace}`,
    namespace,
    components,
  });
  await applyKustomization(adminKubeconfigPath(), manifests.function);
  await applyKustomization(adminKubeconfigPath(), manifests.helloworld);
  return namespace;
}

/** Edits helloworld's ConfigMap and waits for the restart: the next Revision Ready, serving the new message. */
async function editRestartsHelloworld(namespace: string, message: string): Promise<void> {
  const hello = await readyObject('helloworld-test', ksvcPath(namespace, 'helloworld-test'));
  const latest = hello.status?.latestReadyRevisionName ?? '';
  const next = `helloworld-test-${String(Number(latest.slice(-5)) + 1).padStart(5, '0')}`;
  await kubeRequest(
    target,
    'PATCH',
    `/api/v1/namespaces/${namespace}/configmaps/helloworld-config-test`,
    { data: { MESSAGE: message } },
    { contentType: 'application/merge-patch+json' },
  );
  await eventually(
    `${next} Ready`,
    async () => {
      const k = await get<KnativeObject>(ksvcPath(namespace, 'helloworld-test'));
      return k?.status?.latestReadyRevisionName === next && ready(k.status.conditions) ? k : undefined;
    },
    240_000,
  );
  const page = await eventually(
    'the new message through Kourier',
    async () => {
      const res = await requestThroughClusterDns(node.netns, `${hello.status?.url}/`);
      return res.body.includes(message) ? res : undefined;
    },
    60_000,
  );
  expect(page.status).toBe(200);
}

/** Sets (or restores) keys of knative-eventing/config-features; returns what they were. */
async function setFeatures(data: Record<string, string | null>): Promise<Record<string, string>> {
  const { body } = await kubeRequest<{ data?: Record<string, string> }>(
    target,
    'GET',
    '/api/v1/namespaces/knative-eventing/configmaps/config-features',
  );
  await kubeRequest(
    target,
    'PATCH',
    '/api/v1/namespaces/knative-eventing/configmaps/config-features',
    { data },
    { contentType: 'application/merge-patch+json' },
  );
  return body.data ?? {};
}

beforeAll(async () => {
  const status = await clusterStatus(TEST_CLUSTER_DIR);
  const info = status.info;
  if (!info?.node) throw new Error('the Knative path needs the test cluster to run a node');
  nodeRoot = info.node.root;
  await startKnativePath({
    dir: TEST_CLUSTER_DIR,
    node: info.node,
    kubeconfig: info.kubeconfig,
    target,
    detached: false,
    timeoutMs: 120_000,
    log: (line) => process.stderr.write(`[knative-variants] ${line}\n`),
    onSpawned: (p) => processes.push(p),
  });
  images = await buildImages(['helloworld', 'config-restarter', 'event-display'], { log: () => undefined });
  await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
}, 600_000);

afterAll(async () => {
  if (featuresBefore) {
    await setFeatures({ 'authentication-oidc': featuresBefore['authentication-oidc'] ?? null });
  }
  for (const namespace of namespaces) await deleteNamespace(target, namespace);
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
}, 180_000);

describe('the Broker variant (knative/broker)', () => {
  it('delivers an edit through a Ready Broker and Trigger, and routes the function reply to a real event_display', async () => {
    const namespace = await applyVariant(['broker'], 'kbroker');
    const broker = await readyObject(
      'Broker config-events',
      `/apis/eventing.knative.dev/v1/namespaces/${namespace}/brokers/config-events`,
    );
    // The multi-tenant broker's ingress, addressed per namespace and name.
    expect(broker.status?.address?.url).toBe(
      `http://broker-ingress.knative-eventing.svc.cluster.local/${namespace}/config-events`,
    );
    // ... over the in-memory channel the Broker controller created for it.
    const channel = await readyObject(
      'InMemoryChannel config-events-kne-trigger',
      `/apis/messaging.knative.dev/v1/namespaces/${namespace}/inmemorychannels/config-events-kne-trigger`,
    );
    expect(channel.status?.address?.url).toBe(
      `http://config-events-kne-trigger-kn-channel.${namespace}.svc.cluster.local`,
    );
    // Both sources deliver to the Broker.
    const source = await readyObject('ApiServerSource', sourcePath(namespace));
    expect(source.status?.sinkUri).toBe(broker.status?.address?.url);
    const ping = await readyObject(
      'PingSource',
      `/apis/sources.knative.dev/v1/namespaces/${namespace}/pingsources/config-restarter-resync`,
    );
    expect(ping.status?.sinkUri).toBe(broker.status?.address?.url);

    const fn = await readyObject('config-restarter', ksvcPath(namespace, 'config-restarter'));
    const deadLetter = await readyObject(
      'config-restarter-dead-letter',
      ksvcPath(namespace, 'config-restarter-dead-letter'),
    );
    const trigger = await readyObject('Trigger config-restarter', triggerPath(namespace, 'config-restarter'));
    expect(trigger.status?.subscriberUri).toBe(fn.status?.url);
    expect(trigger.status?.deadLetterSinkUri).toBe(deadLetter.status?.url);

    // Where the replies land: a Trigger on the reply type to event_display (one pod kept, to read what it got).
    await kubeRequest(target, 'POST', `/apis/serving.knative.dev/v1/namespaces/${namespace}/services`, {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name: 'decisions-display' },
      spec: {
        template: {
          metadata: { annotations: { 'autoscaling.knative.dev/min-scale': '1' } },
          spec: { containers: [{ image: `${images['event-display'].ref}` }] },
        },
      },
    });
    await kubeRequest(target, 'POST', `/apis/eventing.knative.dev/v1/namespaces/${namespace}/triggers`, {
      apiVersion: 'eventing.knative.dev/v1',
      kind: 'Trigger',
      metadata: { name: 'decisions' },
      spec: {
        broker: 'config-events',
        filters: [{ exact: { type: 'config-restarter.decisions' } }],
        subscriber: {
          ref: { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'decisions-display' },
        },
      },
    });
    const display = await readyObject('decisions-display', ksvcPath(namespace, 'decisions-display'));
    const decisions = await readyObject('Trigger decisions', triggerPath(namespace, 'decisions'));
    expect(decisions.status?.subscriberUri).toBe(display.status?.url);

    // adapter pod -> Broker ingress -> in-memory channel -> filter -> Kourier -> the function -> a new Revision.
    await editRestartsHelloworld(namespace, 'edited through the Broker');

    // The function's reply went back through the Broker to the decisions Trigger: event_display printed it.
    const subject = `/apis/v1/namespaces/${namespace}/configmaps/helloworld-config-test`;
    const printed = await eventually(
      'the decisions event in event_display',
      async () => {
        const { body: pods } = await kubeRequest<{ items: Pod[] }>(
          target,
          'GET',
          `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent('serving.knative.dev/service=decisions-display')}`,
        );
        for (const pod of pods.items) {
          const { body } = await kubeRequest<string>(
            target,
            'GET',
            `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}/log?container=user-container`,
          );
          const text = String(body);
          if (text.includes('type: config-restarter.decisions') && text.includes(subject)) return text;
        }
        return undefined;
      },
      120_000,
    );
    expect(printed).toContain('source: /config-restarter');
    expect(printed).toMatch(/"restarted": ?1/);
    // Replies carry the type no subscriber of config-restarter matches: none went back to the function.
    expect((trigger.spec as { filters: unknown[] }).filters).not.toContainEqual({
      exact: { type: 'config-restarter.decisions' },
    });
    await deleteNamespace(target, namespace);
    namespaces.splice(namespaces.indexOf(namespace), 1);
  }, 900_000);
});

describe('the authentication variant (knative/authentication) with authentication-oidc on', () => {
  it('sends tokens for the function audience from the adapter pod, which the function accepts; no token gets 401', async () => {
    featuresBefore = await setFeatures({ 'authentication-oidc': 'enabled' });
    const namespace = await applyVariant(['authentication'], 'kauth');
    const fn = await readyObject('config-restarter', ksvcPath(namespace, 'config-restarter'));
    const source = await eventually(
      'ApiServerSource Ready with its OIDC identity',
      async () => {
        const s = await get<KnativeObject>(sourcePath(namespace));
        return ready(s?.status?.conditions) && s?.status?.auth?.serviceAccountName ? s : undefined;
      },
      180_000,
    );
    // The identity Eventing made for the source is the one the function allows by default.
    const identity = source.status?.auth?.serviceAccountName ?? '';
    expect(`system:serviceaccount:${namespace}:${identity}`).toBe(
      knativeOidcSubject(namespace, 'sources.knative.dev', 'ApiServerSource', 'config-restarter-source'),
    );
    // The adapter Deployment the controller made asks for tokens of that identity, for the sink's audience.
    const { body: deployments } = await kubeRequest<{
      items: {
        metadata: { ownerReferences?: { uid: string }[] };
        spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } };
      }[];
    }>(target, 'GET', `/apis/apps/v1/namespaces/${namespace}/deployments`);
    const adapter = deployments.items.find((d) =>
      d.metadata.ownerReferences?.some((o) => o.uid === source.metadata.uid),
    );
    const env = Object.fromEntries(
      (adapter?.spec.template.spec.containers[0]?.env ?? []).map((e) => [e.name, e.value]),
    );
    expect(env).toMatchObject({ K_AUDIENCE: functionAudience(), K_OIDC_SERVICE_ACCOUNT: identity });

    // The adapter pod's token is accepted: the edit restarts helloworld.
    await editRestartsHelloworld(namespace, 'edited by an authenticated sender');

    // The same request without a token is refused before anything is read.
    const refused = await requestThroughClusterDns(node.netns, `${fn.status?.url}/`, 30_000, {
      method: 'POST',
      headers: {
        'ce-specversion': '1.0',
        'ce-type': 'dev.knative.apiserver.ref.update',
        'ce-source': 'https://kubernetes.default.svc',
        'ce-id': 'no-token',
        'ce-subject': `/apis/v1/namespaces/${namespace}/configmaps/helloworld-config-test`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        kind: 'ConfigMap',
        namespace,
        name: 'helloworld-config-test',
        apiVersion: 'v1',
      }),
    });
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toBe('Bearer');
  }, 900_000);

  it('through the Broker: every hop sends a token for the audience Eventing assigned, the Trigger one for the function', async () => {
    const namespace = await applyVariant(['broker', 'authentication'], 'kbrauth');
    const broker = await readyObject(
      'Broker config-events',
      `/apis/eventing.knative.dev/v1/namespaces/${namespace}/brokers/config-events`,
    );
    // The audience Eventing gives the Broker: the source's adapter asks tokens for it.
    expect(broker.status?.address?.audience).toBe(`eventing.knative.dev/broker/${namespace}/config-events`);
    const source = await eventually(
      'ApiServerSource Ready with its OIDC identity',
      async () => {
        const s = await get<KnativeObject & { status?: { sinkAudience?: string } }>(sourcePath(namespace));
        return ready(s?.status?.conditions) && s?.status?.auth?.serviceAccountName ? s : undefined;
      },
      180_000,
    );
    expect((source.status as { sinkAudience?: string }).sinkAudience).toBe(broker.status?.address?.audience);
    await readyObject('config-restarter', ksvcPath(namespace, 'config-restarter'));
    await readyObject('config-restarter-dead-letter', ksvcPath(namespace, 'config-restarter-dead-letter'));
    const trigger = await eventually(
      'Trigger config-restarter Ready with its OIDC identity',
      async () => {
        const t = await get<KnativeObject>(triggerPath(namespace, 'config-restarter'));
        return ready(t?.status?.conditions) && t?.status?.auth?.serviceAccountName ? t : undefined;
      },
      180_000,
    );
    // The filter delivers as the Trigger's identity, one the function allows by default.
    expect(`system:serviceaccount:${namespace}:${trigger.status?.auth?.serviceAccountName}`).toBe(
      knativeOidcSubject(namespace, 'eventing.knative.dev', 'Trigger', 'config-restarter'),
    );

    // adapter (token for the Broker) -> ingress (for the channel) -> dispatcher (for the filter) -> filter (for the
    // function): every receiver verifies, and the edit restarts helloworld.
    await editRestartsHelloworld(namespace, 'edited through the Broker with tokens');

    // The Broker itself refuses an event without a token.
    const refused = await requestThroughClusterDns(node.netns, broker.status?.address?.url ?? '', 30_000, {
      method: 'POST',
      headers: {
        'ce-specversion': '1.0',
        'ce-type': 'dev.knative.apiserver.ref.update',
        'ce-source': 'https://kubernetes.default.svc',
        'ce-id': 'no-token',
        'content-type': 'application/json',
      },
      body: '{}',
    });
    expect(refused.status).toBe(401);
  }, 900_000);
});
