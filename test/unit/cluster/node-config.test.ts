import { missingHostPackages, HOST_PACKAGES } from '../../../cluster/host-packages.js';
import { isLoopback, parseConnect } from '../../../cluster/egress-proxy.js';
import {
  cniConfig,
  containerdConfig,
  egressSelectorConfig,
  kubeletConfig,
  kubeProxyConfig,
  nodeClusterDnsResolvConf,
  nodeHostsFile,
  nodePaths,
  nodeResolvConf,
  type NodeLayout,
} from '../../../cluster/node-config.js';
import { NODE_NETWORK, nodeNetnsName } from '../../../cluster/node-network.js';
import { nodeCgroupRoot, parseNetnsMounts } from '../../../cluster/node-host.js';

const layout: NodeLayout = {
  root: '/tmp/c/node',
  netns: 'cr-node-0123456789',
  nodeName: 'local-node',
  cgroupRoot: '/config-restarter-0123456789',
  sandboxImage: 'localhost/config-restarter/pause:abc',
};

describe('node names', () => {
  it('derives the namespace and cgroup root from the cluster directory, differently per directory', () => {
    expect(nodeNetnsName('/a/.cluster')).toBe(nodeNetnsName('/a/.cluster'));
    expect(nodeNetnsName('/a/.cluster')).not.toBe(nodeNetnsName('/b/.cluster'));
    expect(nodeNetnsName('/a/.cluster')).toMatch(/^cr-node-[0-9a-f]{10}$/);
    expect(nodeCgroupRoot('/a/.cluster')).toMatch(/^\/config-restarter-[0-9a-f]{10}$/);
    expect(nodeCgroupRoot('/a/.cluster')).not.toBe(nodeCgroupRoot('/b/.cluster'));
  });

  it('keeps every Unix socket path within the 108-byte limit for a typical directory', () => {
    const p = nodePaths('/home/someone/projects/config-restarter/.cluster/test/node');
    for (const socket of [
      p.containerdSocket,
      `${p.containerdSocket}.ttrpc`,
      p.apiserverSocket,
      p.egressSocket,
    ]) {
      expect(Buffer.byteLength(socket)).toBeLessThan(108);
    }
  });
});

describe('node configuration files', () => {
  it('gives containerd its own root, state and socket, the pause image and restrict_oom_score_adj', () => {
    const toml = containerdConfig(layout);
    expect(toml).toContain('root = "/tmp/c/node/containerd/root"');
    expect(toml).toContain('state = "/tmp/c/node/containerd/state"');
    expect(toml).toContain('address = "/tmp/c/node/ctrd.sock"');
    expect(toml).toContain('sandbox_image = "localhost/config-restarter/pause:abc"');
    expect(toml).toContain('restrict_oom_score_adj = true');
    expect(toml).toContain('snapshotter = "overlayfs"');
    expect(toml).toContain('SystemdCgroup = false');
  });

  it('routes pods to the service CIDR and the node subnet only, through the bridge, without masquerading', () => {
    const conf = JSON.parse(cniConfig(layout)) as {
      plugins: {
        type: string;
        isGateway?: boolean;
        ipMasq?: boolean;
        ipam?: { routes: { dst: string }[] };
      }[];
    };
    const [bridge] = conf.plugins;
    expect(conf.plugins).toHaveLength(1);
    expect(bridge).toMatchObject({ type: 'bridge', isGateway: true, ipMasq: false });
    expect(bridge?.ipam?.routes).toEqual([
      { dst: NODE_NETWORK.serviceCidr },
      { dst: NODE_NETWORK.nodeSubnet },
    ]);
  });

  it('configures kubelet for this machine: cgroupfs, cgroup v1, no oom_score_adj change, webhook auth', () => {
    const config = JSON.parse(kubeletConfig(layout)) as Record<string, unknown>;
    expect(config).toMatchObject({
      address: NODE_NETWORK.nodeIp,
      cgroupDriver: 'cgroupfs',
      cgroupRoot: layout.cgroupRoot,
      failCgroupV1: false,
      oomScoreAdj: 0,
      readOnlyPort: 0,
      resolvConf: '',
      clusterDNS: [NODE_NETWORK.dnsServiceIp],
      clusterDomain: 'cluster.local',
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true } },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: 'unix:///tmp/c/node/ctrd.sock',
    });
  });

  it('runs kube-proxy in iptables mode and leaves the machine-wide conntrack settings alone', () => {
    const config = JSON.parse(kubeProxyConfig(layout, '/k')) as Record<string, unknown>;
    expect(config).toMatchObject({
      mode: 'iptables',
      clusterCIDR: NODE_NETWORK.podCidr,
      conntrack: { maxPerCore: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    });
  });

  it('sends the API server cluster egress to the proxy socket', () => {
    expect(egressSelectorConfig(layout)).toContain('udsName: /tmp/c/node/egress.sock');
    expect(egressSelectorConfig(layout)).toContain('proxyProtocol: HTTPConnect');
  });

  it('maps the autoscaler Service name to the node IP for the activator', () => {
    expect(nodeHostsFile()).toContain(`${NODE_NETWORK.nodeIp} autoscaler.knative-serving.svc.cluster.local`);
  });

  it('gives the node no nameserver until the cluster DNS runs, then only CoreDNS on the node IP', () => {
    expect(nodeResolvConf()).not.toMatch(/^nameserver/m);
    const withDns = nodeClusterDnsResolvConf();
    expect(withDns.match(/^nameserver .*$/gm)).toEqual([`nameserver ${NODE_NETWORK.nodeIp}`]);
  });
});

describe('pod network namespaces', () => {
  it('finds the cni-… namespace files in a mount table', () => {
    const mounts = [
      'nsfs /var/run/netns/cni-1f2e nsfs rw 0 0',
      'nsfs /run/netns/cni-3a4b nsfs rw 0 0',
      'nsfs /var/run/netns/cr-node-0123456789 nsfs rw 0 0',
      'tmpfs /var/run/netns/cni-fake tmpfs rw 0 0',
      'overlay /tmp/c/node/containerd/state/rootfs overlay rw 0 0',
    ].join('\n');
    expect(parseNetnsMounts(mounts)).toEqual(['/var/run/netns/cni-1f2e', '/run/netns/cni-3a4b']);
  });
});

describe('egress proxy request parsing', () => {
  it('accepts CONNECT to a host and port', () => {
    expect(parseConnect('CONNECT 10.213.255.2:10250 HTTP/1.1\r\nHost: x\r\n\r\n')).toEqual({
      host: '10.213.255.2',
      port: 10250,
    });
    expect(parseConnect('CONNECT localhost:8443 HTTP/1.1\r\n\r\n')).toEqual({
      host: 'localhost',
      port: 8443,
    });
    expect(parseConnect('CONNECT [::1]:443 HTTP/1.1\r\n\r\n')).toEqual({ host: '::1', port: 443 });
  });

  it('refuses anything else', () => {
    expect(parseConnect('GET / HTTP/1.1\r\n\r\n')).toBeUndefined();
    expect(parseConnect('CONNECT host HTTP/1.1\r\n\r\n')).toBeUndefined();
    expect(parseConnect('CONNECT host:0 HTTP/1.1\r\n\r\n')).toBeUndefined();
    expect(parseConnect('CONNECT host:70000 HTTP/1.1\r\n\r\n')).toBeUndefined();
  });

  it('dials loopback destinations itself and everything else from the node namespace', () => {
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('10.213.255.2')).toBe(false);
    expect(isLoopback('127.example')).toBe(false);
  });
});

describe('host packages', () => {
  it('lists the packages whose file is missing', () => {
    expect(missingHostPackages(() => true)).toEqual([]);
    expect(missingHostPackages((file) => file !== '/usr/bin/socat')).toEqual(['socat']);
    expect(missingHostPackages(() => false)).toEqual(HOST_PACKAGES.map((p) => p.name));
  });
});
