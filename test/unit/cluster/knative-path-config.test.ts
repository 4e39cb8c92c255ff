import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import {
  KNATIVE_PATH_PORTS,
  KOURIER_GATEWAY,
  brokerControllerEnv,
  corefile,
  eventingControllerEnv,
  fillPlaceholders,
  imcControllerEnv,
  kourierEnv,
  type PathManifest,
} from '../../../cluster/knative-path-config.js';
import { NODE_NETWORK } from '../../../cluster/node-network.js';
import { REPO_ROOT } from '../../../cluster/util.js';

const SYSTEM_DIR = path.join(REPO_ROOT, 'cluster', 'system', 'knative-path');
const IMAGES = {
  envoy: 'localhost/config-restarter/envoy:abc',
  mtping: 'localhost/config-restarter/mtping:def',
  'broker-ingress': 'localhost/config-restarter/broker-ingress:1',
  'broker-filter': 'localhost/config-restarter/broker-filter:2',
  'imc-dispatcher': 'localhost/config-restarter/imc-dispatcher:3',
};

function load(file: string): (PathManifest & { metadata: { name: string; namespace?: string } })[] {
  return yaml.loadAll(readFileSync(path.join(SYSTEM_DIR, file), 'utf8')) as (PathManifest & {
    metadata: { name: string; namespace?: string };
  })[];
}

describe('CoreDNS configuration', () => {
  const text = corefile('/c/kubeconfig');

  it('serves cluster.local from the API server on the node IP only', () => {
    expect(text).toContain(`bind ${NODE_NETWORK.nodeIp}`);
    expect(text).toMatch(
      /kubernetes cluster\.local in-addr\.arpa ip6\.arpa \{\n\s+kubeconfig \/c\/kubeconfig\n/,
    );
  });

  it('forwards nothing and keeps its probes off the autoscaler port', () => {
    expect(text).not.toMatch(/forward|proxy/);
    expect(text).toContain(`ready 127.0.0.1:${KNATIVE_PATH_PORTS.dnsReady}`);
    expect(text).toContain(`health 127.0.0.1:${KNATIVE_PATH_PORTS.dnsHealth}`);
    expect(text).not.toContain(':8080');
  });
});

describe('process environments', () => {
  it('gives the Eventing controller the local adapter image and every image variable its Deployment sets', () => {
    const env = eventingControllerEnv('localhost/config-restarter/apiserver-adapter:abc', 'pod', 9001);
    expect(env).toMatchObject({
      SYSTEM_NAMESPACE: 'knative-eventing',
      APISERVER_RA_IMAGE: 'localhost/config-restarter/apiserver-adapter:abc',
      PROFILING_PORT: '9001',
    });
    const upstreamImageVars = [
      'AUTH_PROXY_IMAGE',
      'EVENT_TRANSFORM_JSONATA_IMAGE',
      'INTEGRATION_SOURCE_TIMER_IMAGE',
      'INTEGRATION_SINK_LOG_IMAGE',
    ];
    for (const name of upstreamImageVars) expect(env[name]).toBeTruthy();
  });

  it('runs the Broker and in-memory channel controllers in knative-eventing, the latter with the local dispatcher', () => {
    expect(brokerControllerEnv('pod', 9003)).toMatchObject({
      SYSTEM_NAMESPACE: 'knative-eventing',
      PROFILING_PORT: '9003',
    });
    expect(imcControllerEnv(IMAGES['imc-dispatcher'], 'pod', 9004, 9443)).toMatchObject({
      SYSTEM_NAMESPACE: 'knative-eventing',
      WEBHOOK_NAME: 'inmemorychannel-webhook',
      WEBHOOK_PORT: '9443',
      DISPATCHER_IMAGE: IMAGES['imc-dispatcher'],
      PROFILING_PORT: '9004',
    });
  });

  it('runs Kourier in knative-serving with its gateway in kourier-system', () => {
    expect(kourierEnv('pod', 9002)).toMatchObject({
      SYSTEM_NAMESPACE: 'knative-serving',
      KOURIER_GATEWAY_NAMESPACE: 'kourier-system',
      PROFILING_PORT: '9002',
    });
  });
});

describe('cluster/system/knative-path', () => {
  it('points the selector-less Services at the node IP and kube-dns at the DNS Service IP', () => {
    const objects = [...load('dns.yaml'), ...load('kourier.yaml')];
    for (const o of objects) fillPlaceholders(o, IMAGES);
    const endpoints = objects.filter((o) => o.kind === 'Endpoints');
    expect(endpoints.map((e) => e.metadata.name).sort()).toEqual(['kube-dns', 'net-kourier-controller']);
    for (const e of endpoints) {
      expect(e.subsets?.flatMap((s) => s.addresses?.map((a) => a.ip))).toEqual([NODE_NETWORK.nodeIp]);
    }
    const dns = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'kube-dns');
    expect(dns?.spec?.clusterIP).toBe(NODE_NETWORK.dnsServiceIp);
  });

  it('runs the upstream gateway Deployment with the local Envoy image', () => {
    const objects = load('kourier.yaml');
    for (const o of objects) fillPlaceholders(o, IMAGES);
    const gateway = objects.find((o) => o.kind === 'Deployment');
    expect(gateway?.metadata.name).toBe(KOURIER_GATEWAY);
    expect(gateway?.spec?.template?.spec?.containers?.map((c) => c.image)).toEqual([
      'localhost/config-restarter/envoy:abc',
    ]);
    const bootstrap = objects.find((o) => o.metadata.name === 'kourier-bootstrap') as unknown as {
      data: Record<string, string>;
    };
    expect(bootstrap.data['envoy-bootstrap.yaml']).toContain('net-kourier-controller.knative-serving');
  });

  it("runs Eventing's PingSource adapter Deployment with the local mtping image and its own ServiceAccount", () => {
    const objects = load('eventing.yaml');
    for (const o of objects) fillPlaceholders(o, IMAGES);
    const adapter = objects.find((o) => o.kind === 'Deployment');
    expect(adapter?.metadata.name).toBe('pingsource-mt-adapter');
    expect(adapter?.spec?.template?.spec?.containers?.map((c) => c.image)).toEqual([IMAGES.mtping]);
    const podSpec = adapter?.spec?.template?.spec as { serviceAccountName?: string } | undefined;
    expect(podSpec?.serviceAccountName).toBe('pingsource-mt-adapter');
    expect(objects.map((o) => o.kind)).toEqual(
      expect.arrayContaining(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding']),
    );
  });

  it("runs the Broker's ingress and filter and the in-memory channel dispatcher as the release does, with local images", () => {
    const objects = load('broker.yaml');
    for (const o of objects) fillPlaceholders(o, IMAGES);
    const images = Object.fromEntries(
      objects
        .filter((o) => o.kind === 'Deployment')
        .map((d) => [d.metadata.name, d.spec?.template?.spec?.containers?.map((c) => c.image)]),
    );
    expect(images).toEqual({
      'mt-broker-ingress': [IMAGES['broker-ingress']],
      'mt-broker-filter': [IMAGES['broker-filter']],
      'imc-dispatcher': [IMAGES['imc-dispatcher']],
    });
    // The Services the Broker controller and the channel's ExternalName Service point at.
    const services = objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name);
    expect(services.sort()).toEqual(['broker-filter', 'broker-ingress', 'imc-dispatcher']);
    for (const o of objects) expect(o.metadata.namespace ?? 'knative-eventing').toBe('knative-eventing');
  });
});
