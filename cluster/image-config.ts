/**
 * The pure parts of the image builder (cluster/images.ts): image names and references, the runtime config of an
 * image (read from a Dockerfile or given), the `umoci config` arguments that set it, the containerd name annotation
 * of the OCI index, and the parsing of `ctr images ls`.
 */

/** Repository prefix of every locally built image. `localhost` is a registry host nothing resolves through DNS. */
export const LOCAL_REPOSITORY_PREFIX = 'localhost/config-restarter';

/** Annotation of an OCI index entry that `ctr images import` takes as the full image name. */
export const CONTAINERD_IMAGE_NAME = 'io.containerd.image.name';
/** The OCI annotation with the tag (umoci writes it). */
export const OCI_REF_NAME = 'org.opencontainers.image.ref.name';

/** PATH of the node images, the usual Linux one (the `node:*-alpine` base images set the same). */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** How a container of the image starts: the fields of the OCI image config this builder sets. */
export interface ImageConfig {
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** Numeric `uid:gid`, so the kubelet can check `runAsNonRoot`. */
  readonly user: string;
  /** In the order they are set. */
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  /** TCP ports. */
  readonly exposedPorts?: readonly number[];
}

/** `localhost/config-restarter/<name>`. */
export function imageRepository(name: string): string {
  return `${LOCAL_REPOSITORY_PREFIX}/${name}`;
}

/** `localhost/config-restarter/<name>:<tag>`. */
export function imageRef(name: string, tag: string): string {
  return `${imageRepository(name)}:${tag}`;
}

/** The repository part of a `repo:tag` reference (a `:` after the last `/` starts the tag). */
export function repositoryOf(ref: string): string {
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
function instructions(dockerfile: string): { keyword: string; rest: string }[] {
  const joined = dockerfile
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), rest: rest.join(' ') };
    });
}

function unquote(value: string): string {
  return /^".*"$/.test(value) ? value.slice(1, -1) : value;
}

function execForm(keyword: string, rest: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(rest);
  } catch {
    throw new Error(`${keyword} ${rest}: only the exec (JSON array) form is supported`);
  }
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) {
    throw new Error(`${keyword} ${rest}: expected a JSON array of strings`);
  }
  return parsed;
}

/**
 * The runtime settings of a Dockerfile's final stage (ENV, USER, WORKDIR, EXPOSE, CMD, ENTRYPOINT), so a locally
 * built image starts exactly like the published one. `baseEnv` stands for what the base image sets (PATH).
 */
export function dockerfileRuntimeConfig(
  dockerfile: string,
  baseEnv: Record<string, string> = {},
): ImageConfig {
  const all = instructions(dockerfile);
  const lastFrom = all.map((i) => i.keyword).lastIndexOf('FROM');
  if (lastFrom < 0) throw new Error('Dockerfile has no FROM');
  const env: Record<string, string> = { ...baseEnv };
  let user: string | undefined;
  let workingDir: string | undefined;
  let cmd: string[] | undefined;
  let entrypoint: string[] | undefined;
  const exposedPorts: number[] = [];
  for (const { keyword, rest } of all.slice(lastFrom + 1)) {
    switch (keyword) {
      case 'ENV':
        for (const pair of rest.split(/\s+/)) {
          const eq = pair.indexOf('=');
          if (eq <= 0) throw new Error(`ENV ${rest}: only the KEY=value form is supported`);
          env[pair.slice(0, eq)] = unquote(pair.slice(eq + 1));
        }
        break;
      case 'USER':
        user = rest;
        break;
      case 'WORKDIR':
        workingDir = rest;
        break;
      case 'EXPOSE':
        for (const port of rest.split(/\s+/)) {
          const match = /^(\d+)(?:\/tcp)?$/.exec(port);
          if (!match) throw new Error(`EXPOSE ${port}: only TCP ports are supported`);
          exposedPorts.push(Number(match[1]));
        }
        break;
      case 'CMD':
        cmd = execForm(keyword, rest);
        break;
      case 'ENTRYPOINT':
        entrypoint = execForm(keyword, rest);
        break;
      default:
      // COPY, RUN, ARG, LABEL...: they shape the file system, which the builder assembles itself.
    }
  }
  if (user === undefined || !/^\d+(:\d+)?$/.test(user)) {
    throw new Error(`the final stage needs a numeric USER (uid:gid), found ${user ?? 'none'}`);
  }
  return {
    user,
    env,
    ...(entrypoint ? { entrypoint } : {}),
    ...(cmd ? { cmd } : {}),
    ...(workingDir ? { workingDir } : {}),
    ...(exposedPorts.length ? { exposedPorts } : {}),
  };
}

/** Fixed creation time of every image and layer: the image digest depends on the inputs only. */
export const IMAGE_CREATED = '1970-01-01T00:00:00Z';

/** Arguments of `umoci config` that set exactly `config` on an image made by `umoci new`. */
export function umociConfigArgs(config: ImageConfig): string[] {
  return [
    '--no-history',
    `--created=${IMAGE_CREATED}`,
    `--config.user=${config.user}`,
    ...Object.entries(config.env).map(([key, value]) => `--config.env=${key}=${value}`),
    ...(config.entrypoint ?? []).map((arg) => `--config.entrypoint=${arg}`),
    ...(config.cmd ?? []).map((arg) => `--config.cmd=${arg}`),
    ...(config.workingDir ? [`--config.workingdir=${config.workingDir}`] : []),
    ...(config.exposedPorts ?? []).map((port) => `--config.exposedports=${port}/tcp`),
  ];
}

/** The `config` object of the OCI image config that {@link umociConfigArgs} produces (key order aside). */
export function ociRuntimeConfig(config: ImageConfig): Record<string, unknown> {
  return {
    User: config.user,
    ...(Object.keys(config.env).length
      ? { Env: Object.entries(config.env).map(([key, value]) => `${key}=${value}`) }
      : {}),
    ...(config.entrypoint ? { Entrypoint: [...config.entrypoint] } : {}),
    ...(config.cmd ? { Cmd: [...config.cmd] } : {}),
    ...(config.workingDir ? { WorkingDir: config.workingDir } : {}),
    ...(config.exposedPorts
      ? { ExposedPorts: Object.fromEntries(config.exposedPorts.map((port) => [`${port}/tcp`, {}])) }
      : {}),
  };
}

/** The parts of an OCI `index.json` this builder reads and writes. */
export interface OciIndex {
  schemaVersion: number;
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  [key: string]: unknown;
}

/**
 * Names the single manifest of an OCI index `ref` for containerd: `ctr images import` takes
 * `io.containerd.image.name` as the full name, where the OCI `ref.name` annotation would only be a tag.
 */
export function withContainerdName(index: OciIndex, ref: string): OciIndex {
  if (index.manifests.length !== 1) {
    throw new Error(`expected one manifest in the OCI index, found ${index.manifests.length}`);
  }
  const [manifest] = index.manifests as [OciIndex['manifests'][number]];
  const tag = ref.slice(repositoryOf(ref).length + 1);
  return {
    ...index,
    manifests: [{ ...manifest, annotations: { [OCI_REF_NAME]: tag, [CONTAINERD_IMAGE_NAME]: ref } }],
  };
}

/**
 * `ctr images ls` output (`REF TYPE DIGEST SIZE PLATFORMS LABELS`, the size holding a space) as reference ->
 * manifest digest.
 */
export function parseCtrImageList(output: string): Map<string, string> {
  const images = new Map<string, string>();
  for (const line of output.split('\n').slice(1)) {
    const [ref, , digest] = line.trim().split(/\s+/);
    if (ref && digest?.startsWith('sha256:')) images.set(ref, digest);
  }
  return images;
}
