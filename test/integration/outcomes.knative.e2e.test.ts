/**
 * The outcome of a Knative Service's restart on the Knative path (CoreDNS, Kourier + Envoy, the real Serving and
 * Eventing controllers, started on the shared test cluster for this file): a ConfigMap edit that makes helloworld
 * exit at start gives a new Revision that never becomes Ready; Knative keeps routing to the old one (requests are
 * still answered through the ingress); the function reports `failed` with the Revision's message and, with
 * `<prefix>/onFailure: revert`, puts the template back so the failed Revision is no longer the latest. The
 * function runs as its own process, fed by the real ApiServerSource adapter configured from both shipped sources.
 */
import path from 'node:path';
import { startApiServerSourceAdapter, type ApiServerSourceAdapter } from '../../cluster/adapter.js';
import { clusterStatus } from '../../cluster/control-plane.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { buildImages, importImages } from '../../cluster/images.js';
import { KOURIER_GATEWAY, KOURIER_GATEWAY_NAMESPACE } from '../../cluster/knative-path-config.js';
import { requestThroughClusterDns, startKnativePath, stopKnativePath } from '../../cluster/knative-path.js';
import { kubeRequest, writeServiceAccountKubeconfig } from '../../cluster/kube.js';
import type { NodeProcess } from '../../cluster/node.js';
import {
  applyKustomizationIn,
  deleteNamespace,
  eventually,
  knativeService,
  mergePatch,
  optedInConfigMap,
  PATHS,
  WATCH_LABEL,
} from '../../cluster/objects.js';
import { shippedSource } from '../../cluster/shipped-source.js';
import { contentHash } from '../../functions/config-restarter/src/hash.js';
import { parseRolloutRecord } from '../../functions/config-restarter/src/rollout.js';
import { adminKubeconfigPath, adminTarget, testNode, uniqueName } from './cluster-env.js';
import { TEST_CLUSTER_DIR } from './test-cluster.js';

const target = adminTarget();
const node = testNode();
const ns = uniqueName('knoutcome');
const CM = 'web-config';
const RESTART = 'rolling.restart.controller/restartTimestamp';
const labels = { app: 'web', env: 'test' };
const dir = path.join(TEST_CLUSTER_DIR, ns);
const processes: NodeProcess[] = [];
const adapters: ApiServerSourceAdapter[] = [];
let nodeRoot: string | undefined;
let fn: FunctionProcess | undefined;

interface Ksvc {
  metadata: { annotations?: Record<string, string> };
  spec: { template: { metadata?: { annotations?: Record<string, string> } }; traffic?: unknown };
  status?: {
    url?: string;
    latestCreatedRevisionName?: string;
    latestReadyRevisionName?: string;
    traffic?: { revisionName: string; percent: number }[];
    conditions?: { type: string; status: string }[];
  };
}
const ksvcPath = `${PATHS.ksvcs(ns)}/web`;
const ksvc = async (): Promise<Ksvc> => (await kubeRequest<Ksvc>(target, 'GET', ksvcPath)).body;

beforeAll(async () => {
  const info = (await clusterStatus(TEST_CLUSTER_DIR)).info;
  if (!info?.node) throw new Error('the Knative path needs the test cluster to run a node');
  nodeRoot = info.node.root;
  await startKnativePath({
    dir: TEST_CLUSTER_DIR,
    node: info.node,
    kubeconfig: info.kubeconfig,
    target,
    detached: false,
    timeoutMs: 120_000,
    log: (line) => process.stderr.write(`[knative-path] ${line}\n`),
    onSpawned: (p) => processes.push(p),
  });
  const { helloworld } = await buildImages(['helloworld'], { log: () => undefined });
  await importImages({ helloworld }, { containerdAddress: node.containerdAddress, log: () => undefined });
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
  await kubeRequest(
    target,
    'POST',
    PATHS.configmaps(ns),
    optedInConfigMap(CM, labels, { ENV_MESSAGE: 'one' }),
  );
  const manifest = knativeService('web', {
    labels: { ...labels, [WATCH_LABEL]: 'true' },
    optIn: true,
    podSpec: { containers: [{ image: helloworld.ref, envFrom: [{ configMapRef: { name: CM } }] }] },
    // A short progress deadline (Knative's default is 10 minutes): a Revision whose pod never becomes Ready fails
    // within the test.
    templateMeta: {
      annotations: {
        'autoscaling.knative.dev/min-scale': '1',
        'serving.knative.dev/progress-deadline': '30s',
      },
    },
  }) as { metadata: { annotations: Record<string, string> } };
  manifest.metadata.annotations['rolling.restart.controller/onFailure'] = 'revert';
  await kubeRequest(target, 'POST', PATHS.ksvcs(ns), manifest);
  await eventually(
    'Knative Service web Ready',
    async () =>
      (await ksvc()).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
        ? true
        : undefined,
    240_000,
  );
  const sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, ns, 'config-restarter-source');
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: ns,
    logFile: path.join(dir, 'fn.log'),
  });
  for (const name of ['config-restarter-source', 'config-restarter-workloads']) {
    const source = await shippedSource('knative', name);
    const adapter = await startApiServerSourceAdapter({
      binary: process.env.TEST_ASSET_APISERVER_ADAPTER ?? 'apiserver_receive_adapter',
      kubeconfig: sourceKubeconfig,
      namespace: ns,
      name: source.name,
      sink: fn.url,
      mode: source.mode,
      resources: source.resources,
      logFile: path.join(dir, `${name}.log`),
    });
    adapters.push(adapter);
    await adapter.waitUntilWatching();
  }
}, 600_000);

afterAll(async () => {
  for (const adapter of adapters) await adapter.stop();
  await fn?.stop();
  await stopKnativePath(processes, () => undefined, nodeRoot);
  for (const deployment of [
    `${KOURIER_GATEWAY_NAMESPACE}/deployments/${KOURIER_GATEWAY}`,
    'knative-eventing/deployments/pingsource-mt-adapter',
  ]) {
    await kubeRequest(target, 'DELETE', `/apis/apps/v1/namespaces/${deployment}`, undefined, {
      allowStatus: [404],
    });
  }
  await deleteNamespace(target, ns);
}, 120_000);

describe('a Knative Service whose new Revision fails, on the Knative path', () => {
  it('is reported failed with the Revision message; traffic stays on the old Revision; revert makes the template the previous one again', async () => {
    const before = await ksvc();
    const first = before.status?.latestReadyRevisionName;
    const previousStamp = before.spec.template.metadata?.annotations?.[RESTART];
    expect(first).toBe('web-00001');
    // helloworld refuses an unknown LOG_LEVEL and exits at start: the new Revision crash-loops.
    await mergePatch(target, `${PATHS.configmaps(ns)}/${CM}`, { data: { LOG_LEVEL: 'bogus' } });
    const hash = contentHash(
      'ConfigMap',
      (await kubeRequest(target, 'GET', `${PATHS.configmaps(ns)}/${CM}`)).body as never,
    );
    const record = await eventually(
      'the failed outcome',
      async () => {
        const now = await ksvc();
        const rec = parseRolloutRecord(now.metadata.annotations?.['rolling.restart.controller/rollout']);
        return rec?.state === 'failed' && rec.configs[`configmap/${CM}`] === hash ? rec : undefined;
      },
      300_000,
    );
    expect(record.message).toContain('web-00002');
    expect(record.reverted).toBe(true);
    const after = await ksvc();
    // Reverted: the template's restartTimestamp is what it was before the restart; Knative made a Revision of it.
    expect(after.spec.template.metadata?.annotations?.[RESTART]).toBe(previousStamp);
    const latest = await eventually('a Revision of the reverted template', async () => {
      const name = (await ksvc()).status?.latestCreatedRevisionName;
      return name && name !== 'web-00002' ? name : undefined;
    });
    expect(latest).toBe('web-00003');
    // Traffic never moved: spec.traffic untouched, the old Revision serves every request through the ingress.
    expect(after.spec.traffic).toEqual(before.spec.traffic);
    expect(after.status?.traffic).toEqual([
      expect.objectContaining({ revisionName: 'web-00001', percent: 100 }),
    ]);
    const res = await eventually('an answer through the ingress', () =>
      requestThroughClusterDns(node.netns, `${after.status?.url}/message`),
    );
    expect(res).toMatchObject({ status: 200, body: 'one' });
    // The Kubernetes Event a person sees in `kubectl describe ksvc web`.
    const { body: events } = await kubeRequest<{
      items: { reason: string; type: string; message: string; source?: { component?: string } }[];
    }>(
      target,
      'GET',
      `/api/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent('involvedObject.name=web,involvedObject.kind=Service')}`,
    );
    const failed = events.items.find(
      (e) => e.source?.component === 'config-restarter' && e.reason === 'RolloutFailed',
    );
    expect(failed?.type).toBe('Warning');
    expect(failed?.message).toContain('reverted');
  }, 420_000);
});
