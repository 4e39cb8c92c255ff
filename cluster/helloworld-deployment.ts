/**
 * helloworld as a plain Deployment, made from the container of its Knative Service as a kustomization renders it
 * (e.g. `localManifests(...).helloworld`): the workload kind most users run, next to the Knative Service.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import yaml from 'js-yaml';

/** An object of the rendered manifests (the fields used here). */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  data?: Record<string, string>;
  spec?: { template: { spec: { containers: Record<string, unknown>[]; [key: string]: unknown } } };
}

/** helloworld's ConfigMap and Knative Service as `kubectl kustomize <dir>` renders them. */
export async function renderHelloworld(
  dir: string,
): Promise<{ configMap: RenderedObject; service: RenderedObject }> {
  const { stdout } = await promisify(execFile)('kubectl', ['kustomize', dir], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const objects = yaml.loadAll(stdout) as RenderedObject[];
  const configMap = objects.find((o) => o.kind === 'ConfigMap');
  const service = objects.find(
    (o) => o.kind === 'Service' && o.apiVersion.startsWith('serving.knative.dev/'),
  );
  if (!configMap || !service) throw new Error(`${dir} renders no ConfigMap or no Knative Service`);
  return { configMap, service };
}

/** Knative probes the serving port itself; a plain pod names it (and probes every second, as queue-proxy does). */
function withPort(probe: unknown): unknown {
  const p = probe as { httpGet?: Record<string, unknown> } | undefined;
  return p?.httpGet ? { ...p, httpGet: { ...p.httpGet, port: 8080 }, periodSeconds: 1 } : p;
}

/**
 * A Deployment running the Knative Service's containers unchanged (image, env from the ConfigMap, the mounted
 * ConfigMap, securityContext, resources) with its labels and opt-in annotation, its pods labelled
 * `component: <name>` too; only the Knative-only field
 * `timeoutSeconds` is left out and the probes name the port.
 */
export function helloworldDeployment(
  service: RenderedObject,
  options: { name: string; replicas: number; terminationGracePeriodSeconds?: number },
): Record<string, unknown> {
  // Knative's own labels (e.g. networking.knative.dev/visibility) mean nothing on a Deployment.
  const labels = Object.fromEntries(
    Object.entries(service.metadata.labels ?? {}).filter(([key]) => !key.includes('knative.dev/')),
  );
  // Its own label too: a Knative Service of the same app and env has pods with the same labels.
  const selector = { ...labels, component: options.name };
  const template = service.spec?.template.spec ?? { containers: [] };
  const { timeoutSeconds: _knativeOnly, containers, ...podSpec } = template;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: options.name, labels, annotations: service.metadata.annotations ?? {} },
    spec: {
      replicas: options.replicas,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: selector },
        spec: {
          ...podSpec,
          terminationGracePeriodSeconds: options.terminationGracePeriodSeconds ?? 2,
          containers: containers.map((c) => ({
            ...c,
            readinessProbe: withPort(c.readinessProbe),
            livenessProbe: withPort(c.livenessProbe),
          })),
        },
      },
    },
  };
}
