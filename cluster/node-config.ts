/**
 * The node's configuration files, rendered from one {@link NodeLayout} (pure: no I/O; `node.ts` writes them).
 * containerd's CRI config, the CNI network, the kubelet and kube-proxy configurations, the apiserver's egress
 * configuration and the private `/etc/hosts` of the node's processes.
 */
import path from 'node:path';
import { NODE_NETWORK } from './node-network.js';

/** Where a node keeps its files and sockets: everything under `<cluster dir>/node/`. */
export interface NodeLayout {
  /** `<cluster dir>/node` */
  root: string;
  /** Name of the node's network namespace. */
  netns: string;
  /** Node object name. */
  nodeName: string;
  /** kubelet's `cgroupRoot`: one per cluster, so two kubelets on a machine never share a kubepods tree. */
  cgroupRoot: string;
  /** The sandbox (pause) image reference, as imported into containerd. */
  sandboxImage: string;
}

/** The paths of a node below its root directory. */
export function nodePaths(root: string) {
  return {
    containerdConfig: path.join(root, 'containerd.toml'),
    containerdRoot: path.join(root, 'containerd', 'root'),
    containerdState: path.join(root, 'containerd', 'state'),
    // Unix socket paths are limited to 108 bytes: keep the names short.
    containerdSocket: path.join(root, 'ctrd.sock'),
    runcRoot: path.join(root, 'runc'),
    cniConfDir: path.join(root, 'cni', 'net.d'),
    cniDataDir: path.join(root, 'cni', 'ipam'),
    kubeletRoot: path.join(root, 'kubelet'),
    kubeletConfig: path.join(root, 'kubelet.yaml'),
    podLogs: path.join(root, 'pod-logs'),
    kubeProxyConfig: path.join(root, 'kube-proxy.yaml'),
    /** The API server's port, reachable from the namespace through this socket (socat on both ends). */
    apiserverSocket: path.join(root, 'api.sock'),
    /** The API server's cluster egress (kubelet logs/exec, webhooks) goes through this socket. */
    egressSocket: path.join(root, 'egress.sock'),
    egressConfig: path.join(root, 'egress-selector.yaml'),
    /** The persistent mount namespace of the node's processes (a bind mount of an nsfs file). */
    mountNamespace: path.join(root, 'mntns'),
    /** Files bind-mounted inside that mount namespace (kernel tunables kubelet checks, /etc/hosts). */
    overlayDir: path.join(root, 'overlay'),
    pki: path.join(root, 'pki'),
  };
}

/** Binary directory of the Debian `containernetworking-plugins` package. */
export const CNI_BIN_DIR = '/usr/lib/cni';

/** containerd 1.6 configuration (version 2): own root, state and socket; CRI with cgroupfs, overlayfs, runc. */
export function containerdConfig(layout: NodeLayout): string {
  const p = nodePaths(layout.root);
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = ${JSON.stringify(p.containerdRoot)}
state = ${JSON.stringify(p.containerdState)}
# Only the CRI and what it needs: no other snapshotters, no metrics or debug listeners.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ${JSON.stringify(p.containerdSocket)}

[ttrpc]
  address = ${JSON.stringify(`${p.containerdSocket}.ttrpc`)}

[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(path.join(p.containerdRoot, 'opt'))}

[${cri}]
  sandbox_image = ${JSON.stringify(layout.sandboxImage)}
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails to start (oom_score_adj below the caller's).
  restrict_oom_score_adj = true
  enable_selinux = false
  # Images come from the local image builder only; nothing is pulled.
  max_concurrent_downloads = 1

[${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[${cri}.containerd.runtimes.runc.options]
  BinaryName = "runc"
  Root = ${JSON.stringify(p.runcRoot)}
  SystemdCgroup = false

[${cri}.cni]
  bin_dir = ${JSON.stringify(CNI_BIN_DIR)}
  conf_dir = ${JSON.stringify(p.cniConfDir)}
  max_conf_num = 1
`;
}

/**
 * The pod network: a bridge whose address is the pods' gateway, host-local IPAM, routes to the service CIDR and the
 * node subnet only (the pod CIDR is on-link), no masquerading: nothing is routed beyond the namespace.
 */
export function cniConfig(layout: NodeLayout): string {
  const n = NODE_NETWORK;
  return `${JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'config-restarter',
      plugins: [
        {
          type: 'bridge',
          bridge: n.bridge,
          isGateway: true,
          ipMasq: false,
          // A pod reaching itself through its Service.
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            dataDir: nodePaths(layout.root).cniDataDir,
            ranges: [[{ subnet: n.podCidr, gateway: n.podGateway }]],
            // The node subnet too: the Knative activator and the path's processes serve on the node IP, and the
            // Kourier gateway dials the activator's endpoint directly (not through a Service IP).
            routes: [{ dst: n.serviceCidr }, { dst: n.nodeSubnet }],
          },
        },
      ],
    },
    null,
    2,
  )}\n`;
}

/** kubelet's configuration file (`--config`). */
export function kubeletConfig(layout: NodeLayout): string {
  const p = nodePaths(layout.root);
  const config = {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    address: NODE_NETWORK.nodeIp,
    port: 10250,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort: 10248,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true, cacheTTL: '10s' },
      // The API server authenticates to the kubelet (logs, exec) with a client certificate of this CA.
      x509: { clientCAFile: path.join(p.pki, 'kubelet-client-ca.crt') },
    },
    authorization: {
      mode: 'Webhook',
      webhook: { cacheAuthorizedTTL: '10s', cacheUnauthorizedTTL: '10s' },
    },
    containerRuntimeEndpoint: `unix://${p.containerdSocket}`,
    cgroupDriver: 'cgroupfs',
    cgroupRoot: layout.cgroupRoot,
    cgroupsPerQOS: true,
    // cgroup v1 (this kernel's hybrid layout) is deprecated but works in 1.34; 1.35 refuses it unless false.
    failCgroupV1: false,
    failSwapOn: false,
    // Root lacks CAP_SYS_RESOURCE: kubelet must not lower its own oom_score_adj.
    oomScoreAdj: 0,
    podLogsDirectory: p.podLogs,
    // Pods resolve through the cluster's CoreDNS only (it serves cluster.local and forwards nothing); no upstream
    // resolver from the machine, so no query leaves the namespace.
    resolvConf: '',
    clusterDNS: [NODE_NETWORK.dnsServiceIp],
    clusterDomain: 'cluster.local',
    // Imported images cannot be pulled again: never garbage-collect them.
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // A busy shared disk must not evict the test pods.
    evictionHard: {
      'memory.available': '1Mi',
      'nodefs.available': '1%',
      'nodefs.inodesFree': '1%',
      'imagefs.available': '1%',
    },
    serializeImagePulls: false,
    // Pod status reaches the API server quickly: tests wait for it.
    nodeStatusUpdateFrequency: '5s',
    syncFrequency: '10s',
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** kube-proxy's configuration file (`--config`): iptables mode, rules inside the namespace only. */
export function kubeProxyConfig(layout: NodeLayout, kubeconfig: string): string {
  const config = {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    mode: 'iptables',
    clientConnection: { kubeconfig },
    hostnameOverride: layout.nodeName,
    bindAddress: NODE_NETWORK.nodeIp,
    clusterCIDR: NODE_NETWORK.podCidr,
    healthzBindAddress: '127.0.0.1:10256',
    metricsBindAddress: '127.0.0.1:10249',
    // Leave the machine-wide conntrack limits and timeouts as they are.
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: '0s',
      tcpCloseWaitTimeout: '0s',
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/**
 * kube-apiserver's egress selector: traffic to the cluster (kubelets, pods, Services, webhooks) goes as HTTP
 * CONNECT through a Unix socket to the egress proxy, which dials it from inside the node namespace.
 */
export function egressSelectorConfig(layout: NodeLayout): string {
  return `apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
  - name: cluster
    connection:
      proxyProtocol: HTTPConnect
      transport:
        uds:
          udsName: ${nodePaths(layout.root).egressSocket}
`;
}

/**
 * The kernel tunables kubelet insists on (it rewrites them machine-wide otherwise, or fails with
 * `protectKernelDefaults`): the node's processes see these values through files bind-mounted in their own mount
 * namespace, and the machine keeps its own.
 */
export const KUBELET_KERNEL_TUNABLES: Readonly<Record<string, number>> = {
  'vm/overcommit_memory': 1,
  'vm/panic_on_oom': 0,
  'kernel/panic': 10,
  'kernel/panic_on_oops': 1,
  'kernel/keys/root_maxkeys': 1000000,
  'kernel/keys/root_maxbytes': 25000000,
};

/**
 * `/etc/resolv.conf` of the node's processes: no nameserver, so a name nobody maps (an image registry, say) fails at
 * once instead of sending a query anywhere.
 */
export function nodeResolvConf(): string {
  return '# No nameserver: the node resolves only what its /etc/hosts lists.\n';
}

/**
 * `/etc/resolv.conf` of the node's processes once the Knative path's CoreDNS runs (it binds the node IP, serves
 * `cluster.local` only and forwards nothing): the autoscaler checks that the activator backs a Revision before
 * scaling it to zero by probing `http://<revision>.<namespace>.svc.cluster.local/healthz`, so it needs cluster names.
 */
export function nodeClusterDnsResolvConf(): string {
  return `# The cluster's CoreDNS (cluster.local only, no forwarding).\nnameserver ${NODE_NETWORK.nodeIp}\n`;
}

/**
 * `/etc/hosts` of the node's processes: the activator dials the autoscaler by its Service name and there is no
 * cluster DNS; the name points at the autoscaler on the node IP.
 */
export function nodeHostsFile(): string {
  return [
    '127.0.0.1 localhost',
    `${NODE_NETWORK.nodeIp} autoscaler.knative-serving.svc.cluster.local autoscaler.knative-serving.svc`,
    '',
  ].join('\n');
}
