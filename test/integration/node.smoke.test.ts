import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { buildImages, importImages, type BuiltImage } from '../../cluster/images.js';
import { kubeRequest } from '../../cluster/kube.js';
import { NODE_NETWORK, fetchInNode } from '../../cluster/node-network.js';
import { deleteNamespace, eventually } from '../../cluster/objects.js';
import { adminKubeconfigPath, adminTarget, testNode, uniqueName } from './cluster-env.js';

const target = adminTarget();
const node = testNode();
const namespace = uniqueName('node');
let helloworld: BuiltImage;

interface Condition {
  type: string;
  status: string;
}
interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec: { containers: { name: string; image: string }[] };
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

/** The helloworld pods of a Deployment, once exactly `replicas` of them run Ready with `message` and none other is left. */
async function settledPods(selector: string, replicas: number): Promise<Pod[] | undefined> {
  const all = await pods(selector);
  const running = all.filter((p) => p.status.phase === 'Running' && ready(p.status.conditions));
  return all.length === replicas && running.length === replicas ? running : undefined;
}

function deployment(name: string, message: string): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: [
            {
              name: 'helloworld',
              image: helloworld.ref,
              env: [{ name: 'ENV_MESSAGE', value: message }],
              readinessProbe: { httpGet: { path: '/health/readiness', port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
}

beforeAll(async () => {
  const images = await buildImages(['helloworld'], { log: () => undefined });
  helloworld = images.helloworld;
  await importImages(images, { containerdAddress: node.containerdAddress, log: () => undefined });
  await kubeRequest(target, 'POST', '/api/v1/namespaces', { metadata: { name: namespace } });
  // Pods need the namespace's default ServiceAccount (made by kube-controller-manager).
  await eventually('default ServiceAccount', async () =>
    (await kubeRequest(target, 'GET', `/api/v1/namespaces/${namespace}/serviceaccounts`, undefined, {
      allowStatus: [404],
    }).then((r) => (r.body as { items?: unknown[] }).items?.length))
      ? true
      : undefined,
  );
}, 300_000);

afterAll(async () => {
  await deleteNamespace(target, namespace);
});

describe('the node', () => {
  it('registers Ready with the node IP as its InternalIP', async () => {
    const { body } = await kubeRequest<{
      status: { conditions: Condition[]; addresses: { type: string; address: string }[] };
    }>(target, 'GET', '/api/v1/nodes/local-node');
    expect(ready(body.status.conditions)).toBe(true);
    expect(body.status.addresses).toContainEqual({ type: 'InternalIP', address: NODE_NETWORK.nodeIp });
  });

  it('refuses a pod whose image is not a local one, saying why', async () => {
    const refused = await kubeRequest(
      target,
      'POST',
      `/api/v1/namespaces/${namespace}/pods`,
      {
        metadata: { name: 'remote' },
        spec: { containers: [{ name: 'app', image: 'registry.example/app:1' }] },
      },
      { allowStatus: [422] },
    );
    expect(refused.status).toBe(422);
    expect(JSON.stringify(refused.body)).toContain(
      'the local node runs only images imported into its containerd (localhost/...), not: registry.example/app:1',
    );
  });

  it('rolls a Deployment: the old pods go, new pods run Ready and serve the new message', async () => {
    const name = 'hello';
    const apps = `/apis/apps/v1/namespaces/${namespace}/deployments`;
    await kubeRequest(target, 'POST', apps, deployment(name, 'first'));
    const before = await eventually('two Ready pods', () => settledPods(`app=${name}`, 2), 90_000);
    for (const pod of before) {
      const res = await fetchInNode(node.netns, `http://${pod.status.podIP}:8080/message`);
      expect(res).toMatchObject({ status: 200, body: 'first' });
    }

    // A strategic merge patch: the container list is merged by name.
    await kubeRequest(
      target,
      'PATCH',
      `${apps}/${name}`,
      {
        spec: {
          template: {
            spec: { containers: [{ name: 'helloworld', env: [{ name: 'ENV_MESSAGE', value: 'second' }] }] },
          },
        },
      },
      { contentType: 'application/strategic-merge-patch+json' },
    );
    const after = await eventually(
      'the rollout',
      async () => {
        const settled = await settledPods(`app=${name}`, 2);
        return settled?.every((p) => !before.some((b) => b.metadata.uid === p.metadata.uid))
          ? settled
          : undefined;
      },
      120_000,
    );
    // The Deployment's status follows its pods within a sync or two.
    const status = await eventually('the Deployment status', async () => {
      const { body } = await kubeRequest<{
        status: {
          replicas?: number;
          updatedReplicas?: number;
          availableReplicas?: number;
          conditions?: { reason?: string }[];
        };
      }>(target, 'GET', `${apps}/${name}`);
      return body.status.replicas === 2 ? body.status : undefined;
    });
    expect(status).toMatchObject({ updatedReplicas: 2, availableReplicas: 2 });
    expect(status.conditions?.map((c) => c.reason)).toContain('NewReplicaSetAvailable');
    // The old ReplicaSet is scaled to zero.
    const { body: sets } = await kubeRequest<{
      items: { spec: { replicas?: number }; status: { replicas?: number } }[];
    }>(target, 'GET', `/apis/apps/v1/namespaces/${namespace}/replicasets?labelSelector=app%3D${name}`);
    expect(sets.items.map((rs) => rs.spec.replicas).sort()).toEqual([0, 2]);
    for (const pod of after) {
      const res = await fetchInNode(node.netns, `http://${pod.status.podIP}:8080/message`);
      expect(res).toMatchObject({ status: 200, body: 'second' });
    }
  }, 300_000);

  it('makes a Knative Revision Ready with the real queue-proxy and autoscaler, and serves through it', async () => {
    const services = `/apis/serving.knative.dev/v1/namespaces/${namespace}/services`;
    await kubeRequest(target, 'POST', services, {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name: 'kn' },
      spec: {
        template: {
          spec: {
            containers: [{ image: helloworld.ref, env: [{ name: 'ENV_MESSAGE', value: 'from knative' }] }],
          },
        },
      },
    });
    const revision = await eventually(
      'Revision kn-00001 Ready',
      async () => {
        const { body } = await kubeRequest<{ status?: { conditions?: Condition[] } }>(
          target,
          'GET',
          `/apis/serving.knative.dev/v1/namespaces/${namespace}/revisions/kn-00001`,
          undefined,
          { allowStatus: [404] },
        );
        // Active once its Services answer (the activator or the pods in the request path).
        const active = body.status?.conditions?.some((c) => c.type === 'Active' && c.status === 'True');
        return ready(body.status?.conditions) && active ? body : undefined;
      },
      180_000,
    );
    expect(revision.status?.conditions).toContainEqual(
      expect.objectContaining({ type: 'ContainerHealthy', status: 'True' }),
    );
    // The autoscaler made the PodAutoscaler Ready (there is no other autoscaler).
    const { body: pa } = await kubeRequest<{ status?: { conditions?: Condition[] } }>(
      target,
      'GET',
      `/apis/autoscaling.internal.knative.dev/v1alpha1/namespaces/${namespace}/podautoscalers/kn-00001`,
    );
    expect(ready(pa.status?.conditions)).toBe(true);

    const [pod] = await pods('serving.knative.dev/revision=kn-00001');
    const { body: deployment } = await kubeRequest<{ data: Record<string, string> }>(
      target,
      'GET',
      '/api/v1/namespaces/knative-serving/configmaps/config-deployment',
    );
    expect(pod?.spec.containers.find((c) => c.name === 'queue-proxy')?.image).toBe(
      deployment.data['queue-sidecar-image'],
    );
    // Through the Revision's private Service: kube-proxy -> queue-proxy -> the app.
    const { body: svc } = await kubeRequest<{ spec: { clusterIP: string } }>(
      target,
      'GET',
      `/api/v1/namespaces/${namespace}/services/kn-00001-private`,
    );
    // kube-proxy programs a Service's rules within a second or so of its endpoints.
    const direct = await eventually('the private Service', () =>
      fetchInNode(node.netns, `http://${svc.spec.clusterIP}/message`),
    );
    expect(direct).toMatchObject({ status: 200, body: 'from knative' });
    // Through the public Service, which the activator serves while it is in the request path.
    const { body: pub } = await kubeRequest<{ spec: { clusterIP: string } }>(
      target,
      'GET',
      `/api/v1/namespaces/${namespace}/services/kn-00001`,
    );
    const viaPublic = await eventually('the public Service', () =>
      fetchInNode(node.netns, `http://${pub.spec.clusterIP}/message`, {
        headers: { 'Knative-Serving-Namespace': namespace, 'Knative-Serving-Revision': 'kn-00001' },
      }),
    );
    expect(viaPublic).toMatchObject({ status: 200, body: 'from knative' });
  }, 300_000);

  it('lets a pod reach the API server through the kubernetes Service with its ServiceAccount token', async () => {
    const script = [
      "const fs = require('fs');",
      "const dir = '/var/run/secrets/kubernetes.io/serviceaccount';",
      "const token = fs.readFileSync(dir + '/token', 'utf8');",
      'const url = `https://${process.env.KUBERNETES_SERVICE_HOST}:${process.env.KUBERNETES_SERVICE_PORT}`;',
      "fetch(url + '/apis/authentication.k8s.io/v1/selfsubjectreviews', {",
      "  method: 'POST', headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },",
      "  body: JSON.stringify({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' }),",
      '}).then(async (r) => console.log(r.status, JSON.stringify((await r.json()).status.userInfo.username)),',
      '  (e) => { console.log(String(e.cause || e)); process.exit(1); });',
    ].join('\n');
    await kubeRequest(target, 'POST', `/api/v1/namespaces/${namespace}/pods`, {
      metadata: { name: 'whoami' },
      spec: {
        restartPolicy: 'Never',
        containers: [
          {
            name: 'whoami',
            image: helloworld.ref,
            command: ['node', '-e', script],
            // The API server's certificate, as every pod gets it (kube-root-ca.crt).
            env: [
              { name: 'NODE_EXTRA_CA_CERTS', value: '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt' },
            ],
          },
        ],
      },
    });
    await eventually(
      'pod whoami Succeeded',
      async () =>
        (await pods('')).find((p) => p.metadata.name === 'whoami')?.status.phase === 'Succeeded'
          ? true
          : undefined,
      90_000,
    );
    // The log comes from the kubelet, through the API server's egress into the node namespace.
    const { body: log } = await kubeRequest<string>(
      target,
      'GET',
      `/api/v1/namespaces/${namespace}/pods/whoami/log`,
    );
    expect(String(log).trim()).toBe(`201 "system:serviceaccount:${namespace}:default"`);
  }, 120_000);

  it('runs kubectl exec in a pod through the API server and the kubelet', async () => {
    const [pod] = await pods('app=hello');
    expect(pod).toBeDefined();
    const { stdout } = await promisify(execFile)('kubectl', [
      '--kubeconfig',
      adminKubeconfigPath(),
      '-n',
      namespace,
      'exec',
      pod?.metadata.name ?? '',
      '--',
      'node',
      '-e',
      'console.log(process.env.ENV_MESSAGE)',
    ]);
    expect(stdout.trim()).toBe('second');
  }, 60_000);
});
