/**
 * The real controllers next to etcd and kube-apiserver: kube-controller-manager (ReplicaSets, ControllerRevisions,
 * garbage collection, namespace deletion, default ServiceAccounts), the Knative Serving controller and webhook
 * (Configurations, Revisions and their Deployments; defaulting and validation of the Serving kinds), the Knative
 * Eventing webhook (the sources, Broker, Trigger) and the PingSource adapter (mtping).
 * Nothing here runs pods: there is no scheduler and no kubelet.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import type { ControlPlaneComponent } from './binaries.js';
import { KubeRequestError, kubeRequest, type KubeTarget } from './kube.js';
import {
  elapsed,
  freePorts,
  isProcessAlive,
  spawnLogged,
  terminateProcess,
  waitFor,
  type Log,
} from './util.js';

/** Names of the controller processes, also their log file names (`<dir>/<name>.log`). */
export type ControllerName =
  | 'kube-controller-manager'
  | 'knative-serving-controller'
  | 'knative-serving-webhook'
  | 'knative-ping-adapter'
  | 'knative-eventing-webhook';

/** A running controller process, as recorded in the cluster's state file. */
export interface ControllerProcess {
  name: ControllerName;
  pid: number;
  binary: string;
  log: string;
}

/** Everything a controller needs to know about the control plane it joins. */
export interface ControllerContext {
  /** The cluster's data directory (ServiceAccount key, apiserver certificate). */
  dataDir: string;
  /** Admin kubeconfig. */
  kubeconfig: string;
  target: KubeTarget;
  /** Ports of the webhooks on 127.0.0.1, by the `<namespace>/<name>` of the Service the API server calls. */
  webhookPorts: Readonly<Record<WebhookService, number>>;
}

interface ControllerSpec {
  component: ControlPlaneComponent;
  args(ctx: ControllerContext): string[];
  env(ctx: ControllerContext, profilingPort: number): Record<string, string>;
  /** True once the controller does its work: what `cluster:up` waits for. */
  ready(ctx: ControllerContext): Promise<boolean>;
  /** SIGTERM grace before SIGKILL. Nothing here holds state worth a long drain. */
  stopGraceMs: number;
}

const SERVING_NAMESPACE = 'knative-serving';
const EVENTING_NAMESPACE = 'knative-eventing';
const FIELD_MANAGER = 'config-restarter-local-cluster';
const SYSTEM_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'system');

/** The Serving controller's reconcilers: each takes its lease (one bucket) once every informer has synced. */
const SERVING_RECONCILERS = [
  'configuration',
  'domainmapping',
  'gc',
  'labeler',
  'nscert',
  'revision',
  'route',
  'serverlessservice',
  'service',
];

async function exists(target: KubeTarget, objectPath: string): Promise<boolean> {
  try {
    await kubeRequest(target, 'GET', objectPath);
    return true;
  } catch (err) {
    if (err instanceof KubeRequestError) return false;
    throw err;
  }
}

async function heldLeases(target: KubeTarget, namespace: string): Promise<string[]> {
  const { body } = await kubeRequest<{
    items: { metadata: { name: string }; spec?: { holderIdentity?: string } }[];
  }>(target, 'GET', `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`);
  return body.items.filter((l) => l.spec?.holderIdentity).map((l) => l.metadata.name);
}

/** The Services the API server calls webhooks through (`cluster/system/`), as `<namespace>/<name>`. */
const WEBHOOK_SERVICES = ['knative-serving/webhook', 'knative-eventing/eventing-webhook'] as const;
type WebhookService = (typeof WEBHOOK_SERVICES)[number];

/** A server-side dry-run create of a Knative Service comes back defaulted only through the Serving webhook. */
async function servingWebhookAnswers(target: KubeTarget): Promise<boolean> {
  try {
    const { body } = await kubeRequest<{
      spec?: { template?: { spec?: { containers?: { name?: string }[] } } };
    }>(target, 'POST', '/apis/serving.knative.dev/v1/namespaces/default/services?dryRun=All', {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name: 'webhook-probe' },
      spec: { template: { spec: { containers: [{ image: 'dev.local/probe:1' }] } } },
    });
    return body.spec?.template?.spec?.containers?.[0]?.name === 'user-container';
  } catch (err) {
    if (err instanceof KubeRequestError) return false;
    throw err;
  }
}

/** A server-side dry-run create of a PingSource with a broken schedule is denied only by the Eventing webhook. */
async function eventingWebhookAnswers(target: KubeTarget): Promise<boolean> {
  try {
    await kubeRequest(
      target,
      'POST',
      '/apis/sources.knative.dev/v1/namespaces/default/pingsources?dryRun=All',
      {
        apiVersion: 'sources.knative.dev/v1',
        kind: 'PingSource',
        metadata: { name: 'webhook-probe' },
        spec: { schedule: 'never', sink: { uri: 'http://127.0.0.1/' } },
      },
    );
    return false;
  } catch (err) {
    if (err instanceof KubeRequestError) {
      return err.status === 400 && err.message.includes('validation.webhook.eventing.knative.dev');
    }
    throw err;
  }
}

/**
 * Whether the webhook process filled in the caBundle of each of its configurations (in the same update as the rules;
 * the SinkBinding configuration gets rules only once a SinkBinding exists).
 */
async function webhookConfigurationsFilled(
  target: KubeTarget,
  configurations: readonly (readonly ['mutating' | 'validating', string])[],
): Promise<boolean> {
  for (const [type, name] of configurations) {
    const { body } = await kubeRequest<{
      webhooks?: { clientConfig: { caBundle?: string } }[];
    }>(target, 'GET', `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${name}`);
    if (!body.webhooks?.[0]?.clientConfig.caBundle) return false;
  }
  return true;
}

/** The per-process table: how each controller is started and when it counts as ready. */
export const CONTROLLERS: Readonly<Record<ControllerName, ControllerSpec>> = {
  'kube-controller-manager': {
    component: 'kubeControllerManager',
    args: (ctx) => [
      `--kubeconfig=${ctx.kubeconfig}`,
      '--leader-elect=false',
      // Each controller acts as its own ServiceAccount (system:serviceaccount:kube-system:<controller>), with the
      // bootstrap RBAC a real cluster gives it.
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${path.join(ctx.dataDir, 'sa.key')}`,
      `--root-ca-file=${path.join(ctx.dataDir, 'certs', 'apiserver.crt')}`,
      '--controllers=*',
      // No serving port at all: no authentication/authorization kubeconfigs needed.
      '--secure-port=0',
      '--bind-address=127.0.0.1',
    ],
    env: () => ({}),
    // The ServiceAccount controller creates `default` in every namespace once its informers synced.
    ready: (ctx) => exists(ctx.target, '/api/v1/namespaces/default/serviceaccounts/default'),
    stopGraceMs: 5_000,
  },
  'knative-serving-controller': {
    component: 'servingController',
    args: (ctx) => [`--kubeconfig=${ctx.kubeconfig}`],
    env: (_ctx, profilingPort) => ({
      SYSTEM_NAMESPACE: SERVING_NAMESPACE,
      POD_NAME: `knative-serving-controller-${os.hostname()}`,
      PROFILING_PORT: String(profilingPort),
    }),
    ready: async (ctx) => {
      const held = await heldLeases(ctx.target, SERVING_NAMESPACE);
      return SERVING_RECONCILERS.every((r) =>
        held.some((name) =>
          name.startsWith(`controller.knative.dev.serving.pkg.reconciler.${r}.reconciler.`),
        ),
      );
    },
    stopGraceMs: 3_000,
  },
  'knative-serving-webhook': {
    component: 'servingWebhook',
    args: (ctx) => [`--kubeconfig=${ctx.kubeconfig}`],
    env: (ctx, profilingPort) => ({
      SYSTEM_NAMESPACE: SERVING_NAMESPACE,
      POD_NAME: `knative-serving-webhook-${os.hostname()}`,
      WEBHOOK_NAME: 'webhook',
      WEBHOOK_PORT: String(ctx.webhookPorts['knative-serving/webhook']),
      PROFILING_PORT: String(profilingPort),
    }),
    ready: async (ctx) =>
      (await webhookConfigurationsFilled(ctx.target, [
        ['mutating', 'webhook.serving.knative.dev'],
        ['validating', 'validation.webhook.serving.knative.dev'],
        ['validating', 'config.webhook.serving.knative.dev'],
      ])) && (await servingWebhookAnswers(ctx.target)),
    // It drains for about a minute on SIGTERM; nothing is in flight once the cluster goes down.
    stopGraceMs: 0,
  },
  'knative-ping-adapter': {
    component: 'pingAdapter',
    args: (ctx) => [`--kubeconfig=${ctx.kubeconfig}`],
    // As the PingSource controller configures its Deployment. K_LEADER_ELECTION_CONFIG stays unset: `{}` would mean
    // zero buckets, and it would never reconcile.
    env: (_ctx, profilingPort) => ({
      SYSTEM_NAMESPACE: EVENTING_NAMESPACE,
      NAMESPACE: EVENTING_NAMESPACE,
      NAME: 'pingsource-mt-adapter',
      POD_NAME: `pingsource-mt-adapter-${os.hostname()}`,
      K_LOGGING_CONFIG: '{}',
      K_OBSERVABILITY_CONFIG: '{}',
      PROFILING_PORT: String(profilingPort),
    }),
    ready: async (ctx) =>
      (await heldLeases(ctx.target, EVENTING_NAMESPACE)).some((n) => n.includes('mtping')),
    // It delays its shutdown towards the next minute on SIGTERM, so no tick is lost in a rollout; not needed here.
    stopGraceMs: 0,
  },
  'knative-eventing-webhook': {
    component: 'eventingWebhook',
    args: (ctx) => [`--kubeconfig=${ctx.kubeconfig}`],
    env: (ctx, profilingPort) => ({
      SYSTEM_NAMESPACE: EVENTING_NAMESPACE,
      POD_NAME: `eventing-webhook-${os.hostname()}`,
      WEBHOOK_NAME: 'eventing-webhook',
      WEBHOOK_PORT: String(ctx.webhookPorts['knative-eventing/eventing-webhook']),
      PROFILING_PORT: String(profilingPort),
    }),
    ready: async (ctx) =>
      (await webhookConfigurationsFilled(ctx.target, [
        ['mutating', 'webhook.eventing.knative.dev'],
        ['validating', 'validation.webhook.eventing.knative.dev'],
        ['validating', 'config.webhook.eventing.knative.dev'],
        ['mutating', 'sinkbindings.webhook.sources.knative.dev'],
      ])) && (await eventingWebhookAnswers(ctx.target)),
    stopGraceMs: 0,
  },
};

/** Start order does not matter; listed for logs and status output. */
export const CONTROLLER_NAMES = Object.keys(CONTROLLERS) as ControllerName[];

/** An object of `cluster/system/`, as far as the installer reads it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  webhooks?: { clientConfig: { service?: { namespace: string; name: string; port?: number } } }[];
}

/** API path of a manifest's object (only the kinds of `system/`). */
function objectPath(m: Manifest): string {
  const plurals: Record<string, string> = {
    Namespace: 'namespaces',
    ConfigMap: 'configmaps',
    Secret: 'secrets',
    Service: 'services',
    Endpoints: 'endpoints',
    Deployment: 'deployments',
    ServiceAccount: 'serviceaccounts',
    Role: 'roles',
    RoleBinding: 'rolebindings',
    ClusterRole: 'clusterroles',
    ClusterRoleBinding: 'clusterrolebindings',
    CustomResourceDefinition: 'customresourcedefinitions',
    MutatingWebhookConfiguration: 'mutatingwebhookconfigurations',
    ValidatingWebhookConfiguration: 'validatingwebhookconfigurations',
    ValidatingAdmissionPolicy: 'validatingadmissionpolicies',
    ValidatingAdmissionPolicyBinding: 'validatingadmissionpolicybindings',
  };
  const plural = plurals[m.kind];
  if (!plural) throw new Error(`cluster/system: unexpected kind ${m.kind}`);
  const base = m.apiVersion === 'v1' ? '/api/v1' : `/apis/${m.apiVersion}`;
  const ns = m.metadata.namespace ? `/namespaces/${m.metadata.namespace}` : '';
  return `${base}${ns}/${plural}/${m.metadata.name}`;
}

/**
 * Server-side applies every object of `files`, after `edit` had its say on each (e.g. filling in a port).
 */
export async function installObjects(
  target: KubeTarget,
  files: readonly string[],
  edit: (manifest: Manifest) => void = () => undefined,
): Promise<void> {
  // Empty documents (a trailing `---`, upstream files) are skipped.
  const manifests = files
    .flatMap((file) => yaml.loadAll(readFileSync(file, 'utf8')) as (Manifest | null)[])
    .filter((m): m is Manifest => m !== null);
  for (const manifest of manifests) {
    edit(manifest);
    await kubeRequest(
      target,
      'PATCH',
      `${objectPath(manifest)}?fieldManager=${FIELD_MANAGER}&force=true`,
      manifest,
      {
        contentType: 'application/apply-patch+yaml',
      },
    );
  }
}

/**
 * Server-side applies every file of `cluster/system/` (namespaces, config-* ConfigMaps, webhook Service and
 * configurations) with the webhook's port filled in. Must happen before the controllers start: the Serving
 * controller reads config-deployment for the first Revision.
 */
export async function installSystemObjects(
  target: KubeTarget,
  webhookPorts: Readonly<Record<WebhookService, number>>,
): Promise<void> {
  const files = readdirSync(SYSTEM_DIR)
    .filter((file) => file.endsWith('.yaml'))
    .sort()
    .map((file) => path.join(SYSTEM_DIR, file));
  await installObjects(target, files, (manifest) => {
    for (const webhook of manifest.webhooks ?? []) {
      const service = webhook.clientConfig.service;
      if (!service) continue;
      const port = webhookPorts[`${service.namespace}/${service.name}` as WebhookService];
      if (!port)
        throw new Error(`cluster/system: no webhook process serves ${service.namespace}/${service.name}`);
      service.port = port;
    }
  });
}

/**
 * Installs the system objects, starts every controller at once and waits until all are ready. The processes are
 * handed to `onSpawned` before the wait, so a caller can record them and stop them when start-up fails.
 */
export async function startControllers(options: {
  dir: string;
  ctx: Omit<ControllerContext, 'webhookPorts'>;
  binaries: Readonly<Record<ControllerName, string>>;
  detached: boolean;
  timeoutMs: number;
  log: Log;
  /** Called with the processes as soon as they are spawned, so they can be recorded before waiting. */
  onSpawned: (processes: ControllerProcess[]) => void;
}): Promise<ControllerProcess[]> {
  const { dir, binaries, detached, timeoutMs, log } = options;
  const ports = await freePorts(CONTROLLER_NAMES.length + WEBHOOK_SERVICES.length);
  const webhookPorts = Object.fromEntries(
    WEBHOOK_SERVICES.map((service, i) => [service, ports[CONTROLLER_NAMES.length + i] as number]),
  ) as Record<WebhookService, number>;
  const ctx: ControllerContext = { ...options.ctx, webhookPorts };
  await installSystemObjects(ctx.target, webhookPorts);

  const start = Date.now();
  const processes = CONTROLLER_NAMES.map((name, i): ControllerProcess => {
    const spec = CONTROLLERS[name];
    const logFile = path.join(dir, `${name}.log`);
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...spec.env(ctx, ports[i] as number) };
    const pid = spawnLogged(binaries[name], spec.args(ctx), logFile, dir, detached, env);
    return { name, pid, binary: binaries[name], log: logFile };
  });
  options.onSpawned(processes);
  await Promise.all(
    processes.map(async (p) => {
      await waitFor(
        p.name,
        () => CONTROLLERS[p.name].ready(ctx),
        () => isProcessAlive(p.pid, p.binary),
        p.log,
        timeoutMs,
      );
      log(`${p.name} ready (${elapsed(start)} s, pid ${p.pid})`);
    }),
  );
  return processes;
}

/** Stops the controllers (all at once). Returns the names of those that were still running. */
export async function stopControllers(processes: readonly ControllerProcess[], log: Log): Promise<string[]> {
  const running = processes.filter((p) => isProcessAlive(p.pid, p.binary));
  await Promise.all(
    running.map(async (p) => {
      await terminateProcess(p.pid, p.binary, CONTROLLERS[p.name].stopGraceMs);
      log(`stopped ${p.name} (pid ${p.pid})`);
    }),
  );
  return running.map((p) => p.name);
}
