import { NAMESPACE, find, knativeServices, render, type K8sObject } from './kustomize.js';

interface VirtualService extends K8sObject {
  spec: {
    hosts: string[];
    gateways: string[];
    http: {
      rewrite?: { authority?: string };
      route: { destination: { host: string; port?: { number: number } } }[];
    }[];
  };
}

interface Gateway extends K8sObject {
  spec: {
    selector: Record<string, string>;
    servers: {
      port: { number: number; protocol: string; name: string };
      hosts: string[];
      tls?: Record<string, unknown>;
    }[];
  };
}

const HOSTS = { test: 'helloworld-test.example.com', prod: 'helloworld.example.com' } as const;

describe('istio/', () => {
  let objects: K8sObject[];

  beforeAll(async () => {
    ({ objects } = await render('istio'));
  });

  it('renders only the Gateway and one VirtualService per environment', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'Gateway/helloworld-gateway',
      'VirtualService/helloworld-prod',
      'VirtualService/helloworld-test',
    ]);
  });

  it('serves both hosts over HTTP and the prod host over HTTPS with its TLS secret', () => {
    const gateway = find<Gateway>(objects, 'Gateway', 'helloworld-gateway');
    expect(gateway.spec.selector).toEqual({ istio: 'ingressgateway' });
    const http = gateway.spec.servers.filter((s) => s.port.number === 80 && s.port.protocol === 'HTTP');
    expect(http.flatMap((s) => s.hosts).sort()).toEqual([HOSTS.test, HOSTS.prod].sort());
    const https = gateway.spec.servers.filter((s) => s.port.number === 443);
    expect(https).toEqual([
      {
        port: { number: 443, name: 'https-prod', protocol: 'HTTPS' },
        hosts: [HOSTS.prod],
        tls: { mode: 'SIMPLE', credentialName: 'helloworld-prod-tls' },
      },
    ]);
    const names = gateway.spec.servers.map((s) => s.port.name);
    expect(new Set(names).size).toBe(names.length);
  });

  describe.each(['test', 'prod'] as const)('VirtualService of %s', (env) => {
    let vs: VirtualService;
    let ksvcName: string;

    beforeAll(async () => {
      const overlay = await render(`kustomize/overlays/${env}`);
      const [ksvc] = knativeServices(overlay.objects);
      ksvcName = ksvc?.metadata.name ?? '';
      vs = find<VirtualService>(objects, 'VirtualService', `helloworld-${env}`);
    });

    it('rewrites the authority to the cluster-local host of the same environment’s ksvc', () => {
      expect(ksvcName).toBe(`helloworld-${env}`);
      expect(vs.metadata.name).toBe(ksvcName);
      expect(vs.spec.http.map((h) => h.rewrite?.authority)).toEqual([
        `${ksvcName}.${NAMESPACE}.svc.cluster.local`,
      ]);
    });

    it('routes its host to the cluster-local address of the same environment’s ksvc, whichever ingress runs', () => {
      expect(vs.spec.hosts).toEqual([HOSTS[env]]);
      expect(vs.spec.gateways).toEqual(['helloworld-gateway']);
      expect(vs.spec.http[0]?.route).toEqual([
        { destination: { host: `${ksvcName}.${NAMESPACE}.svc.cluster.local`, port: { number: 80 } } },
      ]);
    });

    it('carries the env and app labels', () => {
      expect(vs.metadata.labels).toEqual({ env, app: 'helloworld' });
    });

    it('matches istio/<env> rendered alone', async () => {
      const alone = await render(`istio/${env}`);
      expect(alone.stderr).toBe('');
      expect(alone.objects).toEqual([vs]);
    });
  });
});
