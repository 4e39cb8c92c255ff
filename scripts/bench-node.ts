/**
 * `npm run bench:node`: what a user waits for on a cluster with a node. On a fresh local cluster (`.cluster/bench-node`)
 * with the helloworld Knative Service of kustomize/overlays/test and an opted-in plain Deployment of helloworld (both
 * on the local image), config-restarter runs as its ServiceAccount fed by the real ApiServerSource adapter. For each
 * ConfigMap edit it times, from the edit:
 *
 *   template   the pod-template change (the restart annotation) of the Deployment and of the Knative Service
 *   serving    the first new pod of the Deployment Ready and answering the new message on /message (by pod IP), and
 *              the new Revision Ready and answering it through its public Service (activator)
 *
 * Polled every 100 ms (each HTTP check is one short-lived process in the node's namespace, about 100 ms more).
 * See BENCHMARKS.md.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startApiServerSourceAdapter } from '../cluster/adapter.js';
import { ensureBinaries } from '../cluster/binaries.js';
import { startCluster, stopCluster } from '../cluster/control-plane.js';
import { startFunction } from '../cluster/function-process.js';
import { helloworldDeployment, renderHelloworld } from '../cluster/helloworld-deployment.js';
import { buildImages, importImages } from '../cluster/images.js';
import {
  kubeRequest,
  readKubeconfig,
  writeServiceAccountKubeconfig,
  type KubeTarget,
} from '../cluster/kube.js';
import { localManifests } from '../cluster/local-manifests.js';
import { fetchInNode } from '../cluster/node-network.js';
import { applyKustomization, PATHS, readWorkload } from '../cluster/objects.js';
import { shippedSource } from '../cluster/shipped-source.js';
import { REPO_ROOT, sleep } from '../cluster/util.js';
import { listPods, podState, type PodView } from './lib/pod-timeline.js';
import { percentile } from './lib/stats.js';

const USAGE = `usage: npm run bench:node -- [--edits <n>] [--dir <dir>]

  --edits <n>   ConfigMap edits measured (default 8)
  --dir <dir>   cluster directory (default .cluster/bench-node; started fresh, stopped at the end)`;

const { values } = parseArgs({
  options: {
    edits: { type: 'string', default: '8' },
    dir: { type: 'string', default: path.join(REPO_ROOT, '.cluster', 'bench-node') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const EDITS = Number(values.edits);
if (!Number.isInteger(EDITS) || EDITS < 1) {
  console.error(`--edits must be an integer >= 1, got "${values.edits}"\n\n${USAGE}`);
  process.exit(2);
}

const NS = 'helloworld';
const CONFIGMAP = 'helloworld-config-test';
const KSVC = 'helloworld-test';
const WORKER = 'helloworld-worker-test';
const RESTART = 'rolling.restart.controller/restartTimestamp';
const log = (line: string): void => console.log(`    ${line}`);

/** Milliseconds from the edit to each thing a user waits for. */
interface EditTimes {
  deploymentTemplate: number;
  ksvcTemplate: number;
  deploymentServing: number;
  revisionServing: number;
}

async function latestReadyRevision(admin: KubeTarget): Promise<string | undefined> {
  const { body } = await kubeRequest<{ status?: { latestReadyRevisionName?: string } }>(
    admin,
    'GET',
    `/apis/serving.knative.dev/v1/namespaces/${NS}/configurations/${KSVC}`,
    undefined,
    { allowStatus: [404] },
  );
  return body.status?.latestReadyRevisionName;
}

async function answers(netns: string, url: string, message: string, headers: Record<string, string> = {}) {
  const res = await fetchInNode(netns, url, { headers, timeoutMs: 10_000 }).catch(() => undefined);
  return res?.status === 200 && res.body === message;
}

/** One edit, polled until all four figures are in (or 180 s). */
async function measureEdit(admin: KubeTarget, netns: string, message: string): Promise<EditTimes> {
  const before = {
    deployment: (await readWorkload(admin, PATHS.deployments(NS), WORKER)).templateAnnotations[RESTART],
    ksvc: (await readWorkload(admin, PATHS.ksvcs(NS), KSVC)).templateAnnotations[RESTART],
    pods: await listPods(admin, NS, `component=${WORKER}`),
    revision: await latestReadyRevision(admin),
  };
  const start = Date.now();
  await kubeRequest(
    admin,
    'PATCH',
    `${PATHS.configmaps(NS)}/${CONFIGMAP}`,
    { data: { MESSAGE: message } },
    { contentType: 'application/merge-patch+json' },
  );
  const times: Partial<EditTimes> = {};
  const since = (): number => Date.now() - start;
  while (Object.keys(times).length < 4) {
    if (since() > 180_000)
      throw new Error(`edit "${message}": only ${Object.keys(times).join(', ')} within 180 s`);
    if (times.deploymentTemplate === undefined) {
      const now = (await readWorkload(admin, PATHS.deployments(NS), WORKER)).templateAnnotations[RESTART];
      if (now !== before.deployment) times.deploymentTemplate = since();
    }
    if (times.ksvcTemplate === undefined) {
      const now = (await readWorkload(admin, PATHS.ksvcs(NS), KSVC)).templateAnnotations[RESTART];
      if (now !== before.ksvc) times.ksvcTemplate = since();
    }
    if (times.deploymentServing === undefined) {
      const fresh = (await listPods(admin, NS, `component=${WORKER}`)).find(
        (p: PodView) =>
          podState(p) === 'Running/Ready' && !before.pods.some((o) => o.metadata.uid === p.metadata.uid),
      );
      if (fresh && (await answers(netns, `http://${fresh.status.podIP}:8080/message`, message))) {
        times.deploymentServing = since();
      }
    }
    if (times.revisionServing === undefined) {
      const revision = await latestReadyRevision(admin);
      if (revision && revision !== before.revision) {
        const { body: svc } = await kubeRequest<{ spec: { clusterIP: string } }>(
          admin,
          'GET',
          `/api/v1/namespaces/${NS}/services/${revision}`,
        );
        const headers = { 'Knative-Serving-Namespace': NS, 'Knative-Serving-Revision': revision };
        if (await answers(netns, `http://${svc.spec.clusterIP}/message`, message, headers)) {
          times.revisionServing = since();
        }
      }
    }
    await sleep(100);
  }
  return times as EditTimes;
}

/** Waits until the Deployment's pods are all new and Ready and nothing terminates: the next edit starts clean. */
async function settled(admin: KubeTarget): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const pods = await listPods(admin, NS, `component=${WORKER}`);
    if (pods.length === 1 && pods.every((p) => podState(p) === 'Running/Ready')) return;
    if (Date.now() > deadline) throw new Error(`${WORKER} did not settle within 120 s`);
    await sleep(250);
  }
}

function row(label: string, ms: number[]): string {
  const s = (v: number): string => (v / 1000).toFixed(2).padStart(6);
  return `| ${label.padEnd(58)} | ${s(percentile(ms, 50))} | ${s(percentile(ms, 90))} | ${s(Math.max(...ms))} |`;
}

async function main(): Promise<void> {
  const dir = path.resolve(values.dir);
  console.log(`node benchmark: ${EDITS} edits, cluster in ${path.relative(process.cwd(), dir)}`);
  await stopCluster(dir, () => undefined);
  const binaries = await ensureBinaries(log);
  const cluster = await startCluster({ dir, binaries, log: () => undefined, detached: false });
  try {
    if (!cluster.node) throw new Error('the cluster started without a node');
    const admin = readKubeconfig(cluster.kubeconfig);
    const images = await buildImages(['helloworld', 'config-restarter'], { log: () => undefined });
    await importImages(images, { containerdAddress: cluster.node.containerdAddress, log: () => undefined });
    const manifests = localManifests(images, { dir });
    await applyKustomization(cluster.kubeconfig, 'knative');
    await applyKustomization(cluster.kubeconfig, manifests.helloworld);
    const { service } = await renderHelloworld(manifests.helloworld);
    const worker = helloworldDeployment(service, { name: WORKER, replicas: 1 });
    await kubeRequest(admin, 'POST', PATHS.deployments(NS), worker);

    const sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
    await writeServiceAccountKubeconfig(cluster.kubeconfig, sourceKubeconfig, NS, 'config-restarter-source');
    const fn = await startFunction({
      adminKubeconfig: cluster.kubeconfig,
      namespace: NS,
      logFile: path.join(dir, 'config-restarter.log'),
      env: { LOG_LEVEL: 'info' },
    });
    const source = await shippedSource('knative');
    const adapter = await startApiServerSourceAdapter({
      binary: binaries.apiserverAdapter,
      kubeconfig: sourceKubeconfig,
      namespace: NS,
      name: source.name,
      sink: fn.url,
      mode: source.mode,
      resources: source.resources,
      logFile: path.join(dir, 'adapter.log'),
    });
    try {
      await adapter.waitUntilWatching();
      await settled(admin);
      const results: EditTimes[] = [];
      for (let i = 1; i <= EDITS; i++) {
        const times = await measureEdit(admin, cluster.node.netns, `bench edit ${i} at ${Date.now()}`);
        log(
          `edit ${i}: template ${times.deploymentTemplate} / ${times.ksvcTemplate} ms, ` +
            `serving ${times.deploymentServing} / ${times.revisionServing} ms (Deployment / Knative)`,
        );
        results.push(times);
        await settled(admin);
      }
      const pick = (key: keyof EditTimes): number[] => results.map((r) => r[key]);
      console.log(
        `\n| ${`ConfigMap edit -> (seconds, ${EDITS} edits)`.padEnd(58)} |    p50 |    p90 |    max |`,
      );
      console.log(`| ${'-'.repeat(58)} | -----: | -----: | -----: |`);
      console.log(row('pod-template change, Deployment', pick('deploymentTemplate')));
      console.log(row('pod-template change, Knative Service', pick('ksvcTemplate')));
      console.log(row('first new pod Ready serving the new message, Deployment', pick('deploymentServing')));
      console.log(row('new Revision Ready serving the new message, Knative', pick('revisionServing')));
    } finally {
      await adapter.stop();
      await fn.stop();
    }
  } finally {
    await stopCluster(dir, () => undefined);
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`\nbench:node failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
