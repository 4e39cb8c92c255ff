/**
 * One table of per-kind facts for configuration objects (ConfigMap, Secret): where they live in the API,
 * how their content is hashed, and where a pod spec references them. Adding a config kind is one entry.
 */
import type { ConfigKind } from './config.js';
import type { ConfigObject, ContainerLike, KeyItems, PodSpecLike } from './model.js';

/** A pod-spec volume, as far as references go. */
type VolumeLike = NonNullable<PodSpecLike['volumes']>[number];
/** A projected volume source. */
type ProjectionLike = NonNullable<NonNullable<VolumeLike['projected']>['sources']>[number];
/** An `envFrom` entry. */
type EnvFromLike = NonNullable<ContainerLike['envFrom']>[number];
/** An `env` entry. */
type EnvVarLike = NonNullable<ContainerLike['env']>[number];

/**
 * One use of a config object by a pod spec: its name and, when only some keys are used (an env
 * `valueFrom` key, a volume or projected source with `items`), those keys. Without `keys` every key counts.
 */
export interface ConfigUse {
  name: string;
  keys?: string[];
}

/** How to find, hash and recognise references to one config kind. */
export interface ConfigKindSpec {
  kind: ConfigKind;
  /** Resource name in URLs and RBAC rules (core group, v1). */
  plural: string;
  /** Prefix of this kind's keys in the hash record, e.g. `configmap` in `configmap/<name>`. */
  recordPrefix: string;
  /** Canonical content (what a change is); metadata never counts. */
  canonicalContent(object: ConfigObject): unknown;
  /** Every key of the content with its value, for per-key hashes (a key lives in `data` or `binaryData`). */
  keyedContent(object: ConfigObject): [string, string][];
  /** `sha256` for public content; an HMAC keyed by the object's uid for secret content. */
  keyedHash: boolean;
  /** What a volume, a projected source, an envFrom and an env entry use of this kind. */
  fromVolume(volume: VolumeLike): ConfigUse | undefined;
  fromProjection(source: ProjectionLike): ConfigUse | undefined;
  fromEnvFrom(entry: EnvFromLike): ConfigUse | undefined;
  fromEnv(variable: EnvVarLike): ConfigUse | undefined;
}

/** A use of `name`: every key, or only the keys named by `items` (empty or absent `items` = every key). */
function use(name: string | undefined, items?: KeyItems): ConfigUse | undefined {
  if (typeof name !== 'string' || name.length === 0) return undefined;
  if (!Array.isArray(items) || items.length === 0) return { name };
  const keys = items.map((item) => item?.key);
  // An item without a key is invalid for the API server; counting every key is the safe reading.
  if (keys.some((key) => typeof key !== 'string' || key.length === 0)) return { name };
  return { name, keys: keys as string[] };
}

/** A use of one key of `name` (an env `valueFrom`); without a key, every key counts. */
function keyUse(name: string | undefined, key: string | undefined): ConfigUse | undefined {
  return use(name, typeof key === 'string' && key.length > 0 ? [{ key }] : undefined);
}

function keyed(object: ConfigObject): [string, string][] {
  return [...sorted(object.data), ...sorted(object.binaryData)];
}

function sorted(record: Record<string, string> | undefined): [string, string][] {
  if (!record || typeof record !== 'object') return [];
  return Object.keys(record)
    .sort()
    .map((key) => [key, String(record[key])]);
}

/** The config kinds, keyed by kind name. */
export const CONFIG_KIND_SPECS: Readonly<Record<ConfigKind, ConfigKindSpec>> = {
  ConfigMap: {
    kind: 'ConfigMap',
    plural: 'configmaps',
    recordPrefix: 'configmap',
    canonicalContent: (object) => ({ data: sorted(object.data), binaryData: sorted(object.binaryData) }),
    keyedContent: keyed,
    keyedHash: false,
    fromVolume: (volume) => use(volume?.configMap?.name, volume?.configMap?.items),
    fromProjection: (source) => use(source?.configMap?.name, source?.configMap?.items),
    fromEnvFrom: (entry) => use(entry?.configMapRef?.name),
    fromEnv: (variable) =>
      keyUse(variable?.valueFrom?.configMapKeyRef?.name, variable?.valueFrom?.configMapKeyRef?.key),
  },
  Secret: {
    kind: 'Secret',
    plural: 'secrets',
    recordPrefix: 'secret',
    canonicalContent: (object) => ({
      data: sorted(object.data),
      binaryData: sorted(object.binaryData),
      type: object.type ?? 'Opaque',
    }),
    keyedContent: keyed,
    keyedHash: true,
    fromVolume: (volume) => use(volume?.secret?.secretName, volume?.secret?.items),
    fromProjection: (source) => use(source?.secret?.name, source?.secret?.items),
    fromEnvFrom: (entry) => use(entry?.secretRef?.name),
    fromEnv: (variable) =>
      keyUse(variable?.valueFrom?.secretKeyRef?.name, variable?.valueFrom?.secretKeyRef?.key),
  },
};

/** Every config kind spec, in a stable order. */
export const CONFIG_KIND_LIST: readonly ConfigKindSpec[] = Object.values(CONFIG_KIND_SPECS);
