/**
 * The project's manifests against the real Knative Serving and Eventing webhooks (defaulting + validation, reached by
 * the API server like in a cluster) and the Serving controller: everything applies server-side and every Knative
 * Service gets its Revision, and what Knative refuses the function does not send.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { decideForWorkload } from '../../functions/config-restarter/src/decide.js';
import type { ConfigChange } from '../../functions/config-restarter/src/decision-types.js';
import { summarizeWorkload } from '../../functions/config-restarter/src/workload-summary.js';
import type { KubeObject } from '../../functions/config-restarter/src/model.js';
import { WORKLOAD_KINDS } from '../../functions/config-restarter/src/workload-kinds.js';
import { apiServerSourceRequest } from '../../cluster/apiserver-event.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import {
  KubeRequestError,
  kubeRequest,
  readKubeconfig,
  writeServiceAccountKubeconfig,
  type KubeTarget,
} from '../../cluster/kube.js';
import {
  applyKustomizationIn,
  deleteNamespace,
  eventually,
  knativeService,
  optedInConfigMap,
  PATHS,
  readWorkload,
  rolloutsOf,
} from '../../cluster/objects.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';
import { funcDeployService } from '../../cluster/func-service.js';

jest.setTimeout(60_000);

const OPT_IN = 'rolling.restart.controller/restartOnTrigger';
const RESTART = 'rolling.restart.controller/restartTimestamp';
const CREATOR = 'serving.knative.dev/creator';

let admin: KubeTarget;
const namespaces: string[] = [];

/** A fresh namespace, deleted after the file (the namespace controller runs). */
async function freshNamespace(prefix: string): Promise<string> {
  const ns = uniqueName(prefix);
  namespaces.push(ns);
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: ns } });
  return ns;
}

/** Waits until the Serving controller made Revision `name` of Knative Service `ksvc`. */
async function revisionOf(ns: string, ksvc: string, name: string): Promise<void> {
  await eventually(`Revision ${name}`, async () =>
    (await rolloutsOf(admin, PATHS.revisions(ns), `Configuration/${ksvc}`)).some((r) => r.name === name)
      ? true
      : undefined,
  );
}

beforeAll(() => {
  admin = adminTarget();
});

afterAll(async () => {
  for (const ns of namespaces) await deleteNamespace(admin, ns);
});

/** The Eventing kinds of the manifests, with the creator annotation their mutating webhook sets. */
const EVENTING_KINDS = [
  ['apiserversources', 'sources.knative.dev/v1', 'sources.knative.dev/creator'],
  ['pingsources', 'sources.knative.dev/v1', 'sources.knative.dev/creator'],
  ['brokers', 'eventing.knative.dev/v1', 'eventing.knative.dev/creator'],
  ['triggers', 'eventing.knative.dev/v1', 'eventing.knative.dev/creator'],
] as const;

interface Listed {
  items: { metadata: { name: string; annotations?: Record<string, string> } }[];
}

describe('every manifest passes the real Knative webhooks with server-side apply', () => {
  const sources = [
    'apiserversources/config-restarter-source',
    'apiserversources/config-restarter-workloads',
    'pingsources/config-restarter-resync',
  ];
  it.each([
    ['knative', [], sources],
    [
      'knative/broker',
      ['config-restarter-dead-letter'],
      [...sources, 'brokers/config-events', 'triggers/config-restarter'],
    ],
    ['knative/secrets', [], sources],
    ['kustomize/overlays/test', ['helloworld-test'], []],
    ['kustomize/overlays/prod', ['helloworld-prod'], []],
  ])('%s (Knative Services %j, Eventing objects %j)', async (dir, ksvcs, eventing) => {
    // A namespace per variant: they describe the same objects differently and must not overwrite each other.
    const ns = await freshNamespace('admission');
    const output = await applyKustomizationIn(adminKubeconfigPath(), dir, ns);
    expect(output).toMatch(/serverside-applied/);
    expect(output).not.toMatch(/error|warning|denied/i);
    const { body } = await kubeRequest<Listed>(admin, 'GET', PATHS.ksvcs(ns));
    expect(body.items.map((s) => s.metadata.name).sort()).toEqual([...ksvcs].sort());
    for (const ksvc of body.items) {
      // Set by the mutating webhook: the object really went through it.
      expect(ksvc.metadata.annotations?.[CREATOR]).toBe('admin');
      await revisionOf(ns, ksvc.metadata.name, `${ksvc.metadata.name}-00001`);
    }
    const found: string[] = [];
    for (const [plural, apiVersion, creator] of EVENTING_KINDS) {
      const list = await kubeRequest<Listed>(admin, 'GET', `/apis/${apiVersion}/namespaces/${ns}/${plural}`);
      for (const item of list.body.items) {
        found.push(`${plural}/${item.metadata.name}`);
        expect({
          object: `${plural}/${item.metadata.name}`,
          creator: item.metadata.annotations?.[creator],
        }).toEqual({
          object: `${plural}/${item.metadata.name}`,
          creator: 'admin',
        });
      }
    }
    expect(found.sort()).toEqual([...eventing].sort());
  });

  it('the function, as `func deploy` creates it (after the plumbing of knative/)', async () => {
    const ns = await freshNamespace('func-deploy');
    await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
    const service = funcDeployService(
      `ghcr.io/example/config-restarter@sha256:${'0123456789abcdef'.repeat(4)}`,
    );
    const { body } = await kubeRequest<{ metadata: { annotations: Record<string, string> } }>(
      admin,
      'PATCH',
      `${PATHS.ksvcs(ns)}/config-restarter?fieldManager=func&force=true`,
      service,
      { contentType: 'application/apply-patch+yaml' },
    );
    expect(body.metadata.annotations[CREATOR]).toBe('admin');
    await revisionOf(ns, 'config-restarter', 'config-restarter-00001');
    const deployment = await eventually('the Revision Deployment', () =>
      kubeRequest<{
        spec: { template: { spec: { serviceAccountName: string; containers: { name: string }[] } } };
      }>(admin, 'GET', `${PATHS.deployments(ns)}/config-restarter-00001-deployment`),
    );
    expect(deployment.body.spec.template.spec.serviceAccountName).toBe('config-restarter');
    expect(deployment.body.spec.template.spec.containers.map((c) => c.name)).toEqual([
      'user-container',
      'queue-proxy',
    ]);
  });

  it('denies the readinessProbe helloworld used to have (failureThreshold without periodSeconds)', async () => {
    const ns = await freshNamespace('probe');
    const denied = await kubeRequest(
      admin,
      'POST',
      `${PATHS.ksvcs(ns)}?dryRun=All`,
      knativeService('probe', {
        labels: {},
        optIn: false,
        podSpec: {
          containers: [
            {
              image: 'registry.example/app:1',
              readinessProbe: { httpGet: { path: '/' }, failureThreshold: 3 },
            },
          ],
        },
      }),
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(denied).toBeInstanceOf(KubeRequestError);
    expect((denied as KubeRequestError).status).toBe(400);
    expect((denied as KubeRequestError).message).toContain(
      'failureThreshold is disallowed when periodSeconds is zero',
    );
  });
});

it('the real Eventing webhook denies a PingSource schedule it cannot parse', async () => {
  const ns = await freshNamespace('schedule');
  const denied = await kubeRequest(
    admin,
    'POST',
    `/apis/sources.knative.dev/v1/namespaces/${ns}/pingsources`,
    {
      apiVersion: 'sources.knative.dev/v1',
      kind: 'PingSource',
      metadata: { name: 'every-now-and-then' },
      spec: { schedule: 'every now and then', sink: { uri: 'http://config-restarter.helloworld.svc' } },
    },
  ).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(denied).toBeInstanceOf(KubeRequestError);
  expect((denied as KubeRequestError).status).toBe(400);
  expect((denied as KubeRequestError).message).toContain('spec.schedule');
});

describe('a Knative Service with a fixed revision name', () => {
  const labels = { app: 'fixed', env: 'test' };
  let ns: string;
  let fn: FunctionProcess;
  let fnKubeconfig: string;

  beforeAll(async () => {
    ns = await freshNamespace('fixed-name');
    await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
    const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), ns);
    fnKubeconfig = path.join(dir, 'config-restarter.kubeconfig');
    await writeServiceAccountKubeconfig(adminKubeconfigPath(), fnKubeconfig, ns, 'config-restarter');
    fn = await startFunction({
      adminKubeconfig: adminKubeconfigPath(),
      namespace: ns,
      logFile: path.join(dir, 'config-restarter.log'),
    });
    await kubeRequest(
      admin,
      'POST',
      PATHS.configmaps(ns),
      optedInConfigMap('fixed-config', labels, { A: '1' }),
    );
    await kubeRequest(
      admin,
      'POST',
      PATHS.ksvcs(ns),
      knativeService('fixed', { labels, optIn: true, templateMeta: { name: 'fixed-v1' } }),
    );
    await revisionOf(ns, 'fixed', 'fixed-v1');
  });

  afterAll(async () => {
    expect(await fn?.stop()).toBe(0);
  });

  it('is skipped by the function, with the reason', async () => {
    const wire = apiServerSourceRequest({
      action: 'update',
      mode: 'Reference',
      object: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fixed-config', namespace: ns } },
    });
    type Reply = {
      decisions: { workload: { kind: string; name: string }; action: string; reason: string }[];
    };
    // The Serving controller makes the Revision's Deployment a moment after the Revision, and the function's
    // warm index sees it through its watch: ask again (a skip writes nothing) until both are tied.
    const reply = await eventually('both workloads tied', async () => {
      const res = await fetch(fn.url, { method: 'POST', headers: wire.headers, body: wire.body });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Reply;
      return body.decisions.length === 2 ? body : undefined;
    });
    // The Revision's Deployment carries the same labels: tied too, and skipped as Knative's own.
    expect(reply.decisions.map((d) => [d.workload.kind, d.workload.name, d.action, d.reason])).toEqual([
      [
        'Deployment',
        'fixed-v1-deployment',
        'skip',
        'owned by Knative Revision fixed-v1; restarted through Knative Service fixed, never directly',
      ],
      [
        'Service',
        'fixed',
        'skip',
        'spec.template.metadata.name is fixed to "fixed-v1"; Knative refuses a new Revision under the same name',
      ],
    ]);
    const ksvc = await readWorkload(admin, PATHS.ksvcs(ns), 'fixed');
    expect(ksvc.generation).toBe(1);
    expect(ksvc.templateAnnotations[RESTART]).toBeUndefined();
  });

  it('the real webhook denies the annotation-only patch the function would otherwise send', async () => {
    const kind = WORKLOAD_KINDS.find((k) => k.kind === 'Service')!;
    const change: ConfigChange = {
      ref: { kind: 'ConfigMap', namespace: ns, name: 'fixed-config' },
      hash: 'sha256:changed',
      labels,
      trigger: 'update',
    };
    const settings = { annotationPrefix: 'rolling.restart.controller', matchLabels: ['app', 'env'] };
    const asFunction = readKubeconfig(fnKubeconfig);
    /** The same decision without the per-kind check: a restart patch of the template annotations. */
    const patchAsTheFunctionWould = async (): Promise<unknown> => {
      const { body: object } = await kubeRequest<KubeObject>(admin, 'GET', `${PATHS.ksvcs(ns)}/fixed`);
      const summary = summarizeWorkload(settings, { ...kind, unpatchableReason: () => undefined }, object);
      const decision = decideForWorkload(settings, summary, [change], new Date());
      expect(decision?.action).toBe('restart');
      return kubeRequest(
        asFunction,
        'PATCH',
        `${PATHS.ksvcs(ns)}/fixed?fieldManager=config-restarter`,
        decision?.patch,
        {
          contentType: 'application/merge-patch+json',
        },
      ).then(
        () => undefined,
        (error: unknown) => error,
      );
    };
    // The patch carries the resourceVersion it was decided on; the Serving controller may write the status in
    // between (409): read again and decide again, as the function does.
    const conflict = (e: unknown): boolean => e instanceof KubeRequestError && e.status === 409;
    let denied = await patchAsTheFunctionWould();
    for (let attempt = 1; attempt < 5 && conflict(denied); attempt++)
      denied = await patchAsTheFunctionWould();
    expect(denied).toBeInstanceOf(KubeRequestError);
    expect((denied as KubeRequestError).status).toBe(400);
    expect((denied as KubeRequestError).message).toContain('without a name change');
    expect((await rolloutsOf(admin, PATHS.revisions(ns), 'Configuration/fixed')).map((r) => r.name)).toEqual([
      'fixed-v1',
    ]);
  });
});

it('opted-in templates keep the opt-in on the Revision Deployments (the function skips them as Knative-owned)', async () => {
  const ns = await freshNamespace('owned');
  await kubeRequest(
    admin,
    'POST',
    PATHS.ksvcs(ns),
    knativeService('owned', {
      labels: { app: 'a' },
      optIn: true,
      templateMeta: { annotations: { [OPT_IN]: 'true' } },
    }),
  );
  const deployment = await eventually('the Revision Deployment', () =>
    readWorkload(admin, PATHS.deployments(ns), 'owned-00001-deployment'),
  );
  expect(deployment.annotations[OPT_IN]).toBe('true');
  const kind = WORKLOAD_KINDS.find((k) => k.kind === 'Deployment')!;
  const { body } = await kubeRequest<KubeObject>(
    admin,
    'GET',
    `${PATHS.deployments(ns)}/owned-00001-deployment`,
  );
  expect(kind.unpatchableReason(body)).toBe(
    'owned by Knative Revision owned-00001; restarted through Knative Service owned, never directly',
  );
});
