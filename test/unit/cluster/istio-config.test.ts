import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import {
  INGRESS_GATEWAY,
  ISTIOD_PORTS,
  ISTIO_NAMESPACE,
  fillIstioPlaceholders,
  istiodArgs,
  istiodEnv,
  type IstioManifest,
} from '../../../cluster/istio-config.js';
import { NODE_NETWORK } from '../../../cluster/node-network.js';
import { REPO_ROOT } from '../../../cluster/util.js';

interface Obj extends IstioManifest {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: IstioManifest['spec'] & {
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    ports?: { name: string; port: number; targetPort?: number }[];
  };
  webhooks?: {
    clientConfig: { service: { name: string; namespace: string; path: string } };
    failurePolicy: string;
  }[];
}

function load(...file: string[]): Obj[] {
  return yaml.loadAll(readFileSync(path.join(REPO_ROOT, ...file), 'utf8')) as Obj[];
}
const istiod = load('cluster', 'system', 'istio', 'istiod.yaml');
const gateway = load('cluster', 'system', 'istio', 'ingressgateway.yaml');
const find = (objects: Obj[], kind: string, name: string): Obj => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};

describe('istiod', () => {
  it('keeps its debug server off the autoscaler port and its other ports upstream', () => {
    const args = istiodArgs('/c/kubeconfig');
    expect(args[0]).toBe('discovery');
    expect(args).toContain('--kubeconfig=/c/kubeconfig');
    expect(args).toContain(`--httpAddr=127.0.0.1:${ISTIOD_PORTS.http}`);
    expect(args.join(' ')).not.toContain(':8080');
    expect(args).toEqual(
      expect.arrayContaining(['--grpcAddr=:15010', '--secureGRPCAddr=:15012', '--httpsAddr=:15017']),
    );
  });

  it('turns off the Istio-only Envoy extensions upstream Envoy rejects', () => {
    expect(istiodEnv()).toMatchObject({
      POD_NAMESPACE: ISTIO_NAMESPACE,
      REVISION: 'default',
      PILOT_ENABLE_METADATA_EXCHANGE: 'false',
      PILOT_ENABLE_ALPN_FILTER: 'false',
    });
  });

  it('has a mesh config with no default metrics provider (no istio.stats filter)', () => {
    const mesh = yaml.load(find(istiod, 'ConfigMap', 'istio').data?.mesh ?? '') as Record<string, unknown>;
    expect(mesh.defaultProviders).toBeUndefined();
    expect(mesh).toMatchObject({
      defaultConfig: { discoveryAddress: `istiod.${ISTIO_NAMESPACE}.svc:15012` },
    });
  });

  it('is reached at the node IP, webhook port 443 -> 15017, by both validating webhooks', () => {
    const endpoints = find(istiod, 'Endpoints', 'istiod');
    fillIstioPlaceholders(endpoints, 'unused');
    expect(endpoints.subsets?.[0]?.addresses).toEqual([{ ip: NODE_NETWORK.nodeIp }]);
    const service = find(istiod, 'Service', 'istiod');
    expect(service.spec?.ports).toContainEqual({
      name: 'https-webhook',
      port: 443,
      targetPort: ISTIOD_PORTS.webhook,
      protocol: 'TCP',
    });
    const webhooks = istiod.filter((o) => o.kind === 'ValidatingWebhookConfiguration');
    expect(webhooks.map((w) => w.metadata.name).sort()).toEqual([
      'istio-validator-istio-system',
      'istiod-default-validator',
    ]);
    for (const w of webhooks) {
      expect(w.metadata.labels).toMatchObject({ app: 'istiod', 'istio.io/rev': 'default' });
      expect(w.webhooks?.[0]).toMatchObject({
        clientConfig: { service: { name: 'istiod', namespace: ISTIO_NAMESPACE, path: '/validate' } },
        // istiod switches it to Fail once its endpoint rejects a bad object.
        failurePolicy: 'Ignore',
      });
    }
  });
});

describe('the ingress gateway', () => {
  it('is what istio/gateway.yaml selects, in istio-system, running the local istio-proxy image', () => {
    const [gw] = load('istio', 'gateway.yaml');
    const deployment = find(gateway, 'Deployment', INGRESS_GATEWAY);
    expect(deployment.metadata.namespace).toBe(ISTIO_NAMESPACE);
    expect(deployment.spec?.selector?.matchLabels).toMatchObject(gw?.spec?.selector ?? { missing: true });
    fillIstioPlaceholders(deployment, 'localhost/config-restarter/istio-proxy:abc');
    expect(deployment.spec?.template?.spec?.containers?.[0]?.image).toBe(
      'localhost/config-restarter/istio-proxy:abc',
    );
  });

  it('maps the Gateway ports 80/443 to unprivileged container ports', () => {
    const service = find(gateway, 'Service', INGRESS_GATEWAY);
    expect(service.spec?.ports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ port: 80, targetPort: 8080 }),
        expect.objectContaining({ port: 443, targetPort: 8443 }),
      ]),
    );
  });

  it('may read the Secrets of its namespace, which istiod checks before serving a credentialName', () => {
    const role = find(gateway, 'Role', 'istio-ingressgateway-sds') as Obj & {
      rules: { resources: string[]; verbs: string[] }[];
    };
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'watch', 'list'] },
    ]);
    const binding = find(gateway, 'RoleBinding', 'istio-ingressgateway-sds') as Obj & {
      subjects: { kind: string; name: string }[];
    };
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'istio-ingressgateway-service-account' },
    ]);
  });
});
