import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import yaml from 'js-yaml';

const execFileAsync = promisify(execFile);

/** Repository root (the manifests are addressed relative to it). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Every kustomization a user is told to build or apply. */
export const ENTRY_POINTS = [
  'knative',
  'knative/broker',
  'knative/secrets',
  'knative/authentication',
  'knative/argo-rollouts',
  'kustomize/overlays/test',
  'kustomize/overlays/prod',
  'istio',
] as const;

/** The shared namespace of everything. */
export const NAMESPACE = 'helloworld';

/** The parts of a Kubernetes object the tests read generically. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** Output of one `kubectl kustomize` run. */
export interface Rendered {
  readonly objects: K8sObject[];
  readonly stderr: string;
}

const cache = new Map<string, Promise<Rendered>>();

/** Renders a kustomization directory (relative to the repository root) with the real `kubectl kustomize`. */
export function render(dir: string): Promise<Rendered> {
  let rendered = cache.get(dir);
  if (rendered === undefined) {
    rendered = renderUncached(path.resolve(repoRoot, dir));
    cache.set(dir, rendered);
  }
  return rendered;
}

async function renderUncached(absDir: string): Promise<Rendered> {
  const { stdout, stderr } = await execFileAsync('kubectl', ['kustomize', absDir], {
    cwd: repoRoot,
    maxBuffer: 16 * 1024 * 1024,
  });
  const objects = yaml.loadAll(stdout).filter((doc): doc is K8sObject => doc !== null && doc !== undefined);
  return { objects, stderr };
}

/** The single object of a kind and name; fails the test otherwise. */
export function find<T = K8sObject>(objects: readonly K8sObject[], kind: string, name: string): T {
  const matches = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  if (matches.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${matches.length}`);
  return matches[0] as T;
}

/** Knative Services (kind Service of group serving.knative.dev) among the objects. */
export function knativeServices(objects: readonly K8sObject[]): KnativeService[] {
  return objects.filter(
    (o) => o.kind === 'Service' && o.apiVersion.startsWith('serving.knative.dev/'),
  ) as KnativeService[];
}

/** A reference to a ConfigMap or Secret key. */
export interface KeyRef {
  name: string;
  key: string;
  optional?: boolean;
}

/** The fields of a container the tests read. */
export interface Container {
  name?: string;
  image: string;
  env?: { name: string; value?: string; valueFrom?: { configMapKeyRef?: KeyRef; secretKeyRef?: KeyRef } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  livenessProbe?: Probe;
  readinessProbe?: Probe;
}

/** The fields of a probe the tests read. */
export interface Probe {
  httpGet?: { path: string; port?: number | string };
  [field: string]: unknown;
}

/** The fields of a volume the tests read. */
export interface Volume {
  name: string;
  configMap?: { name: string };
  secret?: { secretName: string };
  projected?: { sources: { configMap?: { name: string }; secret?: { name: string } }[] };
}

/** The fields of a Knative Service the tests read. */
export interface KnativeService extends K8sObject {
  spec: {
    selector?: unknown;
    template: {
      metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
      spec: { containers: Container[]; volumes?: Volume[]; [field: string]: unknown };
    };
  };
}

/** Every ConfigMap a Knative Service refers to, with where. */
export function configMapRefs(ksvc: KnativeService): { where: string; name: string; key?: string }[] {
  const refs: { where: string; name: string; key?: string }[] = [];
  const { containers, volumes = [] } = ksvc.spec.template.spec;
  for (const c of containers) {
    for (const e of c.env ?? []) {
      const ref = e.valueFrom?.configMapKeyRef;
      if (ref) refs.push({ where: `env ${e.name}`, name: ref.name, key: ref.key });
    }
    for (const e of c.envFrom ?? []) {
      if (e.configMapRef) refs.push({ where: 'envFrom', name: e.configMapRef.name });
    }
  }
  for (const v of volumes) {
    if (v.configMap) refs.push({ where: `volume ${v.name}`, name: v.configMap.name });
    for (const s of v.projected?.sources ?? []) {
      if (s.configMap) refs.push({ where: `projected volume ${v.name}`, name: s.configMap.name });
    }
  }
  return refs;
}
