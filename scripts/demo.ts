/**
 * `npm run demo`: the whole Knative path on a local cluster with a node. Starts (or reuses) the cluster in
 * `.cluster/` with the Knative path (CoreDNS, the Kourier ingress with Envoy, the Eventing controller) and Istio
 * (istiod and its ingress gateway); applies `knative/` with the function's Knative Service as `func deploy` makes
 * it, helloworld's test and prod overlays (pointed at the local images) and `istio/` (with a self-signed
 * certificate for prod's HTTPS); waits until the function has scaled to zero; edits the test ConfigMap; and shows
 * in order: the function pod woken from zero by the activator, the event the adapter pod (made by the Eventing
 * controller) delivered and the function's decisions, the new Revision Ready with the traffic moved to it, the old
 * Revision's pod scaled down, how the restart ended (the rollout record and the Events the function wrote once the
 * Service's status change reached it), and helloworld through istio/'s Gateway: the new message on the test
 * host, prod unchanged. Exits on its own and leaves the cluster up. `npm run demo:node` is the shorter demo
 * without the Knative path.
 */
import path from 'node:path';
import { restoreAutoscalerConfig, setAutoscalerConfig } from '../cluster/autoscaler-config.js';
import { ensureBinaries } from '../cluster/binaries.js';
import { defaultClusterDir, startCluster } from '../cluster/control-plane.js';
import { buildImages, importImages } from '../cluster/images.js';
import { INGRESS_GATEWAY, ISTIO_NAMESPACE } from '../cluster/istio-config.js';
import { requestGateway, selfSignedCertificate } from '../cluster/istio-path.js';
import { kubeRequest, readKubeconfig, type KubeTarget } from '../cluster/kube.js';
import { localManifests } from '../cluster/local-manifests.js';
import { applyKustomization, eventually } from '../cluster/objects.js';
import { REPO_ROOT } from '../cluster/util.js';
import { bold, show, step } from './lib/console.js';
import { listPods, podTimeline, type PodView } from './lib/pod-timeline.js';

const NS = 'helloworld';
const FUNCTION_PODS = 'serving.knative.dev/service=config-restarter';
const TEST_PODS = 'serving.knative.dev/service=helloworld-test';
/** The two environments and how istio/'s Gateway serves them: test over HTTP, prod over HTTPS. */
const ENVIRONMENTS = [
  { env: 'test', ksvc: 'helloworld-test', host: 'helloworld-test.example.com', scheme: 'http' },
  { env: 'prod', ksvc: 'helloworld-prod', host: 'helloworld.example.com', scheme: 'https' },
] as const;
type Environment = (typeof ENVIRONMENTS)[number];

/** The Istio ingress gateway's address and the CA (the prod certificate itself) a client trusts for HTTPS. */
interface Gateway {
  netns: string;
  address: string;
  ca: string;
}

interface Condition {
  type: string;
  status: string;
  message?: string;
}
interface KnativeObject {
  metadata: { name: string; uid: string };
  status?: {
    conditions?: Condition[];
    url?: string;
    sinkUri?: string;
    latestReadyRevisionName?: string;
    latestCreatedRevisionName?: string;
    traffic?: { revisionName: string; percent: number; latestRevision?: boolean }[];
  };
}

const isReady = (o: { status?: { conditions?: Condition[] } } | undefined): boolean =>
  o?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function get<T>(admin: KubeTarget, objectPath: string): Promise<T | undefined> {
  const { status, body } = await kubeRequest<T>(admin, 'GET', objectPath, undefined, { allowStatus: [404] });
  return status === 404 ? undefined : body;
}

const ksvcPath = (name: string): string => `/apis/serving.knative.dev/v1/namespaces/${NS}/services/${name}`;

/** A Knative Service once `accept` holds for it and it is Ready. */
function ksvcWhen(
  admin: KubeTarget,
  name: string,
  accept: (ksvc: KnativeObject) => boolean = () => true,
  timeoutMs = 240_000,
): Promise<KnativeObject> {
  return eventually(
    `Knative Service ${name} Ready`,
    async () => {
      const ksvc = await get<KnativeObject>(admin, ksvcPath(name));
      return ksvc && isReady(ksvc) && accept(ksvc) ? ksvc : undefined;
    },
    timeoutMs,
  );
}

/** helloworld's `/message` through the Istio ingress gateway, as a client outside the cluster asks for it. */
async function messageThroughGateway(gateway: Gateway, environment: Environment): Promise<string> {
  const https = environment.scheme === 'https';
  const res = await requestGateway(gateway.netns, {
    address: gateway.address,
    port: https ? 443 : 80,
    host: environment.host,
    path: '/message',
    ...(https ? { tlsCa: gateway.ca } : {}),
    timeoutMs: 30_000,
  });
  return `${environment.scheme}://${environment.host}/message -> HTTP ${res.status} from ${res.headers.server ?? '?'}: ${res.body}`;
}

/** The prod host's certificate as a Secret in istio-system (self-signed, one day), then istio/ applied. */
async function applyIstio(admin: KubeTarget, kubeconfig: string): Promise<string> {
  const prod = ENVIRONMENTS[1];
  const tls = await selfSignedCertificate(prod.host);
  await kubeRequest(
    admin,
    'PATCH',
    `/api/v1/namespaces/${ISTIO_NAMESPACE}/secrets/helloworld-prod-tls?fieldManager=demo&force=true`,
    {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'kubernetes.io/tls',
      metadata: { name: 'helloworld-prod-tls', namespace: ISTIO_NAMESPACE },
      stringData: { 'tls.crt': tls.cert, 'tls.key': tls.key },
    },
    { contentType: 'application/apply-patch+yaml' },
  );
  show(`secret/helloworld-prod-tls serverside-applied in ${ISTIO_NAMESPACE} (self-signed for ${prod.host})`);
  show((await applyKustomization(kubeconfig, path.join(REPO_ROOT, 'istio'))).trim());
  return tls.cert;
}

/** The lines of a pod's log (its main container) for which `keep` holds, parsed. */
async function podLogLines(
  admin: KubeTarget,
  pod: string,
  keep: (line: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>[]> {
  const { body } = await kubeRequest<unknown>(
    admin,
    'GET',
    `/api/v1/namespaces/${NS}/pods/${pod}/log?container=user-container`,
  );
  // A log of one JSON line comes back parsed.
  return (typeof body === 'string' ? body : JSON.stringify(body)).split('\n').flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      return keep(parsed) ? [parsed] : [];
    } catch {
      return [];
    }
  });
}

/** The function pod created after the edit, and what it logged about the event once it has handled it. */
class WokenFunction {
  pod: PodView | undefined;
  lines: Record<string, unknown>[] = [];

  constructor(
    private readonly admin: KubeTarget,
    private readonly editedAt: number,
  ) {}

  /** Finds the pod, then reads its log until it holds the event's outcome. */
  async poll(): Promise<void> {
    if (this.lines.length > 0) return;
    const pods = await listPods(this.admin, NS, FUNCTION_PODS);
    const name = this.pod?.metadata.name;
    this.pod =
      pods.find((p) => p.metadata.name === name) ??
      this.pod ??
      pods.find((p) => Date.parse(p.metadata.creationTimestamp ?? '') >= this.editedAt - 1000);
    if (this.pod?.status.phase !== 'Running') return;
    const lines = await podLogLines(this.admin, this.pod.metadata.name, (l) =>
      ['decision', 'event processed'].includes(String(l.msg)),
    ).catch(() => []);
    if (lines.some((l) => l.msg === 'event processed')) this.lines = lines;
  }
}

/** A `decision` or `event processed` line of the function's log, as one short line. */
function describeLogLine(line: Record<string, unknown>): string {
  const text = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));
  if (line.msg === 'decision') {
    const workload = line.workload as { kind?: string; name?: string } | undefined;
    return `decision ${text(line.action).padEnd(7)} ${workload?.kind}/${workload?.name}: ${text(line.reason)}`;
  }
  return (
    `${text(line.time)} event ${text(line.eventId)} (${text(line.eventType)}) processed in ` +
    `${Number(line.durationMs).toFixed(0)} ms: ${text(line.reason)}`
  );
}

interface CoreEvent {
  type: string;
  reason: string;
  message: string;
  lastTimestamp?: string;
  eventTime?: string;
  source?: { component?: string };
}

/**
 * Step: how the restart ended, as the function wrote it once the Service's status change reached it through the
 * workloads' ApiServerSource: the rollout record on the Service and its Events (kubectl describe ksvc).
 */
async function outcomeStep(n: number, admin: KubeTarget, name: string, editedAt: number): Promise<void> {
  step(n, `How the restart ended: the rollout record and the Events on ksvc/${name} (kubectl describe)`);
  const key = 'rolling.restart.controller/rollout';
  const record = await eventually(
    `the outcome of ${name}'s restart`,
    async () => {
      const ksvc = await get<{ metadata: { annotations?: Record<string, string> } }>(admin, ksvcPath(name));
      const value = ksvc?.metadata.annotations?.[key];
      const parsed = value ? (JSON.parse(value) as { state?: string }) : undefined;
      return parsed && parsed.state !== 'progressing' ? value : undefined;
    },
    120_000,
  );
  show(`metadata.annotations["${key}"]: ${record}`);
  const selector = encodeURIComponent(`involvedObject.name=${name},involvedObject.kind=Service`);
  const { body } = await kubeRequest<{ items: CoreEvent[] }>(
    admin,
    'GET',
    `/api/v1/namespaces/${NS}/events?fieldSelector=${selector}`,
  );
  const ours = body.items
    .filter((e) => e.source?.component === 'config-restarter')
    .filter((e) => Date.parse(e.lastTimestamp ?? e.eventTime ?? '') >= Math.floor(editedAt / 1000) * 1000);
  for (const e of ours) show(`${e.type.padEnd(7)} ${e.reason.padEnd(12)} ${e.message}`);
}

/** Steps 1 to 3: the cluster with the Knative path, the images, the manifests applied and Ready. */
async function setUp(dir: string, demoDir: string, log: (line: string) => void) {
  step(
    1,
    'Local cluster: etcd + kube-apiserver, kube-controller-manager, Knative Serving and Eventing, a node, CoreDNS, Kourier and Istio',
  );
  const binaries = await ensureBinaries(log);
  const cluster = await startCluster({ dir, binaries, log, istio: true });
  log(
    cluster.alreadyRunning
      ? `reusing the cluster running at ${cluster.server}`
      : `started at ${cluster.server}`,
  );
  const node = cluster.node;
  if (!node?.processes.some((p) => p.name === 'istiod')) {
    const rel = path.relative(process.cwd(), dir) || dir;
    throw new Error(
      `the cluster in ${rel} runs without the Knative path and Istio; restart it: npm run cluster:down && npm run demo`,
    );
  }
  const admin = readKubeconfig(cluster.kubeconfig);
  const images = await buildImages(['helloworld', 'config-restarter', 'apiserver-adapter', 'mtping'], {
    log,
  });
  await importImages(images, { containerdAddress: node.containerdAddress, log });

  step(
    2,
    'Apply knative/ with the function as `func deploy` makes it, kustomize/overlays/test and /prod, and istio/',
  );
  const fn = localManifests(images, { dir: path.join(demoDir, 'test') });
  show((await applyKustomization(cluster.kubeconfig, fn.function)).trim());
  for (const { env } of ENVIRONMENTS) {
    const manifests = localManifests(images, { dir: path.join(demoDir, env), environment: env });
    show((await applyKustomization(cluster.kubeconfig, manifests.helloworld)).trim());
  }
  const ca = await applyIstio(admin, cluster.kubeconfig);
  const { body: gatewayService } = await kubeRequest<{ spec: { clusterIP: string } }>(
    admin,
    'GET',
    `/api/v1/namespaces/${ISTIO_NAMESPACE}/services/${INGRESS_GATEWAY}`,
  );
  const gateway: Gateway = { netns: node.netns, address: gatewayService.spec.clusterIP, ca };

  step(3, 'What Knative made of them (kubectl get ksvc; the ApiServerSource and its adapter pod)');
  for (const name of ['config-restarter', ...ENVIRONMENTS.map((e) => e.ksvc)]) {
    const ksvc = await ksvcWhen(admin, name);
    show(
      `ksvc/${name.padEnd(17)} Ready  ${ksvc.status?.url}  latest ${ksvc.status?.latestReadyRevisionName}`,
    );
  }
  const source = await eventually(
    'ApiServerSource Ready',
    async () => {
      const s = await get<KnativeObject>(
        admin,
        `/apis/sources.knative.dev/v1/namespaces/${NS}/apiserversources/config-restarter-source`,
      );
      return isReady(s) ? s : undefined;
    },
    240_000,
  );
  show(`apiserversource/config-restarter-source Ready, sink ${source.status?.sinkUri}`);
  const adapter = await eventually(
    'the adapter pod Ready',
    async () => {
      const pods = await listPods(admin, NS, 'eventing.knative.dev/sourceName=config-restarter-source');
      return pods.find((p) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    },
    240_000,
  );
  show(`adapter pod ${adapter.metadata.name} Running/Ready (made by the Eventing controller)`);
  return { admin, gateway };
}

async function main(): Promise<void> {
  const started = Date.now();
  const dir = defaultClusterDir();
  const demoDir = path.join(dir, 'demo');
  const rel = path.relative(process.cwd(), dir) || dir;
  const log = (line: string): void => console.log(`    ${line}`);
  const { admin, gateway } = await setUp(dir, demoDir, log);

  // A local cluster scales to zero after seconds instead of minutes (cluster/autoscaler-config.ts).
  const autoscalerBefore = await setAutoscalerConfig(admin);
  try {
    step(4, 'The function scales to zero: no pod, the activator answers for it');
    await eventually(
      'no config-restarter pod',
      async () => ((await listPods(admin, NS, FUNCTION_PODS)).length === 0 ? true : undefined),
      300_000,
    );
    const fn = await ksvcWhen(admin, 'config-restarter');
    const sks = await get<{ spec: { mode: string } }>(
      admin,
      `/apis/networking.internal.knative.dev/v1alpha1/namespaces/${NS}/serverlessservices/${fn.status?.latestReadyRevisionName}`,
    );
    show(
      `0 pods of ksvc/config-restarter; ServerlessService mode ${sks?.spec.mode} (requests go to the activator)`,
    );

    step(
      5,
      `helloworld through istio/'s Gateway (${INGRESS_GATEWAY} at ${gateway.address}), before the edit`,
    );
    for (const environment of ENVIRONMENTS) {
      const answer = await eventually(
        `${environment.host} through the gateway`,
        async () => {
          const text = await messageThroughGateway(gateway, environment).catch(() => undefined);
          return text?.includes('HTTP 200') ? text : undefined;
        },
        90_000,
      );
      show(answer);
    }

    const before = await ksvcWhen(admin, 'helloworld-test');
    const oldRevision = before.status?.latestReadyRevisionName ?? '';
    const message = `Hello from the demo at ${new Date().toISOString()}`;
    step(
      6,
      `Edit the test ConfigMap: kubectl patch configmap helloworld-config-test -p '{"data":{"MESSAGE":"${message}"}}'`,
    );
    const editedAt = Date.now();
    await kubeRequest(
      admin,
      'PATCH',
      `/api/v1/namespaces/${NS}/configmaps/helloworld-config-test?fieldManager=kubectl-patch`,
      { data: { MESSAGE: message } },
      { contentType: 'application/merge-patch+json' },
    );
    show(`pods (kubectl get pods -n ${NS} -w), seconds after the edit:`);
    let after: KnativeObject | undefined;
    // The woken pod goes back to zero within seconds, and its log with it: read while it runs.
    const woken = new WokenFunction(admin, editedAt);
    await podTimeline(
      admin,
      NS,
      [FUNCTION_PODS, TEST_PODS],
      async () => {
        await woken.poll();
        const ksvc = await get<KnativeObject>(admin, ksvcPath('helloworld-test'));
        const moved = ksvc?.status?.traffic?.every((t) => t.revisionName !== oldRevision) ?? false;
        const oldPods = (await listPods(admin, NS, `serving.knative.dev/revision=${oldRevision}`)).length;
        if (
          isReady(ksvc) &&
          ksvc?.status?.latestReadyRevisionName !== oldRevision &&
          moved &&
          oldPods === 0 &&
          woken.lines.length > 0
        ) {
          after = ksvc;
          return true;
        }
        return false;
      },
      {
        what: 'a new Ready Revision of helloworld-test with the traffic on it and the old one at zero',
        timeoutMs: 300_000,
        onChange: (c) => show(`  +${c.at.toFixed(1).padStart(5)} s  ${c.pod.padEnd(58)} ${c.state}`),
      },
    );

    show(
      'Idle Revisions go to zero after about 6 s while the demo runs (cluster/autoscaler-config.ts); a request wakes them.',
    );

    step(7, 'The event the adapter pod delivered, as the woken function pod logged it, and its decisions');
    if (!woken.pod) throw new Error('no config-restarter pod was created after the edit');
    show(
      `function pod ${woken.pod.metadata.name}, created ${woken.pod.metadata.creationTimestamp} (after the edit)`,
    );
    const lines = woken.lines;
    for (const line of lines) show(describeLogLine(line));
    if (!lines.some((l) => l.msg === 'decision' && l.action === 'restart'))
      throw new Error(`the function pod ${woken.pod.metadata.name} logged no restart decision`);

    step(
      8,
      'The new Revision, Ready, and the traffic on it (kubectl get ksvc helloworld-test -o yaml: status)',
    );
    show(
      `latestCreatedRevisionName ${after?.status?.latestCreatedRevisionName}, latestReadyRevisionName ` +
        `${after?.status?.latestReadyRevisionName} (was ${oldRevision})`,
    );
    for (const t of after?.status?.traffic ?? [])
      show(`traffic: ${t.percent}% -> ${t.revisionName}${t.latestRevision ? ' (latestRevision)' : ''}`);
    show(`pods of the old Revision ${oldRevision}: 0`);

    await outcomeStep(9, admin, 'helloworld-test', editedAt);

    step(
      10,
      "helloworld through istio/'s Gateway, after the edit: test serves the new message, prod did not change",
    );
    for (const environment of ENVIRONMENTS) {
      const answer = await eventually(
        `${environment.host} through the gateway`,
        async () => {
          const text = await messageThroughGateway(gateway, environment).catch(() => undefined);
          return text?.includes('HTTP 200') && (environment.env === 'prod' || text.includes(message))
            ? text
            : undefined;
        },
        60_000,
      );
      show(answer);
    }
  } finally {
    await restoreAutoscalerConfig(admin, autoscalerBefore);
  }

  console.log(
    `\n${bold('Done')} in ${Math.round((Date.now() - started) / 1000)} s. The local cluster is still running:`,
  );
  console.log(`    kubectl --kubeconfig ${rel}/kubeconfig get ksvc,revisions,apiserversources,pods -n ${NS}`);
  console.log(
    `    kubectl --kubeconfig ${rel}/kubeconfig logs -n ${NS} -l ${FUNCTION_PODS} -c user-container`,
  );
  console.log('    stop it with: npm run cluster:down');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
