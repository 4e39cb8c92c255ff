import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { ENTRY_POINTS, NAMESPACE, knativeServices, render, repoRoot, type K8sObject } from './kustomize.js';
import { kustomizationFiles } from './layout.js';

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
]);

/** The only cluster-wide grant: TokenReview (cluster-scoped) for sender authentication, where asked for. */
const CLUSTER_GRANTS: Record<string, string[]> = {
  'knative/authentication': [
    'ClusterRole/config-restarter-tokenreview',
    'ClusterRoleBinding/config-restarter-tokenreview',
  ],
};

describe.each(ENTRY_POINTS)('kubectl kustomize %s', (dir) => {
  let objects: K8sObject[];

  beforeAll(async () => {
    ({ objects } = await render(dir));
  });

  it('renders objects without any warning', async () => {
    const { stderr } = await render(dir);
    expect(stderr).toBe('');
    expect(objects.length).toBeGreaterThan(0);
  });

  it(`puts every namespaced object into the namespace ${NAMESPACE}`, () => {
    for (const o of objects.filter((o) => !CLUSTER_SCOPED.has(o.kind))) {
      expect({ object: `${o.kind}/${o.metadata.name}`, namespace: o.metadata.namespace }).toEqual({
        object: `${o.kind}/${o.metadata.name}`,
        namespace: NAMESPACE,
      });
    }
  });

  it('grants nothing cluster-wide (but TokenReview where asked) and creates no namespace but helloworld', () => {
    const clusterScoped = objects
      .filter((o) => CLUSTER_SCOPED.has(o.kind))
      .map((o) => `${o.kind}/${o.metadata.name}`);
    expect(clusterScoped.filter((o) => o !== `Namespace/${NAMESPACE}`)).toEqual(CLUSTER_GRANTS[dir] ?? []);
  });

  it('never sets spec.selector on a Knative Service', () => {
    for (const ksvc of knativeServices(objects)) expect(ksvc.spec).not.toHaveProperty('selector');
  });

  it('leaves the Knative Service config-restarter to `func deploy`', () => {
    expect(knativeServices(objects).map((s) => s.metadata.name)).not.toContain('config-restarter');
  });

  it('has unique kind/name pairs', () => {
    const ids = objects.map((o) => `${o.apiVersion}/${o.kind}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('kustomization files', () => {
  it('never use the deprecated commonLabels / patchesStrategicMerge / patchesJson6902 / vars', async () => {
    for (const file of await kustomizationFiles()) {
      const text = await readFile(path.join(repoRoot, file), 'utf8');
      expect({
        file,
        deprecated: text.match(/^(commonLabels|patchesStrategicMerge|patchesJson6902|vars|bases):/m),
      }).toEqual({
        file,
        deprecated: null,
      });
    }
  });
});

describe('combining the knative components', () => {
  it('Broker plumbing with Secrets (the recipe of docs/manifests.md) renders', async () => {
    // kustomize accepts only relative paths to other kustomizations.
    const dir = await mkdtemp(path.join(tmpdir(), 'kustomize-combo-'));
    try {
      const knative = path.relative(dir, path.join(repoRoot, 'knative'));
      await writeFile(
        path.join(dir, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          'resources:',
          `  - ${knative}/base`,
          'components:',
          `  - ${knative}/components/broker`,
          `  - ${knative}/components/secrets`,
          '',
        ].join('\n'),
      );
      const { objects, stderr } = await render(dir);
      expect(stderr).toBe('');
      const source = objects.find((o) => o.kind === 'ApiServerSource') as K8sObject & {
        spec: { resources: { kind: string }[]; sink: { ref: { kind: string; name: string } } };
      };
      expect(source.spec.resources.map((r) => r.kind)).toEqual(['ConfigMap', 'Secret']);
      expect(source.spec.sink.ref).toMatchObject({ kind: 'Broker', name: 'config-events' });
      expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(
        expect.arrayContaining(['Trigger/config-restarter', 'Role/config-restarter-secrets']),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
