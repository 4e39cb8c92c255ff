/**
 * knative/authentication: the base plumbing plus the one grant sender authentication needs (TokenReview),
 * bound to the function's ServiceAccount only; the senders name the audience the function checks.
 */
import { find, render, type K8sObject } from './kustomize.js';

interface ClusterRole extends K8sObject {
  rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
}
interface ClusterRoleBinding extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string }[];
}
interface Source extends K8sObject {
  spec: { sink: { audience?: string } };
}

describe('knative/authentication', () => {
  let objects: K8sObject[];

  beforeAll(async () => {
    ({ objects } = await render('knative/authentication'));
  });

  it('grants create on tokenreviews and nothing else, to the function only', () => {
    const role = find<ClusterRole>(objects, 'ClusterRole', 'config-restarter-tokenreview');
    expect(role.rules).toEqual([
      { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
    ]);
    const binding = find<ClusterRoleBinding>(objects, 'ClusterRoleBinding', 'config-restarter-tokenreview');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: 'config-restarter-tokenreview',
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'config-restarter', namespace: 'helloworld' },
    ]);
    expect(objects.filter((o) => o.kind.startsWith('Cluster')).length).toBe(2);
  });

  it('keeps the base plumbing, whose senders name the audience AUTH_AUDIENCE is set to', async () => {
    const base = await render('knative');
    expect(objects.length).toBe(base.objects.length + 2);
    for (const [kind, name] of [
      ['ApiServerSource', 'config-restarter-source'],
      ['ApiServerSource', 'config-restarter-workloads'],
      ['PingSource', 'config-restarter-resync'],
    ] as const) {
      expect(find<Source>(objects, kind, name).spec.sink.audience).toBe(
        'serving.knative.dev/service/helloworld/config-restarter',
      );
    }
  });
});
