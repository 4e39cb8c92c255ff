import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { loadCrds } from '../../cluster/crds.js';
import { KubeRequestError, createServiceAccountToken, kubeRequest, whoAmI } from '../../cluster/kube.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';

const kc = new KubeConfig();
kc.loadFromFile(adminKubeconfigPath());
const core = kc.makeApiClient(CoreV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);
const namespace = uniqueName('smoke');

beforeAll(async () => {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
});

describe('local control plane', () => {
  it('serves every project CRD as Established', async () => {
    const crds = await kc.makeApiClient(ApiextensionsV1Api).listCustomResourceDefinition();
    const established = crds.items
      .filter((crd) => crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'))
      .map((crd) => crd.metadata?.name);
    expect(established).toEqual(expect.arrayContaining(loadCrds().map((crd) => crd.metadata.name)));
    expect(loadCrds()).toHaveLength(33);
  });

  it('round-trips a ConfigMap as admin', async () => {
    await core.createNamespacedConfigMap({
      namespace,
      body: { metadata: { name: 'app-config', labels: { app: 'helloworld' } }, data: { greeting: 'hello' } },
    });
    const read = await core.readNamespacedConfigMap({ namespace, name: 'app-config' });
    expect(read.data).toEqual({ greeting: 'hello' });
    expect(read.metadata?.resourceVersion).toBeTruthy();
  });

  it('merge-patches Knative Service template annotations as typed string maps', async () => {
    const ksvc = { group: 'serving.knative.dev', version: 'v1', namespace, plural: 'services' };
    await custom.createNamespacedCustomObject({
      ...ksvc,
      body: {
        apiVersion: 'serving.knative.dev/v1',
        kind: 'Service',
        metadata: { name: 'helloworld' },
        spec: {
          template: { metadata: { annotations: { a: '1' } }, spec: { containers: [{ image: 'hello' }] } },
        },
      },
    });
    const patch = {
      spec: { template: { metadata: { annotations: { restartedAt: '2024-01-01T00:00:00Z' } } } },
    };
    const patched = (await custom.patchNamespacedCustomObject(
      { ...ksvc, name: 'helloworld', body: patch },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    )) as { spec: { template: { metadata: { annotations: Record<string, string> }; spec: unknown } } };
    expect(patched.spec.template.metadata.annotations).toEqual({
      a: '1',
      restartedAt: '2024-01-01T00:00:00Z',
    });
    // The real Knative webhook defaulted the rest of the template.
    expect(patched.spec.template.spec).toMatchObject({
      containers: [{ image: 'hello', name: 'user-container' }],
      timeoutSeconds: 300,
    });

    // A number where a string belongs: the Knative webhook cannot even decode it (the schema would refuse it next).
    const bad = { spec: { template: { metadata: { annotations: { n: 1 } } } } };
    const refused = await custom
      .patchNamespacedCustomObject(
        { ...ksvc, name: 'helloworld', body: bad },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      )
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(refused).toBeInstanceOf(ApiException);
    expect((refused as ApiException<unknown>).code).toBe(400);
    expect(String((refused as ApiException<unknown>).body)).toContain('cannot unmarshal number');
  });

  it('authenticates TokenRequest tokens as the ServiceAccount and enforces its RBAC', async () => {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'reader' } } });
    const token = await createServiceAccountToken(adminKubeconfigPath(), namespace, 'reader', 600);
    const asReader = { ...adminTarget(), token };

    const identity = await whoAmI(asReader);
    expect(identity.username).toBe(`system:serviceaccount:${namespace}:reader`);
    expect(identity.groups).toContain(`system:serviceaccounts:${namespace}`);

    const listPath = `/api/v1/namespaces/${namespace}/configmaps`;
    const denied = await kubeRequest(asReader, 'GET', listPath).catch((err: unknown) => err);
    expect(denied).toBeInstanceOf(KubeRequestError);
    expect((denied as KubeRequestError).status).toBe(403);
    expect((denied as KubeRequestError).message).toContain(
      `"system:serviceaccount:${namespace}:reader" cannot list`,
    );

    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    const admin = adminTarget();
    await kubeRequest(admin, 'POST', `${rbac}/namespaces/${namespace}/roles`, {
      metadata: { name: 'configmap-reader' },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }],
    });
    await kubeRequest(admin, 'POST', `${rbac}/namespaces/${namespace}/rolebindings`, {
      metadata: { name: 'configmap-reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
    });
    // The RBAC authorizer reads through an informer: allow it a moment to see the binding.
    const deadline = Date.now() + 5_000;
    let status = 0;
    while (Date.now() < deadline) {
      status = await kubeRequest(asReader, 'GET', listPath, undefined, { allowStatus: [403] }).then(
        (r) => r.status,
      );
      if (status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(status).toBe(200);
    // Still nothing beyond the Role.
    await expect(
      kubeRequest(asReader, 'GET', `/api/v1/namespaces/${namespace}/secrets`),
    ).rejects.toMatchObject({
      status: 403,
    });
  });

  it('reports missing objects as 404 ApiException', async () => {
    await expect(core.readNamespacedConfigMap({ namespace, name: 'missing' })).rejects.toBeInstanceOf(
      ApiException,
    );
  });
});
