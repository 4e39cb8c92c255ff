/**
 * The Knative path's configuration, rendered from the node's layout (pure: no I/O; `knative-path.ts` writes and
 * applies it): CoreDNS's Corefile, the environment of the Kourier control plane and of the Eventing controller, and
 * the placeholders filled into `cluster/system/knative-path/`.
 */
import { NODE_NETWORK } from './node-network.js';

/** Ports inside the node's network namespace (fixed: nothing else there uses them). */
export const KNATIVE_PATH_PORTS = {
  /** CoreDNS's `ready` plugin: 200 once the kubernetes plugin has synced with the API server. */
  dnsReady: 8181,
  /** CoreDNS's `health` plugin (upstream's default is :8080, taken by the Knative autoscaler here). */
  dnsHealth: 8182,
  /** Kourier's xDS server (fixed in net-kourier: `managementPort`). */
  xds: 18000,
} as const;

/** The Knative ingress class Kourier reconciles (config-network `ingress-class`). */
export const KOURIER_INGRESS_CLASS = 'kourier.ingress.networking.knative.dev';
/** Where the Kourier gateway (Envoy pods) runs. */
export const KOURIER_GATEWAY_NAMESPACE = 'kourier-system';
/** The upstream gateway Deployment's name and pod label value (`app`). */
export const KOURIER_GATEWAY = '3scale-kourier-gateway';

/**
 * The Deployments the path installs (`<namespace>/<name>`): their pods keep running when the path's processes stop,
 * so a caller that stops the path on a node that keeps running deletes them (the next start installs them again).
 */
export const PATH_DEPLOYMENTS = [
  `${KOURIER_GATEWAY_NAMESPACE}/${KOURIER_GATEWAY}`,
  'knative-eventing/pingsource-mt-adapter',
  'knative-eventing/mt-broker-ingress',
  'knative-eventing/mt-broker-filter',
  'knative-eventing/imc-dispatcher',
] as const;

/**
 * CoreDNS's configuration: `cluster.local` (and the reverse zones) from the API server with the `kubernetes` plugin,
 * on the node IP only. No `forward`: a name outside the cluster gets an error, never a query to the outside.
 */
export function corefile(kubeconfig: string): string {
  return `.:53 {
    bind ${NODE_NETWORK.nodeIp}
    errors
    health 127.0.0.1:${KNATIVE_PATH_PORTS.dnsHealth}
    ready 127.0.0.1:${KNATIVE_PATH_PORTS.dnsReady}
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${kubeconfig}
        pods insecure
        ttl 30
    }
    cache 30
    loadbalance
}
`;
}

/** The Kourier control plane's environment, as its upstream Deployment (config/300-controller.yaml) sets it. */
export function kourierEnv(podName: string, profilingPort: number): Record<string, string> {
  return {
    SYSTEM_NAMESPACE: 'knative-serving',
    POD_NAME: podName,
    CERTS_SECRET_NAMESPACE: '',
    CERTS_SECRET_NAME: '',
    METRICS_DOMAIN: 'knative.dev/samples',
    KOURIER_GATEWAY_NAMESPACE,
    ENABLE_SECRET_INFORMER_FILTERING_BY_CERT_UID: 'false',
    KUBE_API_BURST: '200',
    KUBE_API_QPS: '200',
    PROFILING_PORT: String(profilingPort),
  };
}

/**
 * The Eventing controller's environment, as its upstream Deployment (config/core/deployments/controller.yaml) sets
 * it. `APISERVER_RA_IMAGE` is the local ApiServerSource adapter image; the images of the kinds nothing here uses
 * (auth proxy, JSONata transform, integration sources and sinks) are names no pod is made from.
 */
export function eventingControllerEnv(
  adapterImage: string,
  podName: string,
  profilingPort: number,
): Record<string, string> {
  const unused = 'localhost/config-restarter/not-installed:0';
  return {
    SYSTEM_NAMESPACE: 'knative-eventing',
    POD_NAME: podName,
    CONFIG_LOGGING_NAME: 'config-logging',
    CONFIG_OBSERVABILITY_NAME: 'config-observability',
    METRICS_DOMAIN: 'knative.dev/eventing',
    APISERVER_RA_IMAGE: adapterImage,
    AUTH_PROXY_IMAGE: unused,
    EVENT_TRANSFORM_JSONATA_IMAGE: unused,
    INTEGRATION_SOURCE_TIMER_IMAGE: unused,
    INTEGRATION_SOURCE_AWS_S3_IMAGE: unused,
    INTEGRATION_SOURCE_AWS_SQS_IMAGE: unused,
    INTEGRATION_SOURCE_AWS_DDB_STREAMS_IMAGE: unused,
    INTEGRATION_SINK_LOG_IMAGE: unused,
    INTEGRATION_SINK_AWS_S3_IMAGE: unused,
    INTEGRATION_SINK_AWS_SQS_IMAGE: unused,
    INTEGRATION_SINK_AWS_SNS_IMAGE: unused,
    PROFILING_PORT: String(profilingPort),
  };
}

/**
 * The environment of the multi-tenant channel-based Broker's controller (`mt-broker-controller`), as its upstream
 * Deployment (config/brokers/mt-channel-broker/deployments/controller.yaml) sets it.
 */
export function brokerControllerEnv(podName: string, profilingPort: number): Record<string, string> {
  return {
    SYSTEM_NAMESPACE: 'knative-eventing',
    POD_NAME: podName,
    CONFIG_LOGGING_NAME: 'config-logging',
    CONFIG_OBSERVABILITY_NAME: 'config-observability',
    METRICS_DOMAIN: 'knative.dev/eventing',
    PROFILING_PORT: String(profilingPort),
  };
}

/**
 * The in-memory channel controller's environment, as its upstream Deployment
 * (config/channels/in-memory-channel/deployments/controller.yaml) sets it; its webhook listens on `webhookPort`
 * (upstream: 8443) and `DISPATCHER_IMAGE` names the local dispatcher image.
 */
export function imcControllerEnv(
  dispatcherImage: string,
  podName: string,
  profilingPort: number,
  webhookPort: number,
): Record<string, string> {
  return {
    SYSTEM_NAMESPACE: 'knative-eventing',
    POD_NAME: podName,
    WEBHOOK_NAME: 'inmemorychannel-webhook',
    WEBHOOK_PORT: String(webhookPort),
    CONFIG_LOGGING_NAME: 'config-logging',
    CONFIG_OBSERVABILITY_NAME: 'config-observability',
    METRICS_DOMAIN: 'knative.dev/inmemorychannel-controller',
    DISPATCHER_IMAGE: dispatcherImage,
    PROFILING_PORT: String(profilingPort),
  };
}

/** An object of `cluster/system/knative-path/`, as far as {@link fillPlaceholders} reads it. */
export interface PathManifest {
  kind: string;
  spec?: {
    clusterIP?: string;
    template?: { spec?: { containers?: { name: string; image?: string }[] } };
  };
  subsets?: { addresses?: { ip: string }[] }[];
}

/**
 * The local images the files name by a placeholder (`image: envoy`, `image: mtping`, `image: broker-ingress`, ...).
 */
export type PathImages = Record<
  'envoy' | 'mtping' | 'broker-ingress' | 'broker-filter' | 'imc-dispatcher',
  string
>;

/**
 * Fills in what the files leave open: Endpoints name the node IP, the `kube-dns` Service gets the DNS Service IP,
 * and the containers of the gateway (Envoy), of the PingSource adapter (mtping) and of the Broker's data plane the
 * local images.
 */
export function fillPlaceholders(manifest: PathManifest, images: PathImages): void {
  for (const subset of manifest.subsets ?? []) {
    for (const address of subset.addresses ?? []) address.ip = NODE_NETWORK.nodeIp;
  }
  if (manifest.kind === 'Service' && manifest.spec?.clusterIP)
    manifest.spec.clusterIP = NODE_NETWORK.dnsServiceIp;
  for (const container of manifest.spec?.template?.spec?.containers ?? []) {
    const local = container.image ? images[container.image as keyof PathImages] : undefined;
    if (local) container.image = local;
  }
}
