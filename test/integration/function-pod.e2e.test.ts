/**
 * The function as it is deployed: config-restarter runs from its image in a pod of the node, as `localManifests`
 * describes it (knative/: ServiceAccount `config-restarter` and its Role; the function's Knative Service as
 * `func deploy` makes it from func.yaml: probes, `run.envs`), with min-scale 1 so one pod stays up. It reads its
 * mounted ServiceAccount token and finds the API server through `KUBERNETES_SERVICE_HOST` (no kubeconfig exists in
 * the pod). Events reach it through the Revision's Service, sent from inside the node's network namespace with the
 * headers an ingress adds. A ConfigMap edit rolls a helloworld Deployment whose new pods serve the new text; after the
 * token file is replaced the way the kubelet rotates it, the function keeps restarting.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { apiServerSourceRequest, type EventObject } from '../../cluster/apiserver-event.js';
import {
  helloworldDeployment,
  renderHelloworld,
  type RenderedObject,
} from '../../cluster/helloworld-deployment.js';
import { buildImages, importImages } from '../../cluster/images.js';
import { kubeRequest } from '../../cluster/kube.js';
import { localManifests } from '../../cluster/local-manifests.js';
import { nodePaths } from '../../cluster/node-config.js';
import { fetchInNode, mustRun } from '../../cluster/node-network.js';
import { applyKustomization, deleteNamespace, eventually } from '../../cluster/objects.js';
import { sleep } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, testNode, uniqueName } from './cluster-env.js';

const target = adminTarget();
const node = testNode();
const namespace = uniqueName('fnpod');
const revision = 'config-restarter-00001';
/** The function re-reads its token file at most once a minute (kube-credentials.ts). */
const TOKEN_FILE_TTL_MS = 60_000;

interface Condition {
  type: string;
  status: string;
}
interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: {
    serviceAccountName?: string;
    containers: { name: string; image: string; env?: { name: string }[] }[];
  };
  status: { phase?: string; podIP?: string; conditions?: Condition[] };
}
const ready = (conditions: Condition[] | undefined): boolean =>
  conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function pods(selector: string): Promise<Pod[]> {
  const { body } = await kubeRequest<{ items: Pod[] }>(
    target,
    'GET',
    `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`,
  );
  return body.items;
}

/** Exactly `replicas` pods, all Running and Ready, none of them in `old`: a finished rollout. */
async function replacedPods(selector: string, replicas: number, old: Pod[]): Promise<Pod[] | undefined> {
  const all = await pods(selector);
  const fresh = all.filter(
    (p) =>
      p.status.phase === 'Running' &&
      ready(p.status.conditions) &&
      !old.some((o) => o.metadata.uid === p.metadata.uid),
  );
  return all.length === replicas && fresh.length === replicas ? fresh : undefined;
}

let configMap: RenderedObject;
let deploymentPods: Pod[] = [];

/** Edits the ConfigMap's MESSAGE. */
async function editMessage(message: string): Promise<EventObject> {
  const { body } = await kubeRequest<EventObject>(
    target,
    'PATCH',
    `/api/v1/namespaces/${namespace}/configmaps/${configMap.metadata.name}`,
    { data: { MESSAGE: message } },
    { contentType: 'application/merge-patch+json' },
  );
  return body;
}

/** The ApiServerSource event of a ConfigMap update, through the Revision's public Service (as an ingress sends it). */
async function sendUpdate(object: EventObject): Promise<{ status: number; body: string }> {
  const { body: svc } = await kubeRequest<{ spec: { clusterIP: string } }>(
    target,
    'GET',
    `/api/v1/namespaces/${namespace}/services/${revision}`,
  );
  const request = apiServerSourceRequest({
    action: 'update',
    mode: 'Reference',
    object,
    adapterNamespace: namespace,
  });
  return fetchInNode(node.netns, `http://${svc.spec.clusterIP}/`, {
    method: 'POST',
    headers: {
      ...request.headers,
      'Knative-Serving-Namespace': namespace,
      'Knative-Serving-Revision': revision,
    },
    body: request.body,
    timeoutMs: 30_000,
  });
}

/** After an edit to `message`: the event is answered 200, and new helloworld pods replace the old ones and serve it. */
async function expectRollout(message: string): Promise<void> {
  const old = deploymentPods;
  const reply = await sendUpdate(await editMessage(message));
  expect(reply.status).toBe(200);
  expect(JSON.parse(reply.body)).toMatchObject({ result: 'processed', restarted: 1 });
  deploymentPods = await eventually(
    'the new helloworld pods',
    () => replacedPods('component=helloworld', 2, old),
    120_000,
  );
  for (const pod of deploymentPods) {
    for (const route of ['/message', '/messageFromFile']) {
      const res = await fetchInNode(node.netns, `http://${pod.status.podIP}:8080${route}`);
      expect({ route, status: res.status, body: res.body }).toEqual({ route, status: 200, body: message });
    }
  }
}

beforeAll(async () => {
  const images = await buildImages(['helloworld', 'config-restarter'], { log: () => undefined });
  await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? '.cluster/test', namespace);
  const manifests = localManifests(images, { dir, namespace });
  // One pod stays up (func.yaml says min 0: the first event would otherwise wait for a cold start).
  const minScaleOne = path.join(dir, 'function-min-scale-1');
  mkdirSync(minScaleOne, { recursive: true });
  writeFileSync(
    path.join(minScaleOne, 'kustomization.yaml'),
    yaml.dump({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [path.relative(minScaleOne, manifests.function)],
      patches: [
        {
          target: { group: 'serving.knative.dev', kind: 'Service', name: 'config-restarter' },
          patch: yaml.dump([
            {
              op: 'replace',
              path: '/spec/template/metadata/annotations/autoscaling.knative.dev~1min-scale',
              value: '1',
            },
          ]),
        },
      ],
    }),
  );
  await applyKustomization(adminKubeconfigPath(), minScaleOne);

  const helloworld = await renderHelloworld(manifests.helloworld);
  configMap = helloworld.configMap;
  await kubeRequest(target, 'POST', `/api/v1/namespaces/${namespace}/configmaps`, configMap);
  await kubeRequest(
    target,
    'POST',
    `/apis/apps/v1/namespaces/${namespace}/deployments`,
    helloworldDeployment(helloworld.service, { name: 'helloworld', replicas: 2 }),
  );
  deploymentPods = await eventually(
    'two helloworld pods',
    () => replacedPods('component=helloworld', 2, []),
    120_000,
  );
  await eventually(
    `Revision ${revision} Ready`,
    async () => {
      const { body } = await kubeRequest<{ status?: { conditions?: Condition[] } }>(
        target,
        'GET',
        `/apis/serving.knative.dev/v1/namespaces/${namespace}/revisions/${revision}`,
        undefined,
        { allowStatus: [404] },
      );
      return ready(body.status?.conditions) ? true : undefined;
    },
    180_000,
  );
}, 420_000);

afterAll(async () => {
  await deleteNamespace(target, namespace);
});

describe('config-restarter in a pod', () => {
  it('runs as its ServiceAccount with the in-cluster contract and no kubeconfig', async () => {
    const [pod] = await pods(`serving.knative.dev/revision=${revision}`);
    expect(pod?.status.phase).toBe('Running');
    expect(ready(pod?.status.conditions)).toBe(true);
    expect(pod?.spec.serviceAccountName).toBe('config-restarter');
    const fn = pod?.spec.containers.find((c) => c.name !== 'queue-proxy');
    expect(fn?.env?.map((e) => e.name)).toEqual(
      expect.arrayContaining(['LOG_LEVEL', 'MATCH_LABELS', 'ANNOTATION_PREFIX', 'DRY_RUN']),
    );
    expect(fn?.env?.map((e) => e.name)).not.toContain('KUBECONFIG');
  });

  it('rolls the helloworld Deployment on a ConfigMap edit; the new pods serve the new text', async () => {
    const before = await fetchInNode(node.netns, `http://${deploymentPods[0]?.status.podIP}:8080/message`);
    expect(before).toMatchObject({ status: 200, body: configMap.data?.MESSAGE });
    await expectRollout('Hello from the function in a pod');
    const { body } = await kubeRequest<{
      spec: { template: { metadata: { annotations?: Record<string, string> } } };
      status: { updatedReplicas?: number; availableReplicas?: number };
    }>(target, 'GET', `/apis/apps/v1/namespaces/${namespace}/deployments/helloworld`);
    expect(body.spec.template.metadata.annotations).toHaveProperty([
      'rolling.restart.controller/restartTimestamp',
    ]);
  }, 240_000);

  it('keeps restarting after its ServiceAccount token file is rotated', async () => {
    const [pod] = await pods(`serving.knative.dev/revision=${revision}`);
    if (!pod) throw new Error('no function pod');
    // A new token bound to the pod, as the kubelet requests it when it rotates the projected token.
    const { body: request } = await kubeRequest<{ status: { token: string } }>(
      target,
      'POST',
      `/api/v1/namespaces/${namespace}/serviceaccounts/config-restarter/token`,
      {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: {
          expirationSeconds: 3607,
          boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
        },
      },
    );
    // The kubelet's atomic writer: a new timestamped directory, then `..data` swapped to it by a rename. The
    // volume lives in the node's mount namespace.
    const root = path.dirname(node.containerdAddress);
    const volumes = path.join(
      nodePaths(root).kubeletRoot,
      'pods',
      pod.metadata.uid,
      'volumes',
      'kubernetes.io~projected',
    );
    const script = [
      'set -e',
      `cd "$(ls -d ${volumes}/kube-api-access-* | head -n1)"`,
      'next=..rotated_$(date +%s%N)',
      'mkdir "$next"',
      'cp ..data/ca.crt ..data/namespace "$next"/',
      'cat > "$next"/token',
      'chmod 0644 "$next"/*',
      'ln -s "$next" ..data_tmp',
      'mv -T ..data_tmp ..data',
      'cat token',
    ].join('\n');
    const written = await mustRun(
      'nsenter',
      [`--mount=${nodePaths(root).mountNamespace}`, '--', 'sh', '-c', script],
      request.status.token,
    );
    expect(written).toBe(request.status.token);
    // Past the function's token cache: its next requests read the new file.
    await sleep(TOKEN_FILE_TTL_MS + 2_000);
    await expectRollout('Hello after the token rotation');
  }, 300_000);
});
