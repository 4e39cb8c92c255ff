/** Renders the Helm chart with the pinned helm binary (built by global-setup.ts) and reads the objects. */
import yaml from 'js-yaml';
import { CHART_DIR, runHelm, type HelmResult } from '../../cluster/helm.js';
import type { K8sObject } from './kustomize.js';

/** A digest that satisfies the schema (the image is never pulled here). */
export const TEST_DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

/** Path of the helm binary published by the manifests project's global setup. */
export function helmBinary(): string {
  const helm = process.env.TEST_ASSET_HELM;
  if (!helm) throw new Error('TEST_ASSET_HELM is not set: run through `npm run test:unit` (global setup)');
  return helm;
}

/** `helm <args>` with the pinned binary. */
export function helm(args: readonly string[]): Promise<HelmResult> {
  return runHelm(helmBinary(), args);
}

/** Options of one `helm template` run. */
export interface TemplateOptions {
  /** Values files, relative to the repository root. */
  values?: string[];
  /** `--set` / `--set-string` / `--set-json` flags, as given to helm. */
  set?: string[];
  namespace?: string;
  release?: string;
}

/** The helm arguments of a `template` run (also used for lint with the same values). */
export function valueArgs({ values = [], set = [] }: TemplateOptions): string[] {
  return [...values.flatMap((file) => ['--values', file]), ...set];
}

/** `helm template`; resolves with the objects, rejects with helm's message when it fails. */
export async function template(options: TemplateOptions = {}): Promise<K8sObject[]> {
  const result = await templateRaw(options);
  if (result.code !== 0) throw new Error(`helm template failed (${result.code}): ${result.stderr}`);
  return yaml.loadAll(result.stdout).filter((doc): doc is K8sObject => doc !== null && doc !== undefined);
}

/** `helm template` without interpretation. */
export function templateRaw(options: TemplateOptions = {}): Promise<HelmResult> {
  return helm([
    'template',
    options.release ?? 'config-restarter',
    CHART_DIR,
    '--namespace',
    options.namespace ?? 'helloworld',
    ...valueArgs(options),
  ]);
}
