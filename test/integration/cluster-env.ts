import { randomBytes } from 'node:crypto';
import { readKubeconfig, type KubeconfigSpec } from '../../cluster/kube.js';

/** Admin kubeconfig of the integration-test cluster, published by global-setup.ts as `CLUSTER_KUBECONFIG`. */
export function adminKubeconfigPath(): string {
  const file = process.env.CLUSTER_KUBECONFIG;
  if (!file) throw new Error('CLUSTER_KUBECONFIG is not set: run through `npm run test:integration`');
  return file;
}

/** Server, CA and admin token of the integration-test cluster. */
export function adminTarget(): KubeconfigSpec {
  return readKubeconfig(adminKubeconfigPath());
}

/** A namespace name no other test uses (kube-controller-manager deletes namespaces for real: tests may clean up). */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/** The test node's network namespace and containerd socket, published by global-setup.ts. */
export function testNode(): { netns: string; containerdAddress: string } {
  const netns = process.env.CLUSTER_NODE_NETNS;
  const containerdAddress = process.env.CLUSTER_CONTAINERD_ADDRESS;
  if (!netns || !containerdAddress) {
    throw new Error(
      'CLUSTER_NODE_NETNS/CLUSTER_CONTAINERD_ADDRESS are not set: run through `npm run test:integration`',
    );
  }
  return { netns, containerdAddress };
}
