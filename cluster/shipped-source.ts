/**
 * The ApiServerSource as the project ships it, turned into the receive adapter's configuration: the harness
 * starts the real adapter by hand (no Knative Eventing controller runs here), so it reads the rendered manifest
 * and configures the adapter the way the ApiServerSource controller would (same kinds, same label selectors,
 * same mode). Tests, the demo and the benchmark use it, so they exercise what users install.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import type { AdapterResource } from './adapter.js';
import { REPO_ROOT } from './util.js';

const run = promisify(execFile);

/** A Kubernetes label selector, as in `spec.resources[].selector`. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
    values?: string[];
  }[];
}

interface SourceManifest {
  kind: string;
  metadata: { name: string };
  spec: {
    mode?: 'Reference' | 'Resource';
    resources: { apiVersion: string; kind: string; selector?: LabelSelector }[];
  };
}

/** The adapter's view of a shipped ApiServerSource. */
export interface ShippedSource {
  name: string;
  mode: 'Reference' | 'Resource';
  resources: AdapterResource[];
}

/** Plural resource names of the kinds the project's sources watch (the adapter wants GVRs). */
const PLURALS: Record<string, string> = {
  ConfigMap: 'configmaps',
  Secret: 'secrets',
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
  DaemonSet: 'daemonsets',
  Service: 'services',
};

/**
 * A selector as a selector string, as the ApiServerSource controller passes it to the adapter
 * (`metav1.LabelSelectorAsSelector(...).String()`: requirements sorted by key, `key in (a,b)`, `!key`).
 */
export function selectorString(selector: LabelSelector | undefined): string | undefined {
  if (!selector) return undefined;
  const requirements: [string, string][] = Object.entries(selector.matchLabels ?? {}).map(([key, value]) => [
    key,
    `${key}=${value}`,
  ]);
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const list = [...values].sort().join(',');
    const text = {
      In: `${key} in (${list})`,
      NotIn: `${key} notin (${list})`,
      Exists: key,
      DoesNotExist: `!${key}`,
    }[operator];
    requirements.push([key, text]);
  }
  if (requirements.length === 0) return undefined;
  return requirements
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, text]) => text)
    .join(',');
}

/** Turns a rendered ApiServerSource into the adapter's mode and resources. */
export function adapterConfigOf(source: SourceManifest): ShippedSource {
  return {
    name: source.metadata.name,
    // The CRD defaults to Reference; the adapter itself would default to Resource.
    mode: source.spec.mode ?? 'Reference',
    resources: source.spec.resources.map((resource) => {
      const [group, version] = resource.apiVersion.includes('/')
        ? (resource.apiVersion.split('/') as [string, string])
        : ['', resource.apiVersion];
      const plural = PLURALS[resource.kind];
      if (!plural) throw new Error(`no plural known for the watched kind ${resource.kind}`);
      const selector = selectorString(resource.selector);
      return { group, version, resource: plural, ...(selector ? { selector } : {}) };
    }),
  };
}

/**
 * An ApiServerSource of a kustomization of the repository (default `knative`, the direct plumbing; default the
 * config objects' source, `config-restarter-workloads` is the workloads' one), rendered with
 * `kubectl kustomize`, as the adapter's configuration.
 */
export async function shippedSource(
  dir = 'knative',
  name = 'config-restarter-source',
): Promise<ShippedSource> {
  const { stdout } = await run('kubectl', ['kustomize', path.resolve(REPO_ROOT, dir)], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const sources = (yaml.loadAll(stdout) as SourceManifest[]).filter(
    (o) => o?.kind === 'ApiServerSource' && o.metadata.name === name,
  );
  if (sources.length !== 1)
    throw new Error(`${dir} renders ${sources.length} ApiServerSources named ${name}`);
  return adapterConfigOf(sources[0]!);
}
