/**
 * Istio's configuration on the local node, rendered from the node's layout (pure: no I/O; `istio-path.ts` starts
 * and applies it): istiod's flags and environment, and the placeholders filled into `cluster/system/istio/`.
 */
import { NODE_NETWORK } from './node-network.js';

/** The process Istio adds on the node (its log: `<cluster dir>/istiod.log`). */
export type IstioProcessName = 'istiod';

/** Where istiod and the ingress gateway live. */
export const ISTIO_NAMESPACE = 'istio-system';
/** The ingress gateway's Deployment and Service (label `istio: ingressgateway`). */
export const INGRESS_GATEWAY = 'istio-ingressgateway';

/** istiod's ports inside the node's network namespace (upstream's, except the debug HTTP server). */
export const ISTIOD_PORTS = {
  /** Plain-text xDS (upstream default). */
  grpc: 15010,
  /** xDS and the CA over TLS with istiod's own certificate (upstream default). */
  secureGrpc: 15012,
  /** The validation webhook (upstream default). */
  webhook: 15017,
  monitoring: 15014,
  /** `/ready` and the debug endpoints: upstream's :8080 is the Knative autoscaler's here (same namespace). */
  http: 15080,
} as const;

/** The flags of the upstream istiod Deployment (istio-discovery chart), with the admin kubeconfig. */
export function istiodArgs(kubeconfig: string): string[] {
  return [
    'discovery',
    `--kubeconfig=${kubeconfig}`,
    `--httpAddr=127.0.0.1:${ISTIOD_PORTS.http}`,
    `--monitoringAddr=:${ISTIOD_PORTS.monitoring}`,
    '--grpcAddr=:15010',
    '--secureGRPCAddr=:15012',
    '--httpsAddr=:15017',
    '--domain=cluster.local',
    '--keepaliveMaxServerConnectionAge=30m',
    '--log_output_level=default:info',
  ];
}

/**
 * The environment of the upstream istiod Deployment. istiod runs from the cluster directory: its mesh config comes
 * from the `istio` ConfigMap (no `./etc/istio/config/mesh` there) and it writes its serving certificates below
 * `./var/run/secrets/istio-dns`.
 */
export function istiodEnv(): Record<string, string> {
  return {
    REVISION: 'default',
    POD_NAME: 'istiod-local',
    POD_NAMESPACE: ISTIO_NAMESPACE,
    SERVICE_ACCOUNT: 'istiod',
    PILOT_CERT_PROVIDER: 'istiod',
    CLUSTER_ID: 'Kubernetes',
    ISTIOD_ADDR: `istiod.${ISTIO_NAMESPACE}.svc:${ISTIOD_PORTS.secureGrpc}`,
    JWT_POLICY: 'third-party-jwt',
    PILOT_TRACE_SAMPLING: '1',
    PILOT_ENABLE_ANALYSIS: 'false',
    // Istio's telemetry: the metadata exchange filters (on every cluster and listener) are extensions only Istio's
    // own Envoy build has; upstream Envoy rejects the whole CDS update without this (docs/cluster.md).
    PILOT_ENABLE_METADATA_EXCHANGE: 'false',
    // The `istio.alpn` HTTP filter (protocol sniffing towards sidecars) is Istio-only too: every HTTP listener of
    // the gateway is rejected with it. No mesh here, so nothing needs it; likewise the peer-exchange ALPN.
    PILOT_ENABLE_ALPN_FILTER: 'false',
    PILOT_DISABLE_MX_ALPN: 'true',
    PLATFORM: '',
    GOMAXPROCS: '2',
  };
}

/** An object of `cluster/system/istio/`, as far as {@link fillIstioPlaceholders} reads it. */
export interface IstioManifest {
  kind: string;
  metadata?: { name?: string };
  spec?: { template?: { spec?: { containers?: { name: string; image?: string }[] } } };
  subsets?: { addresses?: { ip: string }[] }[];
}

/** Endpoints name the node IP (istiod runs there); the gateway's container gets the local `istio-proxy` image. */
export function fillIstioPlaceholders(manifest: IstioManifest, proxyImage: string): void {
  for (const subset of manifest.subsets ?? []) {
    for (const address of subset.addresses ?? []) address.ip = NODE_NETWORK.nodeIp;
  }
  for (const container of manifest.spec?.template?.spec?.containers ?? []) {
    if (container.image === 'istio-proxy') container.image = proxyImage;
  }
}
