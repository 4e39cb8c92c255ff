/**
 * The Helm chart charts/config-restarter, rendered by the real helm (built from helm.sh/helm/v3, pinned):
 * it lints, renders the same objects as the kustomize manifests in knative/, grants exactly the RBAC of the
 * access table for every watch scope and option, turns values into settings the function accepts, and refuses bad
 * values at render time (values.schema.json).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { loadConfig } from '../../functions/config-restarter/src/config.js';
import { CHART_DIR } from '../../cluster/helm.js';
import { helm, template, templateRaw, TEST_DIGEST, valueArgs, type TemplateOptions } from './chart.js';
import { find, knativeServices, render, repoRoot, type K8sObject, type KnativeService } from './kustomize.js';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface RoleLike extends K8sObject {
  rules: Rule[];
}
interface Binding extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string }[];
}
interface SourceSpec {
  resources: { apiVersion: string; kind: string; selector?: unknown }[];
  namespaceSelector?: unknown;
  sink: { ref: { kind: string; name: string } };
}

const CI = (name: string): string => `charts/config-restarter/ci/${name}-values.yaml`;
const VALUE_SETS = [
  'direct',
  'broker',
  'secrets',
  'authentication',
  'argo-rollouts',
  'namespaces',
  'all-namespaces',
  'func',
] as const;
/** The chart's audience in the release namespace helloworld, as the kustomize senders name it. */
const AUDIENCE = 'serving.knative.dev/service/helloworld/config-restarter';
const CLUSTER_KINDS = ['ClusterRole', 'ClusterRoleBinding'];

/** Labels that carry meaning; Helm's bookkeeping labels (managed-by, instance, chart) are not compared. */
const MEANINGFUL_LABELS = ['app.kubernetes.io/part-of', 'networking.knative.dev/visibility'];

/** An object reduced to what the cluster acts on: no Helm bookkeeping labels, no empty label map. */
function substance(object: K8sObject): K8sObject {
  const copy = structuredClone(object);
  const labels = Object.fromEntries(
    Object.entries(copy.metadata.labels ?? {}).filter(([key]) => MEANINGFUL_LABELS.includes(key)),
  );
  if (Object.keys(labels).length > 0) copy.metadata.labels = labels;
  else delete copy.metadata.labels;
  return copy;
}

/**
 * A kustomize object as the chart names it: cluster-scoped objects carry the release namespace in front
 * (`helloworld-config-restarter-tokenreview`), so releases in different namespaces never share one.
 */
function releaseNamed(object: K8sObject): K8sObject {
  if (!CLUSTER_KINDS.includes(object.kind)) return object;
  const copy = structuredClone(object) as K8sObject & { roleRef?: { name: string } };
  copy.metadata.name = `helloworld-${copy.metadata.name}`;
  if (copy.roleRef) copy.roleRef.name = `helloworld-${copy.roleRef.name}`;
  return copy;
}

const key = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const byKey = (a: K8sObject, b: K8sObject): number => key(a).localeCompare(key(b));

/** One row per (kind, namespace, role, group, resource): the exact verbs granted. */
type Grant = [kind: string, namespace: string, role: string, group: string, resource: string, verbs: string];

function grants(objects: readonly K8sObject[]): Grant[] {
  const rows: Grant[] = [];
  for (const role of objects.filter((o): o is RoleLike => o.kind === 'Role' || o.kind === 'ClusterRole')) {
    for (const rule of role.rules) {
      expect(rule.resourceNames).toBeUndefined();
      expect(rule.verbs).not.toContain('*');
      expect(rule.resources).not.toContain('*');
      for (const group of rule.apiGroups)
        for (const resource of rule.resources)
          rows.push([
            role.kind,
            role.metadata.namespace ?? '',
            role.metadata.name,
            group,
            resource,
            [...rule.verbs].sort().join(','),
          ]);
    }
  }
  return rows.sort((a, b) => a.join('/').localeCompare(b.join('/')));
}

/** binding kind/namespace/name -> role kind/name -> subject namespace/name. */
function bindings(objects: readonly K8sObject[]): string[] {
  return objects
    .filter((o): o is Binding => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')
    .map((b) => {
      expect(b.subjects).toHaveLength(1);
      const [s] = b.subjects;
      return `${key(b)} -> ${b.roleRef.kind}/${b.roleRef.name} -> ${s?.kind}/${s?.namespace}/${s?.name}`;
    })
    .sort();
}

function env(ksvc: KnativeService): Record<string, string> {
  const [container] = ksvc.spec.template.spec.containers;
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? '']));
}

describe('helm lint', () => {
  it.each(VALUE_SETS)('passes --strict with ci/%s-values.yaml', async (set) => {
    const result = await helm(['lint', '--strict', CHART_DIR, ...valueArgs({ values: [CI(set)] })]);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(result.code).toBe(0);
  });

  it.each(['test', 'prod'])(
    'passes --strict with the %s environment values of the deploy workflow',
    async (e) => {
      const result = await helm([
        'lint',
        '--strict',
        CHART_DIR,
        ...valueArgs({
          values: [`deploy/${e}.values.yaml`],
          set: ['--set', `function.image.digest=${TEST_DIGEST}`],
        }),
      ]);
      expect(result.stdout).toContain('0 chart(s) failed');
      expect(result.code).toBe(0);
    },
  );
});

describe.each([
  { set: 'direct', dir: 'knative' },
  { set: 'broker', dir: 'knative/broker' },
  { set: 'secrets', dir: 'knative/secrets' },
  { set: 'authentication', dir: 'knative/authentication' },
  { set: 'argo-rollouts', dir: 'knative/argo-rollouts' },
] as const)('helm template ci/$set-values.yaml', ({ set, dir }) => {
  let chart: K8sObject[];
  let kustomize: K8sObject[];

  beforeAll(async () => {
    chart = await template({ values: [CI(set)] });
    kustomize = (await render(dir)).objects.map(releaseNamed);
  });

  it(`renders the objects of kubectl kustomize ${dir}, plus the function, minus the Namespace`, () => {
    const fromChart = chart.filter((o) => !(o.kind === 'Service' && o.metadata.name === 'config-restarter'));
    const fromKustomize = kustomize.filter((o) => o.kind !== 'Namespace');
    expect(fromChart.map(substance).sort(byKey)).toEqual(fromKustomize.map(substance).sort(byKey));
  });

  it('grants exactly the RBAC of the kustomize manifests', () => {
    expect(grants(chart)).toEqual(grants(kustomize));
    expect(bindings(chart)).toEqual(bindings(kustomize));
  });

  it('labels every object with part-of and Helm standard labels', () => {
    for (const o of chart) {
      expect(o.metadata.namespace).toBe(CLUSTER_KINDS.includes(o.kind) ? undefined : 'helloworld');
      expect(o.metadata.labels).toMatchObject({
        'app.kubernetes.io/part-of': 'config-restarter',
        'app.kubernetes.io/managed-by': 'Helm',
        'app.kubernetes.io/instance': 'config-restarter',
      });
    }
  });
});

describe('RBAC per watch scope', () => {
  /** Every kustomize grant at once: the base plus the Secrets, Argo Rollouts and authentication components. */
  let kustomize: K8sObject[];
  beforeAll(async () => {
    const variants = ['knative/secrets', 'knative/argo-rollouts', 'knative/authentication'];
    const objects = (await Promise.all(variants.map(render))).flatMap((r) => r.objects);
    kustomize = [...new Map(objects.map((o) => [key(o), o])).values()];
  });

  const sortGrants = (rows: Grant[]): Grant[] => rows.sort((a, b) => a.join('/').localeCompare(b.join('/')));

  /** The kustomize Roles' grants moved to another namespace or made cluster-wide. */
  function rescoped(kind: 'Role' | 'ClusterRole', namespace: string, rename = (n: string) => n): Grant[] {
    return grants(kustomize)
      .filter(([k]) => k === 'Role')
      .map(([, , role, ...rest]): Grant => [kind, namespace, rename(role), ...rest]);
  }

  /** The kustomize ClusterRoles' grants (TokenReview), named after the release namespace: in every scope. */
  function clusterWide(): Grant[] {
    return grants(kustomize.map(releaseNamed)).filter(([k]) => k === 'ClusterRole');
  }

  it('watchNamespaces [team-a, team-b]: the same Roles in each listed namespace, none elsewhere; TokenReview stays a ClusterRole', async () => {
    const objects = await template({ values: [CI('namespaces')] });
    expect(clusterWide()).toEqual([
      [
        'ClusterRole',
        '',
        'helloworld-config-restarter-tokenreview',
        'authentication.k8s.io',
        'tokenreviews',
        'create',
      ],
    ]);
    expect(grants(objects)).toEqual(
      sortGrants([...rescoped('Role', 'team-a'), ...rescoped('Role', 'team-b'), ...clusterWide()]),
    );
    expect(bindings(objects)).toEqual(
      [
        ...['team-a', 'team-b'].flatMap((ns) =>
          [
            'config-restarter',
            'config-restarter-rollouts',
            'config-restarter-secrets',
            'config-restarter-source',
            'config-restarter-source-secrets',
          ].map(
            (role) =>
              `RoleBinding/${ns}/${role} -> Role/${role} -> ServiceAccount/helloworld/${role.includes('source') ? 'config-restarter-source' : 'config-restarter'}`,
          ),
        ),
        'ClusterRoleBinding//helloworld-config-restarter-tokenreview -> ClusterRole/helloworld-config-restarter-tokenreview -> ServiceAccount/helloworld/config-restarter',
      ].sort(),
    );
    const source = find<K8sObject & { spec: SourceSpec }>(
      objects,
      'ApiServerSource',
      'config-restarter-source',
    );
    expect(source.spec.namespaceSelector).toEqual({
      matchExpressions: [
        { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['team-a', 'team-b'] },
      ],
    });
  });

  it('watchNamespaces ["*"]: ClusterRoles and ClusterRoleBindings only, named after the release namespace', async () => {
    const objects = await template({
      values: [CI('all-namespaces')],
      set: ['--set-json', 'settings.configKinds=["ConfigMap","Secret"]'],
    });
    expect(objects.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding')).toEqual([]);
    expect(grants(objects)).toEqual(
      sortGrants([...rescoped('ClusterRole', '', (n) => `helloworld-${n}`), ...clusterWide()]),
    );
    for (const b of objects.filter((o): o is Binding => o.kind === 'ClusterRoleBinding')) {
      expect(b.roleRef).toEqual({
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: b.metadata.name,
      });
      expect(b.subjects[0]?.namespace).toBe('helloworld');
    }
    const source = find<K8sObject & { spec: SourceSpec }>(
      objects,
      'ApiServerSource',
      'config-restarter-source',
    );
    expect(source.spec.namespaceSelector).toEqual({});
  });

  it('two releases with authentication in different namespaces get different TokenReview ClusterRoles', async () => {
    const names = async (namespace: string): Promise<string[]> =>
      (await template({ values: [CI('authentication')], namespace }))
        .filter((o) => CLUSTER_KINDS.includes(o.kind))
        .map(key);
    expect(await names('team-a')).toEqual([
      'ClusterRole//team-a-config-restarter-tokenreview',
      'ClusterRoleBinding//team-a-config-restarter-tokenreview',
    ]);
    expect(await names('team-b')).toEqual([
      'ClusterRole//team-b-config-restarter-tokenreview',
      'ClusterRoleBinding//team-b-config-restarter-tokenreview',
    ]);
  });

  it('the defaults: nobody gets any access to Secrets or Rollouts, nothing is cluster-wide', async () => {
    const objects = await template({ values: [CI('direct')] });
    expect(grants(objects).filter((g) => ['secrets', 'rollouts', 'tokenreviews'].includes(g[4]))).toEqual([]);
    expect(objects.filter((o) => CLUSTER_KINDS.includes(o.kind))).toEqual([]);
    const source = find<K8sObject & { spec: SourceSpec }>(
      objects,
      'ApiServerSource',
      'config-restarter-source',
    );
    expect(source.spec.resources).toEqual([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        selector: { matchLabels: { 'rolling.restart.controller/watch': 'true' } },
      },
    ]);
  });
});

describe('the function as a Knative Service', () => {
  it('by default equals what func.yaml deploys (account, labels, probes, resources, scale, settings) and is pinned by digest', async () => {
    const objects = await template({ values: [CI('direct')] });
    const ksvc = find<KnativeService>(objects, 'Service', 'config-restarter');
    const func = yaml.load(
      readFileSync(path.join(repoRoot, 'functions/config-restarter/func.yaml'), 'utf8'),
    ) as {
      run: { envs: { name: string; value: string }[] };
      deploy: {
        serviceAccountName: string;
        labels: { key: string; value: string }[];
        options: { resources: unknown; scale: { min: number; max: number } };
        healthEndpoints: { liveness: string; readiness: string };
      };
    };
    expect(ksvc.apiVersion).toBe('serving.knative.dev/v1');
    expect(ksvc.spec.template.spec.serviceAccountName).toBe(func.deploy.serviceAccountName);
    for (const { key: label, value } of func.deploy.labels) expect(ksvc.metadata.labels?.[label]).toBe(value);
    const [c] = ksvc.spec.template.spec.containers;
    expect(c?.image).toBe(`ghcr.io/example/config-restarter@${TEST_DIGEST}`);
    expect(c?.resources).toEqual(func.deploy.options.resources);
    expect(c?.livenessProbe?.httpGet?.path).toBe(func.deploy.healthEndpoints.liveness);
    expect(c?.readinessProbe?.httpGet?.path).toBe(func.deploy.healthEndpoints.readiness);
    expect(c?.ports).toEqual([{ containerPort: 8080 }]);
    expect(env(ksvc)).toMatchObject(Object.fromEntries(func.run.envs.map((e) => [e.name, e.value])));
    expect(env(ksvc)).not.toHaveProperty('PORT');
    expect(c?.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(ksvc.spec.template.metadata?.annotations).toEqual({
      'autoscaling.knative.dev/min-scale': String(func.deploy.options.scale.min),
      'autoscaling.knative.dev/max-scale': String(func.deploy.options.scale.max),
    });
  });

  it('the default settings are the function defaults (loadConfig of the rendered env)', async () => {
    const ksvc = find<KnativeService>(
      await template({ values: [CI('direct')] }),
      'Service',
      'config-restarter',
    );
    expect(loadConfig(env(ksvc))).toEqual(loadConfig({}));
  });

  it.each(['argo-rollouts', 'secrets', 'broker'] as const)(
    'ci/%s-values.yaml changes no setting but CONFIG_KINDS (the access is RBAC only)',
    async (set) => {
      const ksvc = find<KnativeService>(await template({ values: [CI(set)] }), 'Service', 'config-restarter');
      const { configKinds, ...rest } = loadConfig(env(ksvc));
      const { configKinds: defaultKinds, ...defaults } = loadConfig({});
      expect(rest).toEqual(defaults);
      expect(configKinds).toEqual(set === 'secrets' ? ['ConfigMap', 'Secret'] : defaultKinds);
    },
  );

  it('settings.authentication.enabled: the function checks tokens for the audience the senders use, from the default senders', async () => {
    const objects = await template({ values: [CI('authentication')] });
    const ksvc = find<KnativeService>(objects, 'Service', 'config-restarter');
    expect(env(ksvc)).toMatchObject({ AUTH_AUDIENCE: AUDIENCE });
    expect(env(ksvc)).not.toHaveProperty('AUTH_ALLOWED_SUBJECTS');
    expect(loadConfig(env(ksvc))).toEqual({
      ...loadConfig({}),
      auth: { audience: AUDIENCE, allowedSubjects: undefined },
    });
    const { objects: kustomize } = await render('knative/authentication');
    for (const [kind, name] of [
      ['ApiServerSource', 'config-restarter-source'],
      ['PingSource', 'config-restarter-resync'],
    ] as const) {
      const sink = (o: K8sObject): unknown => (o as K8sObject & { spec: { sink: unknown } }).spec.sink;
      expect(sink(find(objects, kind, name))).toEqual(sink(find(kustomize, kind, name)));
      expect(sink(find(objects, kind, name))).toMatchObject({ audience: AUDIENCE });
    }
  });

  it('every setting reaches the function as the variable it documents, and the function accepts it', async () => {
    const objects = await template({ values: [CI('all-namespaces')] });
    const ksvc = find<KnativeService>(objects, 'Service', 'config-restarter');
    expect(env(ksvc)).toEqual({
      WATCH_NAMESPACES: '*',
      ANNOTATION_PREFIX: 'restart.example.com',
      MATCH_LABELS: 'app',
      CONFIG_KINDS: 'ConfigMap',
      DRY_RUN: 'true',
      LOG_LEVEL: 'debug',
      WORKLOAD_SELECTOR: 'restart=enabled',
      PATCH_CONCURRENCY: '8',
      API_TIMEOUT_MS: '5000',
      SHUTDOWN_DELAY_MS: '3000',
      SHUTDOWN_TIMEOUT_MS: '20000',
      MIN_RESTART_INTERVAL: '1h30m',
      SETTLE_WINDOW: '2s',
      RESTART_ON_DELETE: 'true',
      MAX_CONCURRENT_ROLLOUTS: '2',
      AUTH_AUDIENCE: AUDIENCE,
      AUTH_ALLOWED_SUBJECTS:
        'system:serviceaccount:helloworld:config-restarter-resync-oidc-sources.knative.dev-pingsource,system:serviceaccount:ci:deliverer',
    });
    expect(loadConfig(env(ksvc))).toMatchObject({
      watchNamespaces: { mode: 'all' },
      annotationPrefix: 'restart.example.com',
      matchLabels: ['app'],
      configKinds: ['ConfigMap'],
      dryRun: true,
      logLevel: 'debug',
      workloadSelector: 'restart=enabled',
      patchConcurrency: 8,
      apiTimeoutMs: 5000,
      shutdownDelayMs: 3000,
      shutdownTimeoutMs: 20000,
      minRestartIntervalMs: 90 * 60_000,
      settleWindowMs: 2000,
      restartOnDelete: true,
      maxConcurrentRollouts: 2,
      auth: {
        audience: AUDIENCE,
        allowedSubjects: [
          'system:serviceaccount:helloworld:config-restarter-resync-oidc-sources.knative.dev-pingsource',
          'system:serviceaccount:ci:deliverer',
        ],
      },
    });
    const [c] = ksvc.spec.template.spec.containers;
    expect(c?.image).toBe(`registry.example.com:5000/platform/config-restarter@${TEST_DIGEST}`);
    expect(ksvc.metadata.labels).not.toHaveProperty('networking.knative.dev/visibility');
    expect(ksvc.spec.template.metadata?.annotations).toEqual({
      'autoscaling.knative.dev/min-scale': '1',
      'autoscaling.knative.dev/max-scale': '5',
    });
    const source = find<K8sObject & { spec: SourceSpec }>(
      objects,
      'ApiServerSource',
      'config-restarter-source',
    );
    // The watch label follows the prefix and is ANDed with source.selector.
    expect(source.spec.resources).toEqual([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        selector: {
          matchLabels: { 'restart.example.com/watch': 'true' },
          matchExpressions: [{ key: 'team', operator: 'In', values: ['a', 'b'] }],
        },
      },
    ]);
    expect(
      find<K8sObject & { spec: { schedule: string } }>(objects, 'PingSource', 'config-restarter-resync').spec
        .schedule,
    ).toBe('CRON_TZ=Europe/Berlin 0 * * * *');
  });

  it('function.create=false (func deploy owns it): no Knative Service, the sources still deliver to config-restarter', async () => {
    const objects = await template({ values: [CI('func')] });
    expect(knativeServices(objects)).toEqual([]);
    const source = find<K8sObject & { spec: SourceSpec }>(
      objects,
      'ApiServerSource',
      'config-restarter-source',
    );
    expect(source.spec.sink.ref).toMatchObject({ kind: 'Service', name: 'config-restarter' });
    find(objects, 'ServiceAccount', 'config-restarter');
  });

  it('source.requireWatchLabel=false drops the watch label from the selector', async () => {
    const objects = await template({
      values: [CI('secrets')],
      set: ['--set', 'source.requireWatchLabel=false'],
    });
    const source = find<K8sObject & { spec: SourceSpec }>(
      objects,
      'ApiServerSource',
      'config-restarter-source',
    );
    expect(source.spec.resources).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap' },
      { apiVersion: 'v1', kind: 'Secret' },
    ]);
  });

  it('refuses a source.selector that contradicts the watch label', async () => {
    await expect(
      template({
        values: [CI('direct')],
        set: ['--set-json', 'source.selector={"matchLabels":{"rolling.restart.controller/watch":"false"}}'],
      }),
    ).rejects.toThrow(/sets rolling\.restart\.controller\/watch to "false" while source\.requireWatchLabel/);
  });

  it('resync.enabled=false leaves the PingSource out', async () => {
    const objects = await template({ values: [CI('direct')], set: ['--set', 'resync.enabled=false'] });
    expect(objects.filter((o) => o.kind === 'PingSource')).toEqual([]);
  });
});

describe.each(['test', 'prod'] as const)('deploy/%s.values.yaml (the deploy workflow)', (e) => {
  it('installs a restarter of its own that hears and touches only its environment', async () => {
    const objects = await template({
      release: `config-restarter-${e}`,
      values: [`deploy/${e}.values.yaml`],
      set: ['--set', `function.image.digest=${TEST_DIGEST}`],
    });
    const name = `config-restarter-${e}`;
    const ksvc = find<KnativeService>(objects, 'Service', name);
    expect(loadConfig(env(ksvc)).workloadSelector).toBe(`env=${e}`);
    const source = find<K8sObject & { spec: SourceSpec }>(objects, 'ApiServerSource', `${name}-source`);
    expect(source.spec.resources).toEqual([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        selector: { matchLabels: { 'rolling.restart.controller/watch': 'true', env: e } },
      },
    ]);
    expect(source.spec.sink.ref.name).toBe(name);
    expect(bindings(objects)).toEqual([
      `RoleBinding/helloworld/${name} -> Role/${name} -> ServiceAccount/helloworld/${name}`,
      `RoleBinding/helloworld/${name}-source -> Role/${name}-source -> ServiceAccount/helloworld/${name}-source`,
    ]);
  });
});

describe('values.schema.json and template checks refuse bad values at render time', () => {
  const DIGEST_SET = `function.image.digest=${TEST_DIGEST}`;
  const cases: [what: string, options: TemplateOptions, message: RegExp][] = [
    ['the default values (no image digest)', {}, /at '\/function\/image\/digest': '' does not match pattern/],
    [
      'a tag instead of a digest',
      { set: ['--set', 'function.image.digest=latest'] },
      /\/function\/image\/digest/,
    ],
    [
      'a tag in the repository',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set',
          'function.image.repository=ghcr.io/x/y:1.0',
        ],
      },
      /\/function\/image\/repository/,
    ],
    [
      'an unknown log level',
      { set: ['--set', `function.image.digest=${TEST_DIGEST}`, '--set', 'settings.logLevel=verbose'] },
      /\/settings\/logLevel/,
    ],
    [
      '"*" mixed with namespaces',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set-json',
          'settings.watchNamespaces=["*","team-a"]',
        ],
      },
      /\/settings\/watchNamespaces/,
    ],
    [
      'an invalid namespace name',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set-json',
          'settings.watchNamespaces=["Team_A"]',
        ],
      },
      /\/settings\/watchNamespaces/,
    ],
    [
      'Secrets without ConfigMaps',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set-json',
          'settings.configKinds=["Secret"]',
        ],
      },
      /\/settings\/configKinds/,
    ],
    [
      'an unknown config kind',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set-json',
          'settings.configKinds=["ConfigMap","Pod"]',
        ],
      },
      /\/settings\/configKinds/,
    ],
    [
      'a string for a boolean',
      { set: ['--set', `function.image.digest=${TEST_DIGEST}`, '--set-string', 'settings.dryRun=yes'] },
      /\/settings\/dryRun/,
    ],
    [
      'a patch concurrency of 0',
      { set: ['--set', `function.image.digest=${TEST_DIGEST}`, '--set', 'settings.patchConcurrency=0'] },
      /\/settings\/patchConcurrency/,
    ],
    [
      'an API timeout beyond 300 s',
      { set: ['--set', `function.image.digest=${TEST_DIGEST}`, '--set', 'settings.apiTimeoutMs=900000'] },
      /\/settings\/apiTimeoutMs/,
    ],
    [
      'an invalid annotation prefix',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set',
          'settings.annotationPrefix=Not_A_Domain',
        ],
      },
      /\/settings\/annotationPrefix/,
    ],
    [
      'an invalid match label key',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set-json',
          'settings.matchLabels=["app env"]',
        ],
      },
      /\/settings\/matchLabels/,
    ],
    [
      'a misspelt key',
      { set: ['--set', `function.image.digest=${TEST_DIGEST}`, '--set', 'settings.watchNamespace=team-a'] },
      /additional properties 'watchNamespace' not allowed/,
    ],
    [
      'a string for source.requireWatchLabel',
      { set: ['--set', DIGEST_SET, '--set-string', 'source.requireWatchLabel=no'] },
      /\/source\/requireWatchLabel/,
    ],
    [
      'a schedule that is not cron',
      { set: ['--set', `function.image.digest=${TEST_DIGEST}`, '--set', 'resync.schedule=hourly'] },
      /\/resync\/schedule/,
    ],
    [
      'an unknown backoff policy',
      {
        set: [
          '--set',
          `function.image.digest=${TEST_DIGEST}`,
          '--set',
          'broker.delivery.backoffPolicy=random',
        ],
      },
      /\/broker\/delivery\/backoffPolicy/,
    ],
    [
      'an invalid minimum restart interval',
      { set: ['--set', DIGEST_SET, '--set', 'settings.minRestartInterval=5min'] },
      /at '\/settings\/minRestartInterval'[^]*does not match pattern/,
    ],
    [
      'a minimum restart interval without a unit',
      { set: ['--set', DIGEST_SET, '--set', 'settings.minRestartInterval=300'] },
      /at '\/settings\/minRestartInterval'/,
    ],
    [
      'a negative minimum restart interval',
      { set: ['--set', DIGEST_SET, '--set', 'settings.minRestartInterval=-5m'] },
      /at '\/settings\/minRestartInterval'/,
    ],
    [
      'a settle window without a unit',
      { set: ['--set', DIGEST_SET, '--set', 'settings.settleWindow=2'] },
      /at '\/settings\/settleWindow'/,
    ],
    [
      'a settle window in words',
      { set: ['--set', DIGEST_SET, '--set', 'settings.settleWindow=2 seconds'] },
      /at '\/settings\/settleWindow'[^]*does not match pattern/,
    ],
    [
      'a string for restartOnDelete',
      { set: ['--set', DIGEST_SET, '--set-string', 'settings.restartOnDelete=yes'] },
      /at '\/settings\/restartOnDelete': got string, want boolean/,
    ],
    [
      'allowed subjects while authentication is off',
      {
        set: [
          '--set',
          DIGEST_SET,
          '--set-json',
          'settings.authentication.allowedSubjects=["system:serviceaccount:a:b"]',
        ],
      },
      /at '\/settings\/authentication\/allowedSubjects'/,
    ],
    [
      'an allowed subject that is no ServiceAccount username',
      {
        set: [
          '--set',
          DIGEST_SET,
          '--set',
          'settings.authentication.enabled=true',
          '--set-json',
          'settings.authentication.allowedSubjects=["system:serviceaccount:Team_A:x"]',
        ],
      },
      /at '\/settings\/authentication\/allowedSubjects\/0'/,
    ],
    [
      'two subjects in one entry',
      {
        set: [
          '--set',
          DIGEST_SET,
          '--set',
          'settings.authentication.enabled=true',
          '--set-json',
          'settings.authentication.allowedSubjects=["alice,bob"]',
        ],
      },
      /at '\/settings\/authentication\/allowedSubjects\/0'/,
    ],
    [
      "authentication under another name without allowed subjects (the function's defaults would not fit)",
      {
        set: [
          '--set',
          DIGEST_SET,
          '--set',
          'settings.authentication.enabled=true',
          '--set',
          'name=restarter',
        ],
      },
      /settings\.authentication\.allowedSubjects is required when name is not config-restarter/,
    ],
    [
      'a misspelt argoRollouts key',
      { set: ['--set', DIGEST_SET, '--set', 'argoRollouts.enable=true'] },
      /at '\/argoRollouts': additional properties 'enable' not allowed/,
    ],
    [
      'min scale above max scale',
      { set: ['--set', `function.image.digest=${TEST_DIGEST}`, '--set', 'function.scale.min=5'] },
      /function\.scale\.min \(5\) must not exceed function\.scale\.max \(3\)/,
    ],
  ];

  it.each(cases)('%s', async (_what, options, message) => {
    const result = await templateRaw(options);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
  });
});
