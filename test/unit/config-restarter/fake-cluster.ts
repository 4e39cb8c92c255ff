/**
 * An in-memory stand-in for the one module that talks to the API server (`ClusterClient`), for unit
 * tests only: it keeps resourceVersions, answers 409 on stale preconditions, applies merge patches,
 * and can be told to fail. The integration suite runs the real module against a real API server.
 */
import { KubeApiError, type ClusterClient } from '../../../functions/config-restarter/src/kube.js';
import type { MergePatch } from '../../../functions/config-restarter/src/decide.js';
import type { ConfigObject, KubeObject } from '../../../functions/config-restarter/src/model.js';
import type { WorkloadKind } from '../../../functions/config-restarter/src/workload-kinds.js';

type Verb = 'get' | 'list' | 'patch';

/** A failure to inject: the next matching call throws it. */
export interface InjectedFailure {
  verb: Verb;
  resource?: string;
  status: number;
  times?: number;
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const base = target && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete (base as Record<string, unknown>)[key];
    else (base as Record<string, unknown>)[key] = mergePatch((base as Record<string, unknown>)[key], value);
  }
  return base;
}

export class FakeCluster implements ClusterClient {
  private revision = 100;
  readonly objects = new Map<string, KubeObject>();
  readonly calls: {
    verb: Verb;
    resource: string;
    namespace?: string;
    name?: string;
    dryRun?: boolean;
    labelSelector?: string;
  }[] = [];
  readonly failures: InjectedFailure[] = [];
  /** Called before a patch is applied: lets a test interleave a concurrent writer. */
  beforePatch?: (resource: string, namespace: string, name: string) => void;

  private key(resource: string, namespace: string, name: string): string {
    return `${resource}/${namespace}/${name}`;
  }

  private fail(verb: Verb, resource: string, namespace?: string, name?: string): void {
    const index = this.failures.findIndex((f) => f.verb === verb && (!f.resource || f.resource === resource));
    if (index < 0) return;
    const failure = this.failures[index]!;
    if (failure.times === undefined || --failure.times <= 0) this.failures.splice(index, 1);
    throw new KubeApiError(
      failure.status,
      verb,
      resource,
      namespace,
      name,
      `injected HTTP ${failure.status}`,
    );
  }

  /** Creates or replaces an object (as an admin would), bumping its resourceVersion. */
  put(resource: string, object: KubeObject): KubeObject {
    const meta = object.metadata!;
    const stored = structuredClone(object);
    stored.metadata = { ...stored.metadata, resourceVersion: String(++this.revision), generation: 1 };
    const previous = this.objects.get(this.key(resource, meta.namespace!, meta.name!));
    if (previous) {
      stored.metadata.generation = (previous.metadata?.generation ?? 1) + 1;
      stored.metadata.uid = previous.metadata?.uid;
    }
    stored.metadata.uid ??= `uid-${meta.name}`;
    this.objects.set(this.key(resource, meta.namespace!, meta.name!), stored);
    return stored;
  }

  read(resource: string, namespace: string, name: string): KubeObject | undefined {
    return this.objects.get(this.key(resource, namespace, name));
  }

  private configResource(kind: string): string {
    return kind === 'ConfigMap' ? 'configmaps' : 'secrets';
  }

  getConfig(ref: { kind: string; namespace: string; name: string }): Promise<ConfigObject | undefined> {
    const resource = this.configResource(ref.kind);
    this.calls.push({ verb: 'get', resource, namespace: ref.namespace, name: ref.name });
    this.fail('get', resource, ref.namespace, ref.name);
    const object: ConfigObject | undefined = structuredClone(this.read(resource, ref.namespace, ref.name));
    return Promise.resolve(object);
  }

  listConfigs(kind: string, namespace: string | undefined): Promise<ConfigObject[]> {
    const resource = this.configResource(kind);
    this.calls.push({ verb: 'list', resource, namespace });
    this.fail('list', resource, namespace);
    return Promise.resolve(this.list(resource, namespace) as ConfigObject[]);
  }

  private list(resource: string, namespace: string | undefined): KubeObject[] {
    return [...this.objects.entries()]
      .filter(([key]) => key.startsWith(namespace ? `${resource}/${namespace}/` : `${resource}/`))
      .map(([, object]) => structuredClone(object));
  }

  listWorkloads(
    kind: WorkloadKind,
    namespace: string,
    labelSelector?: string,
  ): Promise<KubeObject[] | undefined> {
    const resource = `${kind.plural}.${kind.group}`;
    this.calls.push({ verb: 'list', resource, namespace, labelSelector });
    this.fail('list', resource, namespace);
    // Equality terms only (`a=b,c=d`): enough for the tests.
    const terms = (labelSelector ?? '')
      .split(',')
      .filter(Boolean)
      .map((term) => term.split('='));
    return Promise.resolve(
      this.list(resource, namespace).filter((object) =>
        terms.every(([key, value]) => object.metadata?.labels?.[key!] === value),
      ),
    );
  }

  getWorkload(kind: WorkloadKind, namespace: string, name: string): Promise<KubeObject | undefined> {
    const resource = `${kind.plural}.${kind.group}`;
    this.calls.push({ verb: 'get', resource, namespace, name });
    this.fail('get', resource, namespace, name);
    return Promise.resolve(structuredClone(this.read(resource, namespace, name)));
  }

  patchWorkload(
    kind: WorkloadKind,
    namespace: string,
    name: string,
    patch: MergePatch,
    options: { dryRun: boolean },
  ): Promise<KubeObject> {
    const resource = `${kind.plural}.${kind.group}`;
    this.calls.push({ verb: 'patch', resource, namespace, name, dryRun: options.dryRun });
    this.beforePatch?.(resource, namespace, name);
    this.fail('patch', resource, namespace, name);
    const current = this.read(resource, namespace, name);
    if (!current) throw new KubeApiError(404, 'patch', resource, namespace, name, 'not found');
    const wanted = patch.metadata.resourceVersion;
    if (wanted && wanted !== current.metadata?.resourceVersion) {
      throw new KubeApiError(409, 'patch', resource, namespace, name, 'the object has been modified');
    }
    const { resourceVersion: _rv, ...metadataPatch } = patch.metadata;
    const next = mergePatch(current, { ...patch, metadata: metadataPatch }) as KubeObject;
    if (options.dryRun) return Promise.resolve(next);
    const templateChanged = JSON.stringify(next.spec) !== JSON.stringify(current.spec);
    next.metadata = {
      ...next.metadata,
      resourceVersion: String(++this.revision),
      generation: (current.metadata?.generation ?? 1) + (templateChanged ? 1 : 0),
    };
    this.objects.set(this.key(resource, namespace, name), next);
    return Promise.resolve(structuredClone(next));
  }
}

/** A workload manifest for tests. */
export function workload(
  kind: 'Deployment' | 'StatefulSet' | 'DaemonSet' | 'Service',
  name: string,
  options: {
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    podSpec?: Record<string, unknown>;
    ownerReferences?: { apiVersion: string; kind: string; name: string }[];
    optIn?: boolean;
  } = {},
): KubeObject {
  return {
    apiVersion: kind === 'Service' ? 'serving.knative.dev/v1' : 'apps/v1',
    kind,
    metadata: {
      name,
      namespace: options.namespace ?? 'helloworld',
      labels: options.labels ?? {},
      annotations: {
        ...(options.optIn === false ? {} : { 'rolling.restart.controller/restartOnTrigger': 'true' }),
        ...options.annotations,
      },
      ...(options.ownerReferences ? { ownerReferences: options.ownerReferences } : {}),
    },
    spec: {
      template: { metadata: { labels: options.labels ?? {} }, spec: options.podSpec ?? { containers: [{}] } },
    },
  };
}

/** Resource name (`plural.group`) of a workload kind name. */
export const RESOURCE: Record<string, string> = {
  Deployment: 'deployments.apps',
  StatefulSet: 'statefulsets.apps',
  DaemonSet: 'daemonsets.apps',
  Service: 'services.serving.knative.dev',
};

/** A ConfigMap manifest for tests. */
export function configMap(
  name: string,
  data: Record<string, string>,
  options: { namespace?: string; labels?: Record<string, string>; optIn?: boolean } = {},
): ConfigObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name,
      namespace: options.namespace ?? 'helloworld',
      labels: options.labels ?? {},
      annotations: options.optIn === false ? {} : { 'rolling.restart.controller/triggerRestart': 'true' },
    },
    data,
  };
}
