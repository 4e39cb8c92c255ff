/**
 * `npm run bench:knative`: edit -> restart on the Knative path, with the function warm and at zero.
 *
 * On a fresh local cluster with a node and the Knative path (`startCluster({ knative: true })`): the project's
 * manifests through `localManifests` (the function as the Knative Service `func deploy` creates, min-scale 0; the
 * ApiServerSource and PingSource of knative/; helloworld's test environment), the adapter pod the Eventing
 * controller made delivering through Kourier (and the activator when the function is at zero). Each edit merge-patches
 * helloworld's opted-in ConfigMap; measured until helloworld-test's template changes (the restart) and until its
 * new Revision is Ready. Then the resident memory of the event path while idle. See BENCHMARKS.md.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setAutoscalerConfig } from '../cluster/autoscaler-config.js';
import { startCluster, stopCluster } from '../cluster/control-plane.js';
import { buildImages, importImages } from '../cluster/images.js';
import { kubeRequest, readKubeconfig, type KubeTarget } from '../cluster/kube.js';
import { localManifests } from '../cluster/local-manifests.js';
import { applyKustomization, eventually } from '../cluster/objects.js';
import { podPids, readRssBytes } from '../cluster/proc-stats.js';
import { REPO_ROOT } from '../cluster/util.js';
import { percentile } from './lib/stats.js';

const USAGE = `usage: npm run bench:knative -- [options]
  --warm <n>   edits with the function running (default 5)
  --cold <n>   edits with the function at zero, each after its last pod is gone (default 3)
  --dir <dir>  cluster directory (default .cluster/bench-knative; started fresh, stopped at the end)`;

const { values } = parseArgs({
  options: {
    warm: { type: 'string', default: '5' },
    cold: { type: 'string', default: '3' },
    dir: { type: 'string', default: path.join(REPO_ROOT, '.cluster', 'bench-knative') },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const NAMESPACE = 'bench';
const FUNCTION_PODS = 'serving.knative.dev/service=config-restarter';

interface Ksvc {
  metadata: { generation: number };
  status?: { latestReadyRevisionName?: string; conditions?: { type: string; status: string }[] };
}
interface PodList {
  items: {
    metadata: { uid: string; deletionTimestamp?: string };
    status: { conditions?: { type: string; status: string }[] };
  }[];
}

/** One edit's timings (ms from the edit's answer). */
interface EditTiming {
  restart: number;
  revisionReady: number;
  podCreated?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const ksvcPath = `/apis/serving.knative.dev/v1/namespaces/${NAMESPACE}/services/helloworld-test`;

async function get<T>(target: KubeTarget, objectPath: string): Promise<T> {
  return (await kubeRequest<T>(target, 'GET', objectPath)).body;
}

const functionPods = async (target: KubeTarget): Promise<PodList['items']> =>
  (
    await get<PodList>(
      target,
      `/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=${encodeURIComponent(FUNCTION_PODS)}`,
    )
  ).items;

const isReady = (conditions?: { type: string; status: string }[]): boolean =>
  conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

/** Edits helloworld's ConfigMap and times the restart (template change) and the new Revision Ready, polling every 20 ms. */
async function timedEdit(target: KubeTarget, n: number, watchPods: boolean): Promise<EditTiming> {
  const before = await get<Ksvc>(target, ksvcPath);
  const podsBefore = new Set((await functionPods(target)).map((p) => p.metadata.uid));
  await kubeRequest(
    target,
    'PATCH',
    `/api/v1/namespaces/${NAMESPACE}/configmaps/helloworld-config-test`,
    { data: { MESSAGE: `bench edit ${n}` } },
    { contentType: 'application/merge-patch+json' },
  );
  const start = performance.now();
  const timing: Partial<EditTiming> = {};
  const deadline = start + 180_000;
  while (timing.revisionReady === undefined) {
    if (performance.now() > deadline) throw new Error(`edit ${n}: no Ready Revision after 180 s`);
    const now = (): number => performance.now() - start;
    if (watchPods && timing.podCreated === undefined) {
      if ((await functionPods(target)).some((p) => !podsBefore.has(p.metadata.uid)))
        timing.podCreated = now();
    }
    const k = await get<Ksvc>(target, ksvcPath);
    if (timing.restart === undefined && k.metadata.generation > before.metadata.generation)
      timing.restart = now();
    if (
      timing.restart !== undefined &&
      k.status?.latestReadyRevisionName !== before.status?.latestReadyRevisionName &&
      isReady(k.status?.conditions)
    ) {
      timing.revisionReady = now();
    }
    await sleep(20);
  }
  return timing as EditTiming;
}

const fmt = (ms: number): string => (ms / 1000).toFixed(2);
const row = (label: string, xs: number[]): string =>
  `| ${label} | ${xs.length} | ${fmt(percentile(xs, 50))} | ${fmt(percentile(xs, 90))} | ${xs.map(fmt).join(', ')} |`;
const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(0);

async function main(): Promise<void> {
  const warmEdits = Number(values.warm);
  const coldEdits = Number(values.cold);
  const dir = path.resolve(values.dir);
  const log = (line: string): void => {
    process.stderr.write(`  ${line}\n`);
  };
  await stopCluster(dir, () => undefined);
  const cluster = await startCluster({ dir, knative: true, detached: false, log });
  if (!cluster.node) throw new Error('the cluster started without a node');
  try {
    const admin = readKubeconfig(cluster.kubeconfig);
    const images = await buildImages(['helloworld', 'config-restarter'], { log: () => undefined });
    await importImages(images, { containerdAddress: cluster.node.containerdAddress, log: () => undefined });
    await kubeRequest(admin, 'POST', '/api/v1/namespaces', {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: NAMESPACE },
    });
    const manifests = localManifests(images, { dir, namespace: NAMESPACE });
    await applyKustomization(cluster.kubeconfig, manifests.function);
    await applyKustomization(cluster.kubeconfig, manifests.helloworld);
    await eventually(
      'helloworld-test and the ApiServerSource Ready',
      async () => {
        const k = await get<Ksvc>(admin, ksvcPath);
        const source = await get<{ status?: { conditions?: { type: string; status: string }[] } }>(
          admin,
          `/apis/sources.knative.dev/v1/namespaces/${NAMESPACE}/apiserversources/config-restarter-source`,
        );
        return isReady(k.status?.conditions) && isReady(source.status?.conditions) ? true : undefined;
      },
      300_000,
    );
    log('manifests applied, helloworld-test and the ApiServerSource Ready');

    // Warm: Serving's default windows (60 s stable + 30 s grace) keep the function's pod between edits.
    const warm: EditTiming[] = [];
    for (let i = 0; i < warmEdits + 1; i++) {
      await eventually(
        'a Ready function pod',
        async () =>
          (await functionPods(admin)).some((p) => isReady(p.status.conditions)) ? true : undefined,
        120_000,
      );
      const t = await timedEdit(admin, i, false);
      log(
        `warm edit ${i}: restart ${fmt(t.restart)} s, Revision Ready ${fmt(t.revisionReady)} s${i === 0 ? ' (first, not counted)' : ''}`,
      );
      if (i > 0) warm.push(t);
    }

    // Cold: shorter windows (FAST_SCALE_TO_ZERO); each edit once no function pod is left.
    await setAutoscalerConfig(admin);
    const cold: EditTiming[] = [];
    let idleRss: { adapter: number; functionPods: number } | undefined;
    for (let i = 0; i < coldEdits; i++) {
      await eventually(
        'no function pod',
        async () => ((await functionPods(admin)).length === 0 ? true : undefined),
        300_000,
      );
      if (!idleRss) idleRss = { adapter: await adapterRss(admin), functionPods: 0 };
      const t = await timedEdit(admin, warmEdits + 1 + i, true);
      log(
        `cold edit ${i}: pod created ${fmt(t.podCreated ?? NaN)} s, restart ${fmt(t.restart)} s, Revision Ready ${fmt(t.revisionReady)} s`,
      );
      cold.push(t);
    }

    console.log(`\nEdit -> restart on the Knative path (s; p50 / p90 nearest rank)\n`);
    console.log('| figure | edits | p50 | p90 | each |');
    console.log('| --- | ---: | ---: | ---: | --- |');
    console.log(
      row(
        'warm: edit -> restart (template changed)',
        warm.map((t) => t.restart),
      ),
    );
    console.log(
      row(
        'warm: edit -> new Revision Ready',
        warm.map((t) => t.revisionReady),
      ),
    );
    console.log(
      row(
        'cold: edit -> function pod created',
        cold.map((t) => t.podCreated ?? NaN),
      ),
    );
    console.log(
      row(
        'cold: edit -> restart (template changed)',
        cold.map((t) => t.restart),
      ),
    );
    console.log(
      row(
        'cold: edit -> new Revision Ready',
        cold.map((t) => t.revisionReady),
      ),
    );
    if (idleRss) {
      console.log(
        `\nIdle event path (RSS, MiB): ApiServerSource adapter pod ${mib(idleRss.adapter)}; function pods 0 (at zero)`,
      );
    }
  } finally {
    await stopCluster(dir, () => undefined);
  }
}

/**
 * Resident memory of the pods of the adapter Deployment the Eventing controller made for the ApiServerSource: every
 * process of each pod, its sandbox's too.
 */
async function adapterRss(admin: KubeTarget): Promise<number> {
  const { items: deployments } = await get<{
    items: {
      metadata: { ownerReferences?: { kind: string }[] };
      spec: { selector: { matchLabels: Record<string, string> } };
    }[];
  }>(admin, `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`);
  const adapter = deployments.find((d) =>
    d.metadata.ownerReferences?.some((o) => o.kind === 'ApiServerSource'),
  );
  if (!adapter) throw new Error('no adapter Deployment owned by the ApiServerSource');
  const selector = Object.entries(adapter.spec.selector.matchLabels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const { items: pods } = await get<PodList>(
    admin,
    `/api/v1/namespaces/${NAMESPACE}/pods?labelSelector=${encodeURIComponent(selector)}`,
  );
  let total = 0;
  for (const pod of pods.filter((p) => !p.metadata.deletionTimestamp)) {
    for (const pid of podPids(pod.metadata.uid)) {
      try {
        total += readRssBytes(pid);
      } catch {
        // Gone meanwhile.
      }
    }
  }
  if (total === 0) throw new Error('no process of the adapter pod found');
  return total;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exit(1);
});
