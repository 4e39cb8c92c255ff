import { watchLabelKey } from '../../functions/config-restarter/src/opt-in.js';
import { find, knativeServices, render, type K8sObject } from './kustomize.js';

/** ANNOTATION_PREFIX's default, which the manifests are written for. */
const DEFAULT_PREFIX = 'rolling.restart.controller';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Role extends K8sObject {
  rules: Rule[];
}
interface RoleBinding extends K8sObject {
  roleRef: { apiGroup: string; kind: string; name: string };
  subjects: { kind: string; name: string; namespace?: string }[];
}
interface Ref {
  apiVersion: string;
  kind: string;
  name: string;
}
interface ApiServerSource extends K8sObject {
  spec: {
    mode: string;
    serviceAccountName: string;
    resources: { apiVersion: string; kind: string; selector?: unknown }[];
    sink: { ref: Ref; audience?: string };
    namespaceSelector?: unknown;
  };
}
interface PingSource extends K8sObject {
  spec: { schedule: string; contentType: string; data: string; sink: { ref: Ref; audience?: string } };
}
interface Trigger extends K8sObject {
  spec: {
    broker: string;
    filters: unknown[];
    subscriber: { ref: Ref; audience?: string };
    delivery: { retry: number; backoffPolicy: string; backoffDelay: string; deadLetterSink: { ref: Ref } };
  };
}

const KSVC = { apiVersion: 'serving.knative.dev/v1', kind: 'Service', name: 'config-restarter' };
const BROKER = { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'config-events' };
/** OIDC audience the senders name for the function (a Knative Service announces none). */
const AUDIENCE = 'serving.knative.dev/service/helloworld/config-restarter';
/** A sink as the sources hold it: the function with its audience; a Broker announces its own. */
const sinkOf = (ref: Ref): { ref: Ref; audience?: string } =>
  ref === KSVC ? { ref, audience: AUDIENCE } : { ref };

/** One row per (role, api group, resource): the exact verbs granted. */
type Grant = [role: string, apiGroup: string, resource: string, verbs: string[]];

const BASE_GRANTS: Grant[] = [
  ['config-restarter', '', 'configmaps', ['get', 'list']],
  ['config-restarter', 'apps', 'deployments', ['get', 'list', 'watch', 'patch']],
  ['config-restarter', 'apps', 'statefulsets', ['get', 'list', 'watch', 'patch']],
  ['config-restarter', 'apps', 'daemonsets', ['get', 'list', 'watch', 'patch']],
  ['config-restarter', 'serving.knative.dev', 'services', ['get', 'list', 'watch', 'patch']],
  ['config-restarter', 'batch', 'cronjobs', ['get', 'list', 'watch', 'patch']],
  ['config-restarter', '', 'events', ['create']],
  ['config-restarter-source', '', 'configmaps', ['get', 'list', 'watch']],
  ['config-restarter-source', 'apps', 'deployments', ['get', 'list', 'watch']],
  ['config-restarter-source', 'apps', 'statefulsets', ['get', 'list', 'watch']],
  ['config-restarter-source', 'apps', 'daemonsets', ['get', 'list', 'watch']],
  ['config-restarter-source', 'serving.knative.dev', 'services', ['get', 'list', 'watch']],
];
const ROLLOUT_GRANTS: Grant[] = [
  ['config-restarter-rollouts', 'argoproj.io', 'rollouts', ['get', 'list', 'watch', 'patch']],
];
const SECRET_GRANTS: Grant[] = [
  ['config-restarter-secrets', '', 'secrets', ['get', 'list']],
  ['config-restarter-source-secrets', '', 'secrets', ['get', 'list', 'watch']],
];

/** Flattens the Roles of a render into sorted grant rows. */
function grants(objects: readonly K8sObject[]): Grant[] {
  const rows: Grant[] = [];
  for (const role of objects.filter((o): o is Role => o.kind === 'Role')) {
    for (const rule of role.rules) {
      expect(rule.resourceNames).toBeUndefined();
      for (const group of rule.apiGroups) {
        for (const resource of rule.resources)
          rows.push([role.metadata.name, group, resource, [...rule.verbs].sort()]);
      }
    }
  }
  return rows.sort((a, b) => a.slice(0, 3).join('/').localeCompare(b.slice(0, 3).join('/')));
}

const sorted = (rows: Grant[]): Grant[] =>
  rows
    .map(([r, g, res, v]): Grant => [r, g, res, [...v].sort()])
    .sort((a, b) => a.slice(0, 3).join('/').localeCompare(b.slice(0, 3).join('/')));

/** RoleBinding name -> [role, service account]. */
const BASE_BINDINGS: Record<string, [string, string]> = {
  'config-restarter': ['config-restarter', 'config-restarter'],
  'config-restarter-source': ['config-restarter-source', 'config-restarter-source'],
};
const SECRET_BINDINGS: Record<string, [string, string]> = {
  'config-restarter-secrets': ['config-restarter-secrets', 'config-restarter'],
  'config-restarter-source-secrets': ['config-restarter-source-secrets', 'config-restarter-source'],
};
const ROLLOUT_BINDINGS: Record<string, [string, string]> = {
  'config-restarter-rollouts': ['config-restarter-rollouts', 'config-restarter'],
};

const VARIANTS = [
  { dir: 'knative', sink: KSVC, secrets: false, broker: false, rollouts: false, auth: false },
  { dir: 'knative/broker', sink: BROKER, secrets: false, broker: true, rollouts: false, auth: false },
  { dir: 'knative/secrets', sink: KSVC, secrets: true, broker: false, rollouts: false, auth: false },
  { dir: 'knative/argo-rollouts', sink: KSVC, secrets: false, broker: false, rollouts: true, auth: false },
  { dir: 'knative/authentication', sink: KSVC, secrets: false, broker: false, rollouts: false, auth: true },
] as const;

/**
 * What every ApiServerSource selects on: the opt-in label the function also accepts (opt-in.ts), for the default
 * ANNOTATION_PREFIX. The API server filters with it, so writes to unlabelled objects produce no event.
 */
const WATCH_SELECTOR = { matchLabels: { [watchLabelKey(DEFAULT_PREFIX)]: 'true' } };

describe.each(VARIANTS)('$dir', ({ dir, sink, secrets, broker, rollouts, auth }) => {
  let objects: K8sObject[];

  beforeAll(async () => {
    ({ objects } = await render(dir));
  });

  it('holds the namespace helloworld and both ServiceAccounts', () => {
    find(objects, 'Namespace', 'helloworld');
    find(objects, 'ServiceAccount', 'config-restarter');
    find(objects, 'ServiceAccount', 'config-restarter-source');
  });

  it('grants exactly the listed verbs (table)', () => {
    // knative/authentication adds only a ClusterRole and its binding (test/manifests/authentication.test.ts).
    expect(objects.filter((o) => o.kind.startsWith('Cluster')).length).toBe(auth ? 2 : 0);
    expect(grants(objects)).toEqual(
      sorted([...BASE_GRANTS, ...(secrets ? SECRET_GRANTS : []), ...(rollouts ? ROLLOUT_GRANTS : [])]),
    );
  });

  it('binds each Role to its ServiceAccount only', () => {
    const bindings = objects.filter((o): o is RoleBinding => o.kind === 'RoleBinding');
    const expectedBindings = {
      ...BASE_BINDINGS,
      ...(secrets ? SECRET_BINDINGS : {}),
      ...(rollouts ? ROLLOUT_BINDINGS : {}),
    };
    expect(
      Object.fromEntries(bindings.map((b) => [b.metadata.name, [b.roleRef.name, b.subjects[0]?.name]])),
    ).toEqual(expectedBindings);
    for (const b of bindings) {
      expect(b.roleRef).toMatchObject({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role' });
      expect(b.subjects).toEqual([
        { kind: 'ServiceAccount', name: expect.any(String) as string, namespace: 'helloworld' },
      ]);
    }
  });

  it('watches ConfigMaps (and Secrets when opted in) in Reference mode, selecting on the watch label', () => {
    const sources = objects.filter((o) => o.kind === 'ApiServerSource');
    expect(sources.map((o) => o.metadata.name).sort()).toEqual([
      'config-restarter-source',
      'config-restarter-workloads',
    ]);
    const source = find<ApiServerSource>(objects, 'ApiServerSource', 'config-restarter-source');
    expect(source.apiVersion).toBe('sources.knative.dev/v1');
    expect(source.spec.mode).toBe('Reference');
    expect(source.spec.serviceAccountName).toBe('config-restarter-source');
    expect(source.spec.namespaceSelector).toBeUndefined();
    expect(source.spec.resources).toEqual([
      { apiVersion: 'v1', kind: 'ConfigMap', selector: WATCH_SELECTOR },
      ...(secrets ? [{ apiVersion: 'v1', kind: 'Secret', selector: WATCH_SELECTOR }] : []),
    ]);
    expect(source.spec.sink).toEqual(sinkOf(sink));
  });

  it('follows the opted-in workloads (Deployments, StatefulSets, DaemonSets, Knative Services) for outcomes', () => {
    const source = find<ApiServerSource>(objects, 'ApiServerSource', 'config-restarter-workloads');
    expect(source.spec.mode).toBe('Reference');
    expect(source.spec.serviceAccountName).toBe('config-restarter-source');
    expect(source.spec.namespaceSelector).toBeUndefined();
    expect(source.spec.resources).toEqual([
      { apiVersion: 'apps/v1', kind: 'Deployment', selector: WATCH_SELECTOR },
      { apiVersion: 'apps/v1', kind: 'StatefulSet', selector: WATCH_SELECTOR },
      { apiVersion: 'apps/v1', kind: 'DaemonSet', selector: WATCH_SELECTOR },
      { apiVersion: 'serving.knative.dev/v1', kind: 'Service', selector: WATCH_SELECTOR },
    ]);
    expect(source.spec.sink).toEqual(sinkOf(sink));
  });

  it('resyncs every 10 minutes with a JSON ping', () => {
    const ping = find<PingSource>(objects, 'PingSource', 'config-restarter-resync');
    expect(ping.spec).toEqual({
      schedule: '*/10 * * * *',
      contentType: 'application/json',
      data: '{"reason":"resync"}',
      sink: sinkOf(sink),
    });
    expect(JSON.parse(ping.spec.data)).toEqual({ reason: 'resync' });
  });

  it(broker ? 'adds the Broker and the Trigger with delivery' : 'has no Broker or Trigger', () => {
    const eventing = objects.filter((o) => o.apiVersion.startsWith('eventing.knative.dev/'));
    if (!broker) {
      expect(eventing).toEqual([]);
      return;
    }
    find(objects, 'Broker', 'config-events');
    const trigger = find<Trigger>(objects, 'Trigger', 'config-restarter');
    expect(trigger.spec.broker).toBe('config-events');
    expect(trigger.spec.subscriber).toEqual({ ref: KSVC, audience: AUDIENCE });
    expect(trigger.spec.filters).toEqual([
      {
        any: [
          { prefix: { type: 'dev.knative.apiserver.ref.' } },
          { exact: { type: 'dev.knative.sources.ping' } },
        ],
      },
    ]);
    const { deadLetterSink, ...delivery } = trigger.spec.delivery;
    expect(delivery).toEqual({ retry: 10, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S' });
    // The dead-letter sink is deployed by the same kustomization.
    expect(deadLetterSink.ref.kind).toBe('Service');
    expect(knativeServices(objects).map((s) => s.metadata.name)).toEqual([deadLetterSink.ref.name]);
  });
});

describe('dead-letter Knative Service of knative/broker', () => {
  it('is cluster-local, hardened and has an image', async () => {
    const { objects } = await render('knative/broker');
    const [ksvc] = knativeServices(objects);
    expect(ksvc?.metadata.labels).toMatchObject({ 'networking.knative.dev/visibility': 'cluster-local' });
    const [c] = ksvc?.spec.template.spec.containers ?? [];
    expect(c?.image).toMatch(/^gcr\.io\/knative-releases\/knative\.dev\/eventing\/cmd\/event_display/);
    expect(c?.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c?.resources?.limits).toBeDefined();
  });
});
