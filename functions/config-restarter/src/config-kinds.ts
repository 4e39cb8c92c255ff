/**
 * One table of per-kind facts for configuration objects (ConfigMap, Secret): where they live in the API,
 * how their content is hashed, and where a pod spec references them. Adding a config kind is one entry.
 */
import type { ConfigKind } from './config.js';
import type { ConfigObject, ContainerLike, PodSpecLike } from './model.js';

/** A pod-spec volume, as far as references go. */
type VolumeLike = NonNullable<PodSpecLike['volumes']>[number];
/** A projected volume source. */
type ProjectionLike = NonNullable<NonNullable<VolumeLike['projected']>['sources']>[number];
/** An `envFrom` entry. */
type EnvFromLike = NonNullable<ContainerLike['envFrom']>[number];
/** An `env` entry. */
type EnvVarLike = NonNullable<ContainerLike['env']>[number];

/** How to find, hash and recognise references to one config kind. */
export interface ConfigKindSpec {
  kind: ConfigKind;
  /** Resource name in URLs and RBAC rules (core group, v1). */
  plural: string;
  /** Prefix of this kind's keys in the hash record, e.g. `configmap` in `configmap/<name>`. */
  recordPrefix: string;
  /** Canonical content (what a change is); metadata never counts. */
  canonicalContent(object: ConfigObject): unknown;
  /** `sha256` for public content; an HMAC keyed by the object's uid for secret content. */
  keyedHash: boolean;
  /** The name this kind's object has in a volume, a projected source, an envFrom and an env entry. */
  fromVolume(volume: VolumeLike): string | undefined;
  fromProjection(source: ProjectionLike): string | undefined;
  fromEnvFrom(entry: EnvFromLike): string | undefined;
  fromEnv(variable: EnvVarLike): string | undefined;
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
    keyedHash: false,
    fromVolume: (volume) => volume?.configMap?.name,
    fromProjection: (source) => source?.configMap?.name,
    fromEnvFrom: (entry) => entry?.configMapRef?.name,
    fromEnv: (variable) => variable?.valueFrom?.configMapKeyRef?.name,
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
    keyedHash: true,
    fromVolume: (volume) => volume?.secret?.secretName,
    fromProjection: (source) => source?.secret?.name,
    fromEnvFrom: (entry) => entry?.secretRef?.name,
    fromEnv: (variable) => variable?.valueFrom?.secretKeyRef?.name,
  },
};

/** Every config kind spec, in a stable order. */
export const CONFIG_KIND_LIST: readonly ConfigKindSpec[] = Object.values(CONFIG_KIND_SPECS);
