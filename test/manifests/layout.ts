import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';

import yaml from 'js-yaml';

import { ENTRY_POINTS, repoRoot } from './kustomize.js';

/** Top-level directories that hold manifests. */
export const MANIFEST_DIRS = ['knative', 'kustomize', 'istio'] as const;

const KUSTOMIZATION_NAMES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

/** The keys of a kustomization that reference files or directories. */
interface Kustomization {
  kind?: string;
  resources?: string[];
  components?: string[];
  patches?: { path?: string }[];
  configurations?: string[];
  replacements?: { path?: string }[];
  crds?: string[];
  generators?: string[];
  transformers?: string[];
  validators?: string[];
}

/** How a file was reached: as a kustomization, a resource, a patch or another referenced file. */
export type Role = 'kustomization' | 'resource' | 'patch' | 'config';

/** Every `.yaml`/`.yml` file under the manifest directories, relative to the repository root. */
export async function manifestFiles(): Promise<string[]> {
  const files: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(path.join(repoRoot, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(rel);
      else if (/\.ya?ml$/.test(entry.name)) files.push(rel);
    }
  };
  for (const dir of MANIFEST_DIRS) await walk(dir);
  return files.sort();
}

/** Kustomization files under the manifest directories. */
export async function kustomizationFiles(): Promise<string[]> {
  return (await manifestFiles()).filter((f) => KUSTOMIZATION_NAMES.includes(path.basename(f)));
}

async function kustomizationIn(dir: string): Promise<string> {
  for (const name of KUSTOMIZATION_NAMES) {
    const candidate = path.join(dir, name);
    if (
      await stat(path.join(repoRoot, candidate)).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return candidate;
  }
  throw new Error(`${dir} has no kustomization file`);
}

/**
 * Walks resources, components, patches and the other file references from every entry point and returns
 * each reached file (relative to the repository root) with how it was reached.
 */
export async function reachableFiles(): Promise<Map<string, Set<Role>>> {
  const reached = new Map<string, Set<Role>>();
  const mark = (file: string, role: Role): void => {
    const roles = reached.get(file) ?? new Set<Role>();
    roles.add(role);
    reached.set(file, roles);
  };
  const visited = new Set<string>();
  const visitDir = async (dir: string): Promise<void> => {
    const file = await kustomizationIn(dir);
    if (visited.has(file)) return;
    visited.add(file);
    mark(file, 'kustomization');
    const k = (yaml.load(await readFile(path.join(repoRoot, file), 'utf8')) ?? {}) as Kustomization;
    const resolve = (ref: string): string => path.normalize(path.join(dir, ref));
    const isDir = (rel: string): Promise<boolean> =>
      stat(path.join(repoRoot, rel)).then(
        (s) => s.isDirectory(),
        () => false,
      );
    for (const ref of [...(k.resources ?? []), ...(k.components ?? [])]) {
      const target = resolve(ref);
      if (await isDir(target)) await visitDir(target);
      else mark(target, 'resource');
    }
    for (const p of k.patches ?? []) if (p.path) mark(resolve(p.path), 'patch');
    for (const r of k.replacements ?? []) if (r.path) mark(resolve(r.path), 'config');
    for (const ref of [...(k.configurations ?? []), ...(k.crds ?? [])]) mark(resolve(ref), 'config');
    for (const ref of [...(k.generators ?? []), ...(k.transformers ?? []), ...(k.validators ?? [])]) {
      const target = resolve(ref);
      if (await isDir(target)) await visitDir(target);
      else mark(target, 'config');
    }
  };
  for (const entry of ENTRY_POINTS) await visitDir(entry);
  return reached;
}
