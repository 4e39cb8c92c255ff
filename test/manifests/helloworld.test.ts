import {
  configMapRefs,
  find,
  knativeServices,
  render,
  type K8sObject,
  type KnativeService,
} from './kustomize.js';

const ENVS = ['test', 'prod'] as const;
type Env = (typeof ENVS)[number];

const PREFIX = 'rolling.restart.controller';
const IMAGE = 'ghcr.io/example/helloworld:0.1.0';

const expected: Record<Env, { minScale: string; maxScale?: string }> = {
  test: { minScale: '0' },
  prod: { minScale: '2', maxScale: '10' },
};

interface ConfigMap extends K8sObject {
  data: Record<string, string>;
}

describe.each(ENVS)('kustomize/overlays/%s', (env) => {
  let objects: K8sObject[];
  let ksvc: KnativeService;
  let configMap: ConfigMap;

  beforeAll(async () => {
    ({ objects } = await render(`kustomize/overlays/${env}`));
    ksvc = find<KnativeService>(objects, 'Service', `helloworld-${env}`);
    configMap = find<ConfigMap>(objects, 'ConfigMap', `helloworld-config-${env}`);
  });

  it('holds exactly the ksvc and its ConfigMap', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      `ConfigMap/helloworld-config-${env}`,
      `Service/helloworld-${env}`,
    ]);
    expect(knativeServices(objects)).toEqual([ksvc]);
  });

  it('labels every object and the Revision template with env and app', () => {
    for (const o of objects) expect(o.metadata.labels).toMatchObject({ env, app: 'helloworld' });
    expect(ksvc.spec.template.metadata?.labels).toEqual({ env, app: 'helloworld' });
  });

  it('has no spec.selector on the ksvc', () => {
    expect(ksvc.spec).not.toHaveProperty('selector');
  });

  it('refers only to its own ConfigMap, everywhere', () => {
    const refs = configMapRefs(ksvc);
    expect(refs.length).toBeGreaterThanOrEqual(2);
    for (const ref of refs) {
      expect({ where: ref.where, name: ref.name }).toEqual({
        where: ref.where,
        name: configMap.metadata.name,
      });
      if (ref.key !== undefined) expect(Object.keys(configMap.data)).toContain(ref.key);
    }
  });

  it('opts the ConfigMap (by the label the ApiServerSource selects on, and the annotation) and the ksvc into restarts', () => {
    expect(configMap.metadata.labels).toEqual({ env, app: 'helloworld', [`${PREFIX}/watch`]: 'true' });
    expect(configMap.metadata.annotations).toEqual({ [`${PREFIX}/triggerRestart`]: 'true' });
    expect(ksvc.metadata.annotations).toEqual({ [`${PREFIX}/restartOnTrigger`]: 'true' });
  });

  it('keeps a stable ConfigMap name (no hash suffix) with MESSAGE and ENVIRONMENT', () => {
    expect(configMap.metadata.name).toBe(`helloworld-config-${env}`);
    expect(configMap.data).toEqual({ MESSAGE: expect.stringMatching(/\S/) as string, ENVIRONMENT: env });
  });

  it('is cluster-local', () => {
    expect(ksvc.metadata.labels).toMatchObject({ 'networking.knative.dev/visibility': 'cluster-local' });
  });

  it('reads ENV_MESSAGE from the ConfigMap and MESSAGE_FILE from a read-only whole-ConfigMap mount', () => {
    const [container] = ksvc.spec.template.spec.containers;
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e]));
    expect(env.ENV_MESSAGE?.valueFrom?.configMapKeyRef).toEqual({
      name: configMap.metadata.name,
      key: 'MESSAGE',
    });
    const mounts = container?.volumeMounts ?? [];
    expect(mounts).toHaveLength(1);
    const [mount] = mounts;
    expect(mount).toEqual({ name: 'config', mountPath: '/etc/helloworld', readOnly: true });
    expect(env.MESSAGE_FILE?.value).toBe(`${mount?.mountPath}/MESSAGE`);
    expect(ksvc.spec.template.spec.volumes).toEqual([
      { name: 'config', configMap: { name: configMap.metadata.name } },
    ]);
  });

  it('hardens the container', () => {
    const { containers } = ksvc.spec.template.spec;
    expect(containers).toHaveLength(1);
    const [c] = containers;
    expect(c?.image).toBe(IMAGE);
    expect(c?.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c?.securityContext?.capabilities?.add).toBeUndefined();
    for (const kind of ['requests', 'limits'] as const) {
      expect(c?.resources?.[kind]).toEqual({
        cpu: expect.any(String) as string,
        memory: expect.any(String) as string,
      });
    }
    // Knative probes the serving port itself and rejects a port number here.
    expect(c?.livenessProbe?.httpGet).toEqual({ path: '/health/liveness' });
    expect(c?.readinessProbe?.httpGet).toEqual({ path: '/health/readiness' });
    expect(c?.ports).toEqual([{ name: 'http1', containerPort: 8080 }]);
    // PORT is reserved by Knative.
    expect((c?.env ?? []).map((e) => e.name)).not.toContain('PORT');
  });

  it('scales as the environment requires', () => {
    const annotations = ksvc.spec.template.metadata?.annotations ?? {};
    expect(annotations['autoscaling.knative.dev/min-scale']).toBe(expected[env].minScale);
    if (expected[env].maxScale !== undefined) {
      expect(annotations['autoscaling.knative.dev/max-scale']).toBe(expected[env].maxScale);
    }
  });
});

describe('test and prod together', () => {
  it('never share a kind/name in the one namespace', async () => {
    const all = [
      ...(await render('kustomize/overlays/test')).objects,
      ...(await render('kustomize/overlays/prod')).objects,
    ];
    const ids = all.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('differ in message, scale and resources but share the image', async () => {
    const [test, prod] = await Promise.all(ENVS.map((env) => render(`kustomize/overlays/${env}`)));
    const ksvcs = [test, prod].map((r) => knativeServices(r?.objects ?? [])[0]);
    const cms = [test, prod].map((r) => r?.objects.find((o) => o.kind === 'ConfigMap') as ConfigMap);
    expect(cms[0]?.data.MESSAGE).not.toBe(cms[1]?.data.MESSAGE);
    const resources = ksvcs.map((k) => k?.spec.template.spec.containers[0]?.resources);
    expect(resources[0]).not.toEqual(resources[1]);
    expect(ksvcs.map((k) => k?.spec.template.spec.containers[0]?.image)).toEqual([IMAGE, IMAGE]);
  });
});
