/**
 * `npm run bench:istio`: edit -> the new message served through the Istio ingress gateway.
 *
 * On a fresh local cluster with a node, the Knative path and Istio (`startCluster({ istio: true })`): the project's
 * manifests unchanged in their own namespace (`knative/` plumbing + the function as `func deploy` creates it,
 * `kustomize/overlays/test` with the local image, `istio/`). Each edit merge-patches helloworld's opted-in
 * ConfigMap; measured from the patch's answer until a client polling the gateway with
 * `Host: helloworld-test.example.com` gets the new message. See BENCHMARKS.md.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startCluster, stopCluster } from '../cluster/control-plane.js';
import { buildImages, importImages } from '../cluster/images.js';
import { INGRESS_GATEWAY, ISTIO_NAMESPACE } from '../cluster/istio-config.js';
import { gatewayServes } from '../cluster/istio-path.js';
import { kubeRequest, readKubeconfig, type KubeTarget } from '../cluster/kube.js';
import { localManifests } from '../cluster/local-manifests.js';
import { applyKustomization, eventually } from '../cluster/objects.js';
import { REPO_ROOT } from '../cluster/util.js';
import { percentile } from './lib/stats.js';

const USAGE = `usage: npm run bench:istio -- [options]
  --edits <n>  edits timed (default 5; one more first, not counted)
  --dir <dir>  cluster directory (default .cluster/bench-istio; started fresh, stopped at the end)`;

const { values } = parseArgs({
  options: {
    edits: { type: 'string', default: '5' },
    dir: { type: 'string', default: path.join(REPO_ROOT, '.cluster', 'bench-istio') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
/** The namespace of kustomize/, knative/ and istio/, applied unchanged. */
const NAMESPACE = 'helloworld';
const HOST = 'helloworld-test.example.com';

type Conditions = { type: string; status: string }[] | undefined;
const isReady = (conditions: Conditions): boolean =>
  conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function get<T>(target: KubeTarget, objectPath: string): Promise<T> {
  return (await kubeRequest<T>(target, 'GET', objectPath)).body;
}

const fmt = (ms: number): string => (ms / 1000).toFixed(2);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const edits = Number(values.edits);
  const dir = path.resolve(values.dir);
  const log = (line: string): void => {
    process.stderr.write(`  ${line}\n`);
  };
  await stopCluster(dir, () => undefined);
  const cluster = await startCluster({ dir, istio: true, detached: false, log });
  if (!cluster.node) throw new Error('the cluster started without a node');
  const netns = cluster.node.netns;
  try {
    const admin = readKubeconfig(cluster.kubeconfig);
    const images = await buildImages(['helloworld', 'config-restarter'], { log: () => undefined });
    await importImages(images, { containerdAddress: cluster.node.containerdAddress, log: () => undefined });
    const manifests = localManifests(images, { dir });
    await applyKustomization(cluster.kubeconfig, manifests.function);
    await applyKustomization(cluster.kubeconfig, manifests.helloworld);
    await applyKustomization(cluster.kubeconfig, path.join(REPO_ROOT, 'istio'));
    await eventually(
      'helloworld-test, the function and the ApiServerSource Ready',
      async () => {
        for (const objectPath of [
          `/apis/serving.knative.dev/v1/namespaces/${NAMESPACE}/services/helloworld-test`,
          `/apis/serving.knative.dev/v1/namespaces/${NAMESPACE}/services/config-restarter`,
          `/apis/sources.knative.dev/v1/namespaces/${NAMESPACE}/apiserversources/config-restarter-source`,
        ]) {
          const o = await get<{ status?: { conditions?: Conditions } }>(admin, objectPath);
          if (!isReady(o.status?.conditions)) return undefined;
        }
        return true;
      },
      300_000,
    );
    const { spec } = await get<{ spec: { clusterIP: string } }>(
      admin,
      `/api/v1/namespaces/${ISTIO_NAMESPACE}/services/${INGRESS_GATEWAY}`,
    );
    const request = { address: spec.clusterIP, port: 80, host: HOST, path: '/message' };
    await gatewayServes(netns, request, 'Hello from the test environment', 120_000);
    log('manifests applied; the gateway serves helloworld-test');

    const times: number[] = [];
    for (let i = 0; i <= edits; i++) {
      const message = `bench edit ${i}`;
      const served = gatewayServes(netns, request, message, 180_000);
      // The poller is running (and still seeing the old message) before the edit.
      await sleep(1_000);
      await kubeRequest(
        admin,
        'PATCH',
        `/api/v1/namespaces/${NAMESPACE}/configmaps/helloworld-config-test`,
        { data: { MESSAGE: message } },
        { contentType: 'application/merge-patch+json' },
      );
      const editedAt = Date.now();
      const ms = (await served) - editedAt;
      log(
        `edit ${i}: new message through the gateway after ${fmt(ms)} s${i === 0 ? ' (first, not counted)' : ''}`,
      );
      if (i > 0) times.push(ms);
    }
    console.log(`\nEdit -> new message served through the Istio gateway (s; p50 / p90 nearest rank)\n`);
    console.log('| figure | edits | p50 | p90 | each |');
    console.log('| --- | ---: | ---: | ---: | --- |');
    console.log(
      `| edit -> new message through the gateway | ${times.length} | ${fmt(percentile(times, 50))} | ${fmt(percentile(times, 90))} | ${times.map(fmt).join(', ')} |`,
    );
  } finally {
    await stopCluster(dir, () => undefined);
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
