/**
 * `npm run demo:node`: the function as a process next to a local cluster with a node. Starts (or reuses) the cluster in `.cluster/`,
 * builds and imports the helloworld image, applies the project's plumbing and the test overlay (pointed at the
 * local image) plus an opted-in plain Deployment of helloworld, runs config-restarter with the token of its own
 * ServiceAccount and the real ApiServerSource adapter pointed at it, edits the ConfigMap, and shows the event, the
 * decisions, the new pod-template annotations and what the cluster made of them: the Deployment's old pods
 * Terminating and new ones Running/Ready, Revision -00002 of the Knative Service Ready, and both answering with the
 * new message next to what the old pods answered; then edits a key that one Deployment does not read, to show a
 * per-key skip next to a restart. Exits on its own and leaves the cluster up.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../cluster/adapter.js';
import { shippedSource } from '../cluster/shipped-source.js';
import { ensureBinaries } from '../cluster/binaries.js';
import { defaultClusterDir, startCluster } from '../cluster/control-plane.js';
import {
  kubeRequest,
  readKubeconfig,
  writeServiceAccountKubeconfig,
  type KubeTarget,
} from '../cluster/kube.js';
import { sleep } from '../cluster/util.js';
import { startFunction, type FunctionProcess } from '../cluster/function-process.js';
import {
  applyKustomization,
  PATHS,
  readWorkload,
  rolloutsOf,
  writeHistory,
  type RolloutObject,
} from '../cluster/objects.js';
import { pingSourceRequest } from '../cluster/apiserver-event.js';
import { helloworldDeployment, renderHelloworld } from '../cluster/helloworld-deployment.js';
import { buildImages, importImages } from '../cluster/images.js';
import { localManifests } from '../cluster/local-manifests.js';
import { bold, show, step } from './lib/console.js';
import { helloworldMessages, listPods, podState, podTimeline, type PodView } from './lib/pod-timeline.js';

const NS = 'helloworld';
const PREFIX = 'rolling.restart.controller';

/** The opted-in plain Deployment of helloworld next to its Knative Service, tied to the ConfigMap by labels. */
const WORKER = 'helloworld-worker-test';
const WORKER_PODS = `component=${WORKER}`;
const REVISION_PODS = 'serving.knative.dev/configuration=helloworld-test';
/** What an ingress adds for the activator: which Revision a request is for. */
const revisionHeaders = (revision: string): Record<string, string> => ({
  'Knative-Serving-Namespace': NS,
  'Knative-Serving-Revision': revision,
});

/** Waits for `count` pods of `selector`, all Running/Ready. */
async function waitForPods(admin: KubeTarget, selector: string, count: number): Promise<PodView[]> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const pods = await rolledOut(admin, selector, count, []);
    if (pods) return pods;
    if (Date.now() > deadline) throw new Error(`no ${count} Ready pods of ${selector} within 180 s`);
    await sleep(500);
  }
}

/** Exactly `count` pods of `selector`, all Running/Ready and none of `old`; undefined until then. */
async function rolledOut(
  admin: KubeTarget,
  selector: string,
  count: number,
  old: PodView[],
): Promise<PodView[] | undefined> {
  const pods = await listPods(admin, NS, selector);
  const fresh = pods.filter(
    (p) => podState(p) === 'Running/Ready' && !old.some((o) => o.metadata.uid === p.metadata.uid),
  );
  return pods.length === count && fresh.length === count ? fresh : undefined;
}

/**
 * The latest Ready Revision of helloworld-test once `accept(name)` holds for it (waiting up to `timeoutMs`);
 * '' when it does not within that time.
 */
async function latestReadyRevision(
  admin: KubeTarget,
  accept: (name: string) => boolean,
  timeoutMs = 180_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await kubeRequest<{ status?: { latestReadyRevisionName?: string } }>(
      admin,
      'GET',
      `/apis/serving.knative.dev/v1/namespaces/${NS}/configurations/helloworld-test`,
      undefined,
      { allowStatus: [404] },
    );
    const name = body.status?.latestReadyRevisionName;
    if (name && accept(name)) return name;
    if (Date.now() >= deadline) {
      if (timeoutMs === 0) return '';
      throw new Error(`no Ready Revision of helloworld-test within ${timeoutMs / 1000} s`);
    }
    await sleep(500);
  }
}

/** A manifest moved to `namespace` (server-side apply needs it in the body). */
function deploymentIn(namespace: string, manifest: Record<string, unknown>): Record<string, unknown> {
  return { ...manifest, metadata: { ...(manifest.metadata as object), namespace } };
}

/** The ClusterIP of a Service of the namespace (a Revision's public Service has the Revision's name). */
async function clusterIp(admin: KubeTarget, service: string): Promise<string> {
  const { body } = await kubeRequest<{ spec: { clusterIP: string } }>(
    admin,
    'GET',
    `/api/v1/namespaces/${NS}/services/${service}`,
  );
  return body.spec.clusterIP;
}

interface Exchange {
  request: { headers: IncomingHttpHeaders; body: string };
  response: { status: number; headers: Record<string, string>; body: string };
}

/** Sits between the adapter and the function to show what travels; forwards everything unchanged. */
async function startTap(target: () => string, exchanges: Exchange[]): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers: Record<string, string> = {};
      for (const [key, value] of Object.entries(req.headers)) {
        if (typeof value === 'string' && key !== 'host' && key !== 'content-length') headers[key] = value;
      }
      fetch(target(), { method: 'POST', headers, body })
        .then(async (reply) => {
          const replyBody = await reply.text();
          const replyHeaders: Record<string, string> = {};
          reply.headers.forEach((value, key) => (replyHeaders[key] = value));
          exchanges.push({
            request: { headers: req.headers, body },
            response: { status: reply.status, headers: replyHeaders, body: replyBody },
          });
          res
            .writeHead(reply.status, { 'content-type': replyHeaders['content-type'] ?? 'text/plain' })
            .end(replyBody);
        })
        .catch((error: unknown) => {
          res.writeHead(502).end(String(error));
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

function printDecisions(body: string): void {
  try {
    const data = JSON.parse(body) as {
      decisions?: { workload: { kind: string; name: string }; action: string; reason: string }[];
    };
    for (const d of data.decisions ?? [])
      show(`${d.action.padEnd(7)} ${d.workload.kind}/${d.workload.name}: ${d.reason}`);
    if (!data.decisions?.length) show(body);
  } catch {
    show(body);
  }
}

/** One line per rollout object: name, owner, rollout number, creation time. */
function showRollout(label: string, object: RolloutObject, extra = ''): void {
  show(
    `${label.padEnd(9)} ${object.name}  owner ${object.owner}  revision ${object.revision}  created ${object.createdAt}${extra}`,
  );
}

/** Steps 1 and 2: the cluster with its node, the images, the manifests, helloworld's pods and Revision Ready. */
async function setUp(dir: string, demoDir: string, log: (line: string) => void) {
  const rel = path.relative(process.cwd(), dir) || dir;
  step(
    1,
    'Local cluster: etcd + kube-apiserver, kube-controller-manager, Knative Serving, and a node (kubelet, containerd)',
  );
  const binaries = await ensureBinaries(log);
  const cluster = await startCluster({ dir, binaries, log });
  log(
    cluster.alreadyRunning
      ? `reusing the cluster already running at ${cluster.server}`
      : `started at ${cluster.server}`,
  );
  if (!cluster.node) {
    throw new Error(
      `the cluster in ${rel} runs without a node (cluster:up --no-node or --no-controllers); ` +
        'restart it with npm run cluster:down && npm run cluster:up',
    );
  }
  const netns = cluster.node.netns;
  const admin = readKubeconfig(cluster.kubeconfig);
  const images = await buildImages(['helloworld', 'config-restarter'], { log });
  await importImages(images, { containerdAddress: cluster.node.containerdAddress, log });
  const manifests = localManifests(images, { dir: demoDir });

  step(
    2,
    'Apply knative/ (plumbing, RBAC), kustomize/overlays/test (with the local image) and an opted-in plain Deployment',
  );
  show((await applyKustomization(cluster.kubeconfig, 'knative')).trim());
  show((await applyKustomization(cluster.kubeconfig, manifests.helloworld)).trim());
  const { service } = await renderHelloworld(manifests.helloworld);
  await kubeRequest(
    admin,
    'PATCH',
    `/apis/apps/v1/namespaces/${NS}/deployments/${WORKER}?fieldManager=demo&force=true`,
    JSON.stringify(
      deploymentIn(
        NS,
        helloworldDeployment(service, { name: WORKER, replicas: 2, terminationGracePeriodSeconds: 5 }),
      ),
    ),
    {
      contentType: 'application/apply-patch+yaml',
    },
  );
  show(
    `deployment.apps/${WORKER} serverside-applied (helloworld's container from the Knative Service, 2 replicas)`,
  );
  const oldPods = await waitForPods(admin, WORKER_PODS, 2);
  const oldRevision = await latestReadyRevision(admin, () => true);
  show(`${oldPods.length} pods of ${WORKER} Running/Ready; Revision ${oldRevision} Ready`);

  return { cluster, binaries, admin, netns, oldPods, oldRevision };
}

async function main(): Promise<void> {
  const started = Date.now();
  const dir = defaultClusterDir();
  const demoDir = path.join(dir, 'demo');
  const rel = path.relative(process.cwd(), dir) || dir;
  const log = (line: string): void => console.log(`    ${line}`);

  const { cluster, binaries, admin, netns, oldPods, oldRevision } = await setUp(dir, demoDir, log);

  step(3, 'Start config-restarter as its ServiceAccount, and the real ApiServerSource adapter pointed at it');
  const sourceKubeconfig = path.join(demoDir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(cluster.kubeconfig, sourceKubeconfig, NS, 'config-restarter-source');
  let fn: FunctionProcess | undefined;
  let adapter: ApiServerSourceAdapter | undefined;
  const exchanges: Exchange[] = [];
  const tap = await startTap(() => fn!.url, exchanges);
  try {
    fn = await startFunction({
      adminKubeconfig: cluster.kubeconfig,
      namespace: NS,
      logFile: path.join(demoDir, 'config-restarter.log'),
      env: { LOG_LEVEL: 'info' },
    });
    log(`config-restarter listening on ${fn.url} as system:serviceaccount:${NS}:config-restarter`);
    // Configured like the ApiServerSource of knative/: Reference mode, only ConfigMaps with the watch label.
    const source = await shippedSource('knative');
    adapter = await startApiServerSourceAdapter({
      binary: binaries.apiserverAdapter,
      kubeconfig: sourceKubeconfig,
      namespace: NS,
      name: source.name,
      sink: `http://127.0.0.1:${(tap.address() as AddressInfo).port}/`,
      mode: source.mode,
      resources: source.resources,
      logFile: path.join(demoDir, 'adapter.log'),
    });
    await adapter.waitUntilWatching();
    log(
      `ApiServerSource adapter watching ${source.resources.map((r) => `${r.resource} (${r.selector ?? 'all'})`).join(', ')} ` +
        `in ${NS} as system:serviceaccount:${NS}:config-restarter-source`,
    );

    step(
      4,
      'Resync (what the PingSource sends): records on first contact, rolls out what changed while nobody watched',
    );
    const resync = await fetch(fn.url, { method: 'POST', ...pingSourceRequest() });
    printDecisions(JSON.stringify(((await resync.json()) as { decisions?: unknown }) ?? {}));

    const ksvcPath = `${PATHS.ksvcs(NS)}/helloworld-test`;
    const workerPath = `${PATHS.deployments(NS)}/${WORKER}`;
    const readBoth = async () => ({
      ksvc: await readWorkload(admin, PATHS.ksvcs(NS), 'helloworld-test'),
      worker: await readWorkload(admin, PATHS.deployments(NS), WORKER),
    });
    const before = await readBoth();
    const replicaSets = () => rolloutsOf(admin, PATHS.replicasets(NS), `Deployment/${WORKER}`);
    const revisions = () => rolloutsOf(admin, PATHS.revisions(NS), 'Configuration/helloworld-test');
    // The current ones (the controllers made them when the manifests were applied), before the edit.
    const waitForRollouts = async (sets: number, revs: number) => {
      const until = Date.now() + 20_000;
      for (;;) {
        const found = { sets: await replicaSets(), revs: await revisions() };
        if ((found.sets.length >= sets && found.revs.length >= revs) || Date.now() > until) return found;
        await sleep(200);
      }
    };
    const rolloutsBefore = await waitForRollouts(1, 1);

    const oldAnswers = {
      pod: await helloworldMessages(netns, `http://${oldPods[0]?.status.podIP}:8080`),
      revision: await helloworldMessages(
        netns,
        `http://${await clusterIp(admin, oldRevision)}`,
        revisionHeaders(oldRevision),
      ),
    };

    const message = `Hello from the demo at ${new Date().toISOString()}`;
    step(
      5,
      `Edit the ConfigMap: kubectl patch configmap helloworld-config-test -p '{"data":{"MESSAGE":"${message}"}}'`,
    );
    await kubeRequest(
      admin,
      'PATCH',
      `/api/v1/namespaces/${NS}/configmaps/helloworld-config-test`,
      { data: { MESSAGE: message } },
      {
        contentType: 'application/merge-patch+json',
      },
    );

    show(`pods as the node runs them (kubectl get pods -n ${NS} -w), seconds after the edit:`);
    let newRevision2 = '';
    await podTimeline(
      admin,
      NS,
      [WORKER_PODS, REVISION_PODS],
      async () =>
        (await rolledOut(admin, WORKER_PODS, 2, oldPods)) !== undefined &&
        (newRevision2 = await latestReadyRevision(admin, (name) => name !== oldRevision, 0)) !== '',
      {
        what: `the rollout of ${WORKER} and a new Ready Revision of helloworld-test`,
        onChange: (c) => show(`  +${c.at.toFixed(1).padStart(5)} s  ${c.pod.padEnd(52)} ${c.state}`),
      },
    );
    const newPods = (await rolledOut(admin, WORKER_PODS, 2, oldPods)) ?? [];

    const deadline = Date.now() + 20_000;
    let after = before;
    while (Date.now() < deadline) {
      after = await readBoth();
      const key = `${PREFIX}/restartTimestamp`;
      if (
        after.ksvc.templateAnnotations[key] !== before.ksvc.templateAnnotations[key] &&
        after.worker.templateAnnotations[key] !== before.worker.templateAnnotations[key]
      )
        break;
      await sleep(200);
    }
    const rolloutsAfter = await waitForRollouts(
      rolloutsBefore.sets.length + 1,
      rolloutsBefore.revs.length + 1,
    );
    await sleep(300);

    step(6, 'The event the adapter sent (binary mode) and the reply of config-restarter');
    const exchange = exchanges.find((e) => e.request.headers['ce-name'] === 'helloworld-config-test');
    if (!exchange)
      throw new Error(
        'no event about helloworld-config-test arrived; see the adapter log ' + adapter.logFile,
      );
    for (const [key, value] of Object.entries(exchange.request.headers))
      if (key.startsWith('ce-') || key === 'kn-namespace') show(`${key}: ${String(value)}`);
    show(exchange.request.body);
    console.log(
      `\n    -> HTTP ${exchange.response.status}, ce-type: ${exchange.response.headers['ce-type']}; decisions:`,
    );
    printDecisions(exchange.response.body);

    step(7, 'What the API server holds now');
    for (const [label, apiPath, was, now] of [
      ['ksvc/helloworld-test', ksvcPath, before.ksvc, after.ksvc],
      [`deployment/${WORKER}`, workerPath, before.worker, after.worker],
    ] as const) {
      show(`${label}  (generation ${was.generation} -> ${now.generation})  ${apiPath}`);
      show(`  spec.template.metadata.annotations: ${JSON.stringify(now.templateAnnotations)}`);
      show(`  metadata.annotations["${PREFIX}/configHashes"]: ${now.annotations[`${PREFIX}/configHashes`]}`);
    }

    step(8, 'What the real controllers made of it');
    const newSet = rolloutsAfter.sets.at(-1);
    const newRevision = rolloutsAfter.revs.at(-1);
    if (!newSet || newSet.revision <= (rolloutsBefore.sets.at(-1)?.revision ?? 0)) {
      throw new Error(`kube-controller-manager rolled no new ReplicaSet of ${WORKER}`);
    }
    if (!newRevision || newRevision.revision <= (rolloutsBefore.revs.at(-1)?.revision ?? 0)) {
      throw new Error('the Knative Serving controller rolled no new Revision of helloworld-test');
    }
    const previousSet = rolloutsAfter.sets.at(-2);
    if (previousSet)
      showRollout('previous', previousSet, `  pod-template-hash ${previousSet.podTemplateHash}`);
    showRollout('new', newSet, `  pod-template-hash ${newSet.podTemplateHash}`);
    const previousRevision = rolloutsAfter.revs.at(-2);
    if (previousRevision) showRollout('previous', previousRevision);
    showRollout('new', newRevision, '  (of Knative Service helloworld-test)');
    for (const revision of [previousRevision, newRevision]) {
      if (!revision) continue;
      const history = await writeHistory(admin, `${PATHS.deployments(NS)}/${revision.name}-deployment`).catch(
        () => undefined,
      );
      if (history) {
        const writers = history.managers.join(', ');
        const note = history.managers.includes('config-restarter') ? '' : ' (never by config-restarter)';
        show(
          `deployment ${revision.name}-deployment  owner Revision/${revision.name}  ` +
            `generation ${history.generation}, written by ${writers}${note}`,
        );
      }
    }

    await answersStep(9, {
      admin,
      netns,
      message,
      old: { pods: oldPods, revision: oldRevision, answers: oldAnswers },
      now: { pods: newPods, revision: newRevision2 },
    });

    await perKeyStep(10, { admin, fn, exchanges });
  } finally {
    await adapter?.stop();
    await fn?.stop();
    await new Promise((resolve) => tap.close(resolve));
  }

  console.log(
    `\n${bold('Done')} in ${Math.round((Date.now() - started) / 1000)} s. The local cluster is still running:`,
  );
  console.log(`    kubectl --kubeconfig ${rel}/kubeconfig get ksvc,revisions,deploy,rs,cm -n ${NS}`);
  console.log(
    `    kubectl --kubeconfig ${rel}/kubeconfig get ksvc helloworld-test -n ${NS} -o jsonpath='{.spec.template.metadata.annotations}'`,
  );
  console.log(
    `    logs: ${path.relative(process.cwd(), demoDir)}/config-restarter.log, ${path.relative(process.cwd(), demoDir)}/adapter.log`,
  );
  console.log('    stop it with: npm run cluster:down');
}

type Answers = Awaited<ReturnType<typeof helloworldMessages>>;

/** Step: what the old pods answered before the edit, next to what the new pods answer now (which must be `message`). */
async function answersStep(
  n: number,
  options: {
    admin: KubeTarget;
    netns: string;
    message: string;
    old: { pods: PodView[]; revision: string; answers: { pod: Answers; revision: Answers } };
    now: { pods: PodView[]; revision: string };
  },
): Promise<void> {
  const { admin, netns, message, old, now } = options;
  step(n, 'What helloworld answers: the old pods before the edit, the new pods after it');
  const oldPod = old.pods[0]?.metadata.name ?? '';
  const newPod = now.pods[0];
  const answers = {
    pod: await helloworldMessages(netns, `http://${newPod?.status.podIP}:8080`),
    revision: await helloworldMessages(
      netns,
      `http://${await clusterIp(admin, now.revision)}`,
      revisionHeaders(now.revision),
    ),
  };
  const rows = (route: string, key: keyof Answers): string[] => [
    `GET ${route}`,
    `  before  pod ${oldPod.padEnd(44)} ${old.answers.pod[key].status} ${old.answers.pod[key].body}`,
    `  after   pod ${(newPod?.metadata.name ?? '').padEnd(44)} ${answers.pod[key].status} ${answers.pod[key].body}`,
    `  before  Revision ${old.revision.padEnd(39)} ${old.answers.revision[key].status} ${old.answers.revision[key].body}`,
    `  after   Revision ${now.revision.padEnd(39)} ${answers.revision[key].status} ${answers.revision[key].body}`,
  ];
  show([...rows('/message', 'message'), ...rows('/messageFromFile', 'messageFromFile')].join('\n'));
  show(
    `(pods by pod IP, Revisions through their public Service and the activator, from inside the node's namespace ${netns})`,
  );
  const wrong = [answers.pod, answers.revision]
    .flatMap((a) => [a.message, a.messageFromFile])
    .find((r) => r.status !== 200 || r.body !== message);
  if (wrong) throw new Error(`helloworld answered ${wrong.status} ${wrong.body}, not the new message`);
}

// ---------------------------------------------------------------------------------------------------------
// Step: per-key changes. Two Deployments tied to helloworld-config-test by reference only: one reads just
// the key MESSAGE, the other the whole ConfigMap. A change of another key restarts the second only.
// ---------------------------------------------------------------------------------------------------------

/** A Deployment tied to helloworld-config-test by reference only (its labels match nothing). */
function perKeyDeployment(name: string, container: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: NS,
      labels: { app: name },
      annotations: { [`${PREFIX}/restartOnTrigger`]: 'true' },
    },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'main', image: 'ghcr.io/example/helloworld:0.1.0', ...container }] },
      },
    },
  };
}

const PER_KEY = [
  perKeyDeployment('helloworld-uses-message', {
    env: [
      { name: 'MESSAGE', valueFrom: { configMapKeyRef: { name: 'helloworld-config-test', key: 'MESSAGE' } } },
    ],
  }),
  perKeyDeployment('helloworld-uses-all', {
    envFrom: [{ configMapRef: { name: 'helloworld-config-test' } }],
  }),
];

async function perKeyStep(
  n: number,
  { admin, fn, exchanges }: { admin: KubeTarget; fn: FunctionProcess; exchanges: Exchange[] },
): Promise<void> {
  step(
    n,
    'Per-key changes: edit a key one Deployment does not read (it stays); the one reading every key rolls',
  );
  for (const deployment of PER_KEY) {
    const { name } = deployment.metadata as { name: string };
    await kubeRequest(
      admin,
      'PATCH',
      `${PATHS.deployments(NS)}/${name}?fieldManager=demo&force=true`,
      JSON.stringify(deployment),
      { contentType: 'application/apply-patch+yaml' },
    );
    show(`deployment.apps/${name} serverside-applied`);
  }
  // First contact: the resync records what each uses (MESSAGE only, or every key).
  await fetch(fn.url, { method: 'POST', ...pingSourceRequest() });
  const seen = exchanges.length;
  const note = `per-key demo at ${new Date().toISOString()}`;
  show(`kubectl patch configmap helloworld-config-test -p '{"data":{"NOTE":"${note}"}}'`);
  await kubeRequest(
    admin,
    'PATCH',
    `/api/v1/namespaces/${NS}/configmaps/helloworld-config-test`,
    { data: { NOTE: note } },
    { contentType: 'application/merge-patch+json' },
  );
  const deadline = Date.now() + 20_000;
  let exchange: Exchange | undefined;
  while (!exchange && Date.now() < deadline) {
    exchange = exchanges.slice(seen).find((e) => e.request.headers['ce-name'] === 'helloworld-config-test');
    if (!exchange) await sleep(200);
  }
  if (!exchange) throw new Error('no event about the NOTE edit arrived');
  const names = new Set(PER_KEY.map((d) => (d.metadata as { name: string }).name));
  const data = JSON.parse(exchange.response.body) as {
    decisions?: { workload: { kind: string; name: string }; action: string; reason: string }[];
  };
  printDecisions(JSON.stringify({ decisions: data.decisions?.filter((d) => names.has(d.workload.name)) }));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
    console.error(
      'The cluster (if it started) is left running for inspection; stop it with: npm run cluster:down',
    );
    process.exit(1);
  },
);
