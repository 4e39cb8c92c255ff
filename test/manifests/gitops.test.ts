/**
 * docs/gitops/argocd-application.yaml, the Argo CD snippet the README points to: an Application whose diff and
 * sync leave alone exactly what the function's field manager owns, for every kind the function restarts, over a
 * kustomization of this repository.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import yaml from 'js-yaml';
import { FIELD_MANAGER } from '../../functions/config-restarter/src/kube.js';
import { WORKLOAD_KINDS } from '../../functions/config-restarter/src/workload-kinds.js';
import { render, repoRoot } from './kustomize.js';

interface Application {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: {
    source: { repoURL: string; targetRevision: string; path: string };
    destination: { server: string; namespace: string };
    ignoreDifferences: Record<string, unknown>[];
    syncPolicy: { automated?: unknown; syncOptions: string[] };
  };
}

describe('docs/gitops/argocd-application.yaml', () => {
  let documents: unknown[];
  let app: Application;

  beforeAll(async () => {
    const text = await readFile(path.join(repoRoot, 'docs/gitops/argocd-application.yaml'), 'utf8');
    documents = yaml.loadAll(text).filter((d) => d != null);
    app = documents[0] as Application;
  });

  it('is one Argo CD Application', () => {
    expect(documents).toHaveLength(1);
    expect(app).toMatchObject({ apiVersion: 'argoproj.io/v1alpha1', kind: 'Application' });
    expect(app.metadata.name).toMatch(/^[a-z0-9-]+$/);
  });

  it('ignores the fields of the field manager config-restarter, and only those, on every kind the function restarts', () => {
    expect(FIELD_MANAGER).toBe('config-restarter');
    const expected = WORKLOAD_KINDS.map((k) => ({
      group: k.group,
      kind: k.kind,
      managedFieldsManagers: [FIELD_MANAGER],
    }));
    // No jsonPointers or jqPathExpressions: nothing but the function's own fields is hidden from the diff.
    expect(app.spec.ignoreDifferences).toEqual(expected);
  });

  it('keeps a sync from writing the ignored fields back', () => {
    expect(app.spec.syncPolicy.syncOptions).toContain('RespectIgnoreDifferences=true');
  });

  it('deploys a kustomization of this repository into the namespace it renders for', async () => {
    const { objects } = await render(app.spec.source.path);
    expect(objects.length).toBeGreaterThan(0);
    expect(new Set(objects.map((o) => o.metadata.namespace))).toEqual(
      new Set([app.spec.destination.namespace]),
    );
    // The workloads it deploys are among the kinds the snippet covers.
    const covered = new Set(WORKLOAD_KINDS.map((k) => `${k.group}/${k.kind}`));
    const workloads = objects.filter((o) => o.kind !== 'ConfigMap');
    expect(workloads.length).toBeGreaterThan(0);
    for (const o of workloads) expect(covered).toContain(`${o.apiVersion.split('/')[0]}/${o.kind}`);
  });
});
