import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { KubeRequestError, kubeRequest, type KubeTarget } from './kube.js';
import { sleep, type Log } from './util.js';

/** Directory of the hand-written CRDs; its kustomization.yaml is the list of what gets installed. */
export const CRD_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'crds');

/** The parts of a CustomResourceDefinition this module reads. */
export interface CrdManifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: { group: string; names: { plural: string }; versions: { name: string; served: boolean }[] };
}

const FIELD_MANAGER = 'config-restarter-local-cluster';

/** Loads every CRD listed in `cluster/crds/kustomization.yaml`. */
export function loadCrds(): CrdManifest[] {
  const kustomization = yaml.load(readFileSync(path.join(CRD_DIR, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
  };
  return kustomization.resources.map(
    (file) => yaml.load(readFileSync(path.join(CRD_DIR, file), 'utf8')) as CrdManifest,
  );
}

async function isEstablished(target: KubeTarget, name: string): Promise<boolean> {
  const { body } = await kubeRequest<{ status?: { conditions?: { type: string; status: string }[] } }>(
    target,
    'GET',
    `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
  );
  return body.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
}

/** Whether discovery (`/apis/<group>/<version>`) lists the plural: what kubectl and the receive adapter look up. */
async function isDiscoverable(
  target: KubeTarget,
  group: string,
  version: string,
  plural: string,
): Promise<boolean> {
  const { status, body } = await kubeRequest<{ resources?: { name: string }[] }>(
    target,
    'GET',
    `/apis/${group}/${version}`,
    undefined,
    { allowStatus: [404, 503] },
  );
  return status === 200 && (body.resources?.some((r) => r.name === plural) ?? false);
}

/**
 * Server-side applies every CRD, then waits until each is Established and each served version is in discovery.
 */
export async function installCrds(target: KubeTarget, log: Log, timeoutMs = 60_000): Promise<void> {
  const crds = loadCrds();
  for (const crd of crds) {
    // Server-side apply: creates or updates, and has no last-applied annotation size limit.
    await kubeRequest(
      target,
      'PATCH',
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}?fieldManager=${FIELD_MANAGER}&force=true`,
      crd,
      { contentType: 'application/apply-patch+yaml' },
    );
  }
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(
    crds.flatMap((crd) =>
      crd.spec.versions
        .filter((v) => v.served)
        .map((v) => JSON.stringify([crd.metadata.name, crd.spec.group, v.name, crd.spec.names.plural])),
    ),
  );
  while (pending.size > 0) {
    for (const key of [...pending]) {
      const [name, group, version, plural] = JSON.parse(key) as [string, string, string, string];
      try {
        if ((await isEstablished(target, name)) && (await isDiscoverable(target, group, version, plural))) {
          pending.delete(key);
        }
      } catch (err) {
        if (!(err instanceof KubeRequestError)) throw err;
      }
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      const waiting = [...pending].map((k) => (JSON.parse(k) as string[]).slice(1, 3).join('/'));
      throw new Error(`CRDs not established/discoverable after ${timeoutMs / 1000} s: ${waiting.join(', ')}`);
    }
    await sleep(200);
  }
  log(`installed ${crds.length} CRDs: ${crds.map((c) => c.metadata.name).join(', ')}`);
}
