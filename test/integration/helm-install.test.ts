/**
 * `helm install` of charts/config-restarter against the real kube-apiserver: the objects are created, and the
 * function's and the source's ServiceAccounts can do exactly what the project's RBAC (the kustomize manifests)
 * grants: every (resource, verb) pair is asked of the real authorizer (SubjectAccessReview), and the function's
 * own token lists its rules (SelfSubjectRulesReview) and checks itself (SelfSubjectAccessReview). With sender
 * authentication and Argo Rollouts on, two releases get their own TokenReview ClusterRoles.
 */
import { jest } from '@jest/globals';
import { ensureBinary } from '../../cluster/binaries.js';
import { CHART_DIR, runHelm, type HelmResult } from '../../cluster/helm.js';
import {
  createServiceAccountToken,
  kubeRequest,
  KubeRequestError,
  type KubeTarget,
} from '../../cluster/kube.js';
import { render, type K8sObject } from '../manifests/kustomize.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';

jest.setTimeout(120_000);

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
/** Resources probed for every verb: the ones the function needs and neighbours it must not get. */
const PROBES: [group: string, resource: string][] = [
  ['', 'configmaps'],
  ['', 'secrets'],
  ['apps', 'deployments'],
  ['apps', 'statefulsets'],
  ['apps', 'daemonsets'],
  ['serving.knative.dev', 'services'],
  ['batch', 'cronjobs'],
  ['serving.knative.dev', 'revisions'],
  ['serving.knative.dev', 'configurations'],
  ['apps', 'replicasets'],
  ['', 'pods'],
  ['', 'events'],
  ['', 'services'],
  ['', 'serviceaccounts'],
  ['rbac.authorization.k8s.io', 'roles'],
  ['sources.knative.dev', 'apiserversources'],
  ['argoproj.io', 'rollouts'],
  ['authentication.k8s.io', 'tokenreviews'],
];
const VERBS = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'];

let helmBinary: string;
let admin: KubeTarget;

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** "group/resource verb" for every grant the kustomize Roles give one ServiceAccount: the expected access. */
async function expectedAccess(dir: string, serviceAccount: string): Promise<string[]> {
  const { objects } = await render(dir);
  const bound = objects
    .filter((o) => o.kind === 'RoleBinding')
    .filter((b) =>
      (b as K8sObject & { subjects: { name: string }[] }).subjects.some((s) => s.name === serviceAccount),
    )
    .map((b) => (b as K8sObject & { roleRef: { name: string } }).roleRef.name);
  const rules = objects
    .filter((o) => o.kind === 'Role' && bound.includes(o.metadata.name))
    .flatMap((r) => (r as K8sObject & { rules: Rule[] }).rules);
  return rules
    .flatMap((r) =>
      r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res} ${v}`))),
    )
    .sort();
}

function helm(args: string[]): Promise<HelmResult> {
  return runHelm(helmBinary, args, adminKubeconfigPath());
}

/** `helm install`; resolves with helm's output (release status and the chart's NOTES). */
async function install(release: string, namespace: string, args: string[]): Promise<string> {
  const result = await helm(['install', release, CHART_DIR, '--namespace', namespace, ...args]);
  if (result.code !== 0) throw new Error(`helm install ${release} failed: ${result.stderr}`);
  expect(result.stdout).toContain('STATUS: deployed');
  return result.stdout;
}

async function createNamespace(name: string): Promise<void> {
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name } });
}

/** Asks the real authorizer whether a ServiceAccount may do `verb` on `group/resource` in `namespace`. */
async function allowed(
  sa: { namespace: string; name: string },
  namespace: string,
  group: string,
  resource: string,
  verb: string,
): Promise<boolean> {
  const { body } = await kubeRequest<{ status: { allowed: boolean } }>(
    admin,
    'POST',
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: `system:serviceaccount:${sa.namespace}:${sa.name}`,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${sa.namespace}`, 'system:authenticated'],
        resourceAttributes: { namespace, group, resource, verb },
      },
    },
  );
  return body.status.allowed;
}

/** Every probed (resource, verb) the ServiceAccount is allowed in `namespace` ("" = cluster-wide). */
async function access(sa: { namespace: string; name: string }, namespace: string): Promise<string[]> {
  const granted: string[] = [];
  for (const [group, resource] of PROBES) {
    const answers = await Promise.all(VERBS.map((verb) => allowed(sa, namespace, group, resource, verb)));
    VERBS.forEach((verb, i) => {
      if (answers[i]) granted.push(`${group}/${resource} ${verb}`);
    });
  }
  return granted.sort();
}

async function exists(path: string): Promise<boolean> {
  try {
    await kubeRequest(admin, 'GET', path);
    return true;
  } catch (err) {
    if (err instanceof KubeRequestError && err.status === 404) return false;
    throw err;
  }
}

beforeAll(async () => {
  admin = adminTarget();
  // Built by the manifests project's global setup in `npm test`; built here when this project runs alone.
  helmBinary = await ensureBinary('helm', (line) => process.stderr.write(`[tools] ${line}\n`));
}, 20 * 60_000);

describe('own namespace, Broker and Secrets', () => {
  const ns = uniqueName('it-helm');
  const fn = { namespace: ns, name: 'config-restarter' };
  const source = { namespace: ns, name: 'config-restarter-source' };
  let output: string;

  beforeAll(async () => {
    output = await install('restarter', ns, [
      '--create-namespace',
      '--set',
      `function.image.digest=${DIGEST}`,
      '--set',
      'broker.enabled=true',
      '--set-json',
      'settings.configKinds=["ConfigMap","Secret"]',
    ]);
  });

  it('reports the release deployed, with notes on opting in', () => {
    expect(output).toContain(`NAMESPACE: ${ns}`);
    expect(output).toContain(
      'Opt a ConfigMap/Secret in:   label rolling.restart.controller/watch: "true" (the source sends events for labelled objects only)',
    );
    expect(output).toContain('such objects are rolled out by the resync (*/10 * * * *).');
    expect(output).toContain('Delivery: Broker config-events -> Trigger config-restarter');
  });

  it('creates every object of the chart in the release namespace', async () => {
    const paths = [
      `/api/v1/namespaces/${ns}/serviceaccounts/config-restarter`,
      `/api/v1/namespaces/${ns}/serviceaccounts/config-restarter-source`,
      ...[
        'config-restarter',
        'config-restarter-secrets',
        'config-restarter-source',
        'config-restarter-source-secrets',
      ].flatMap((name) => [
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/${name}`,
        `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings/${name}`,
      ]),
      `/apis/sources.knative.dev/v1/namespaces/${ns}/apiserversources/config-restarter-source`,
      `/apis/sources.knative.dev/v1/namespaces/${ns}/pingsources/config-restarter-resync`,
      `/apis/serving.knative.dev/v1/namespaces/${ns}/services/config-restarter`,
      `/apis/serving.knative.dev/v1/namespaces/${ns}/services/config-restarter-dead-letter`,
      `/apis/eventing.knative.dev/v1/namespaces/${ns}/brokers/config-events`,
      `/apis/eventing.knative.dev/v1/namespaces/${ns}/triggers/config-restarter`,
    ];
    const missing: string[] = [];
    for (const path of paths) if (!(await exists(path))) missing.push(path);
    expect(missing).toEqual([]);
    const { body } = await kubeRequest<{ spec: { template: { spec: { containers: { image: string }[] } } } }>(
      admin,
      'GET',
      `/apis/serving.knative.dev/v1/namespaces/${ns}/services/config-restarter`,
    );
    expect(body.spec.template.spec.containers[0]?.image).toBe(`ghcr.io/example/config-restarter@${DIGEST}`);
    const { body: source } = await kubeRequest<{
      spec: { resources: unknown[]; sink: { ref: { kind: string } } };
    }>(
      admin,
      'GET',
      `/apis/sources.knative.dev/v1/namespaces/${ns}/apiserversources/config-restarter-source`,
    );
    const watchLabel = { matchLabels: { 'rolling.restart.controller/watch': 'true' } };
    expect(source.spec.resources).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', selector: watchLabel },
      { apiVersion: 'v1', kind: 'Secret', selector: watchLabel },
    ]);
    expect(source.spec.sink.ref.kind).toBe('Broker');
  });

  it('the function ServiceAccount may do exactly what knative/secrets grants it, in its namespace only', async () => {
    expect(await access(fn, ns)).toEqual(await expectedAccess('knative/secrets', 'config-restarter'));
    expect(await access(fn, 'default')).toEqual([]);
    expect(await access(fn, '')).toEqual([]);
  });

  it('the source ServiceAccount may get, list and watch ConfigMaps and Secrets, nothing else', async () => {
    expect(await access(source, ns)).toEqual(
      await expectedAccess('knative/secrets', 'config-restarter-source'),
    );
    expect(await access(source, 'default')).toEqual([]);
  });

  it("the function's own token sees exactly its rules (SelfSubjectRulesReview) and checks itself", async () => {
    const self: KubeTarget = {
      ...admin,
      token: await createServiceAccountToken(adminKubeconfigPath(), ns, 'config-restarter', 600),
    };
    const { body } = await kubeRequest<{ status: { resourceRules: Rule[]; incomplete: boolean } }>(
      self,
      'POST',
      '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews',
      { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace: ns } },
    );
    expect(body.status.incomplete).toBe(false);
    // Every authenticated identity may review itself; everything else comes from the chart.
    const own = body.status.resourceRules
      .filter((r) => !r.apiGroups.every((g) => g === 'authorization.k8s.io' || g === 'authentication.k8s.io'))
      .flatMap((r) =>
        r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}/${res} ${v}`))),
      )
      .sort();
    expect(own).toEqual(await expectedAccess('knative/secrets', 'config-restarter'));

    const can = async (verb: string, group: string, resource: string): Promise<boolean> => {
      const { body: review } = await kubeRequest<{ status: { allowed: boolean } }>(
        self,
        'POST',
        '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
        {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: { resourceAttributes: { namespace: ns, verb, group, resource } },
        },
      );
      return review.status.allowed;
    };
    expect(await can('patch', 'serving.knative.dev', 'services')).toBe(true);
    expect(await can('patch', 'apps', 'deployments')).toBe(true);
    expect(await can('get', '', 'secrets')).toBe(true);
    expect(await can('delete', 'apps', 'deployments')).toBe(false);
    expect(await can('update', '', 'configmaps')).toBe(false);
    expect(await can('patch', 'serving.knative.dev', 'revisions')).toBe(false);
  });
});

describe('a list of namespaces', () => {
  const home = uniqueName('it-helm-home');
  const teams = [uniqueName('it-helm-a'), uniqueName('it-helm-b')];
  const fn = { namespace: home, name: 'config-restarter' };

  beforeAll(async () => {
    for (const team of teams) await createNamespace(team);
    await install('listed', home, [
      '--create-namespace',
      '--set',
      `function.image.digest=${DIGEST}`,
      '--set-json',
      `settings.watchNamespaces=${JSON.stringify(teams)}`,
    ]);
  });

  it('grants the function its access in each listed namespace, not in its own, and nothing cluster-wide', async () => {
    const expected = await expectedAccess('knative', 'config-restarter');
    for (const team of teams) expect(await access(fn, team)).toEqual(expected);
    expect(await access(fn, home)).toEqual([]);
    expect(await access(fn, '')).toEqual([]);
    const { body } = await kubeRequest<{ items: unknown[] }>(
      admin,
      'GET',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles?labelSelector=app.kubernetes.io%2Finstance%3Dlisted',
    );
    expect(body.items).toEqual([]);
  });

  it('helm uninstall takes the access away again', async () => {
    const result = await helm(['uninstall', 'listed', '--namespace', home, '--wait']);
    expect(result.code).toBe(0);
    for (const team of teams) expect(await access(fn, team)).toEqual([]);
    expect(
      await exists(
        `/apis/sources.knative.dev/v1/namespaces/${home}/apiserversources/config-restarter-source`,
      ),
    ).toBe(false);
  });
});

describe('every namespace', () => {
  const home = uniqueName('it-helm-all');
  const fn = { namespace: home, name: 'config-restarter' };
  const elsewhere = uniqueName('it-helm-other');

  beforeAll(async () => {
    await createNamespace(elsewhere);
    await install('everywhere', home, [
      '--create-namespace',
      '--set',
      `function.image.digest=${DIGEST}`,
      '--set-json',
      'settings.watchNamespaces=["*"]',
    ]);
  });

  it('grants the same verbs through a ClusterRole: in any namespace and across namespaces', async () => {
    const expected = await expectedAccess('knative', 'config-restarter');
    expect(await access(fn, elsewhere)).toEqual(expected);
    expect(await access(fn, '')).toEqual(expected);
    expect(await exists(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${home}-config-restarter`)).toBe(
      true,
    );
    expect(
      await exists(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${home}-config-restarter-source`),
    ).toBe(true);
  });
});

describe('sender authentication and Argo Rollouts, in two namespaces', () => {
  const homes = [uniqueName('it-helm-auth'), uniqueName('it-helm-auth')];
  const fns = homes.map((namespace) => ({ namespace, name: 'config-restarter' }));
  const outputs: string[] = [];

  beforeAll(async () => {
    // The same release name twice: the cluster-wide TokenReview grant must not clash between them.
    for (const home of homes) {
      outputs.push(
        await install('restarter', home, [
          '--create-namespace',
          '--set',
          `function.image.digest=${DIGEST}`,
          '--set',
          'settings.authentication.enabled=true',
          '--set',
          'argoRollouts.enabled=true',
        ]),
      );
    }
  });

  it('notes the audience, and the function checks tokens for it', async () => {
    for (const [i, home] of homes.entries()) {
      expect(outputs[i]).toContain(
        `Sender authentication: on, audience serving.knative.dev/service/${home}/config-restarter`,
      );
      const { body } = await kubeRequest<{
        spec: { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } };
      }>(admin, 'GET', `/apis/serving.knative.dev/v1/namespaces/${home}/services/config-restarter`);
      expect(body.spec.template.spec.containers[0]?.env).toContainEqual({
        name: 'AUTH_AUDIENCE',
        value: `serving.knative.dev/service/${home}/config-restarter`,
      });
    }
  });

  it('the function may do what knative/argo-rollouts grants in its namespace, and create TokenReviews', async () => {
    const expected = await expectedAccess('knative/argo-rollouts', 'config-restarter');
    expect(expected).toContain('argoproj.io/rollouts patch');
    for (const fn of fns) {
      expect(await access(fn, fn.namespace)).toEqual(
        [...expected, 'authentication.k8s.io/tokenreviews create'].sort(),
      );
      expect(await access(fn, '')).toEqual(['authentication.k8s.io/tokenreviews create']);
      expect(await access(fn, 'default')).toEqual(['authentication.k8s.io/tokenreviews create']);
      expect(await access({ namespace: fn.namespace, name: 'config-restarter-source' }, '')).toEqual([]);
    }
  });

  it("the function's own token reviews a sender's token (the TokenReview its authentication makes)", async () => {
    const [home = ''] = homes;
    const self: KubeTarget = {
      ...admin,
      token: await createServiceAccountToken(adminKubeconfigPath(), home, 'config-restarter', 600),
    };
    const sender = await createServiceAccountToken(
      adminKubeconfigPath(),
      home,
      'config-restarter-source',
      600,
    );
    const { status, body } = await kubeRequest<{
      status: { authenticated?: boolean; user?: { username: string } };
    }>(self, 'POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token: sender },
    });
    expect(status).toBe(201);
    expect(body.status.authenticated).toBe(true);
    expect(body.status.user?.username).toBe(`system:serviceaccount:${home}:config-restarter-source`);
  });

  it('helm uninstall removes the cluster-wide grant of that release only', async () => {
    const [first = '', second = ''] = homes;
    const result = await helm(['uninstall', 'restarter', '--namespace', first, '--wait']);
    expect(result.code).toBe(0);
    const clusterRole = (home: string): string =>
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${home}-config-restarter-tokenreview`;
    expect(await exists(clusterRole(first))).toBe(false);
    expect(await exists(clusterRole(second))).toBe(true);
    expect(await access({ namespace: first, name: 'config-restarter' }, '')).toEqual([]);
  });
});

describe('bad values', () => {
  it('fail helm install before anything is created', async () => {
    const ns = uniqueName('it-helm-bad');
    const result = await helm([
      'install',
      'bad',
      CHART_DIR,
      '--namespace',
      ns,
      '--create-namespace',
      '--set',
      `function.image.digest=${DIGEST}`,
      '--set',
      'settings.logLevel=loud',
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/at '\/settings\/logLevel'/);
    expect(await exists(`/api/v1/namespaces/${ns}/serviceaccounts/config-restarter`)).toBe(false);
    expect(await exists(`/api/v1/namespaces/${ns}/secrets/sh.helm.release.v1.bad.v1`)).toBe(false);
  });
});
