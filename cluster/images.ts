/**
 * Container images without a registry: the pod sandbox (`pause`), Knative's `queue-proxy`, `helloworld` (app/) and
 * `config-restarter` (functions/config-restarter), assembled from host files, the pinned Go builds and the built
 * `dist/` + production node_modules, packed as OCI layouts with umoci and imported into containerd with `ctr`.
 * Each image is cached under `${XDG_CACHE_HOME:-~/.cache}/config-restarter/images`, keyed by the hash of its
 * inputs, which is also its tag. See docs/cluster.md, "Images".
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBinary, upstreamModuleDir, type Component } from './binaries.js';
import { runCommand, runPipe } from './command.js';
import { ensureEnvoy } from './envoy.js';
import {
  DEFAULT_PATH,
  dockerfileRuntimeConfig,
  type ImageConfig,
  imageRef,
  parseCtrImageList,
  repositoryOf,
  umociConfigArgs,
} from './image-config.js';
import { type HashInput, hashInputs } from './input-hash.js';
import { ensureUmoci, packImage } from './oci-pack.js';
import { copyIn, mkdirIn, productionModules, sharedLibraries, writeAccounts } from './rootfs.js';
import { elapsed, type Log, REPO_ROOT } from './util.js';

/** The images the local node runs. */
export type ImageName =
  | 'pause'
  | 'queue-proxy'
  | 'apiserver-adapter'
  | 'mtping'
  | 'broker-ingress'
  | 'broker-filter'
  | 'imc-dispatcher'
  | 'event-display'
  | 'envoy'
  | 'istio-proxy'
  | 'helloworld'
  | 'config-restarter';

/** One built image. */
export interface BuiltImage {
  /** `localhost/config-restarter/<name>:<12 hex of the input hash>`. */
  ref: string;
  /** Manifest digest (`sha256:...`); containerd also knows the image as `<repository>@<digest>`. */
  digest: string;
  /** The OCI image layout (cached; do not modify). */
  ociDir: string;
}

/** What one image is made of, resolved at build time. */
interface ImagePlan {
  /** Everything besides the builder's own code that, changed, must give a new image. */
  inputs: HashInput[];
  config: ImageConfig;
  /** Lays the image's files into an empty root file system. */
  fill: (rootfs: string, log: Log) => Promise<void> | void;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The builder's own sources: part of every image's input hash. */
const BUILDER_SOURCES = [
  'images.ts',
  'image-config.ts',
  'input-hash.ts',
  'oci-pack.ts',
  'rootfs.ts',
  'command.ts',
];
const CA_CERTIFICATES = '/etc/ssl/certs/ca-certificates.crt';

/** `${XDG_CACHE_HOME:-~/.cache}/config-restarter/images`: shared by all checkouts, like the binaries. */
export function imageCacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'config-restarter', 'images');
}

/** Requires a host file the images copy, naming the package that provides it. */
function hostFile(file: string, debianPackage: string): string {
  if (!existsSync(file)) throw new Error(`${file} is missing: install the ${debianPackage} package`);
  return file;
}

/** `uid:gid` of a numeric USER. */
function ids(user: string): { uid: number; gid: number } {
  const [uid = '', gid = uid] = user.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** The sandbox: a static C program that sleeps, reaps zombies and exits on SIGTERM/SIGINT. */
async function pausePlan(): Promise<ImagePlan> {
  const source = path.join(HERE, 'images', 'pause.c');
  const gcc = (await runCommand('gcc', ['--version'])).split('\n')[0] ?? '';
  return {
    inputs: [
      { kind: 'file', label: 'pause.c', path: source },
      { kind: 'text', label: 'gcc', value: gcc },
    ],
    // The user of the upstream pause image.
    config: { entrypoint: ['/pause'], user: '65535:65535', env: {} },
    fill: async (rootfs) => {
      await runCommand('gcc', ['-static', '-Os', '-s', '-o', path.join(rootfs, 'pause'), source]);
    },
  };
}

/**
 * A Knative Go command at ko's path (`/ko-app/<name>`), as a numeric non-root user (Knative's securityContexts have
 * runAsNonRoot): queue-proxy, the ApiServerSource receive adapter, the PingSource adapter, the Broker's ingress and
 * filter, the in-memory channel's dispatcher and event_display.
 */
function koAppPlan(component: Component, name: string): (log: Log) => Promise<ImagePlan> {
  return async (log) => {
    const binary = await ensureBinary(component, log);
    const ca = hostFile(CA_CERTIFICATES, 'ca-certificates');
    // ko's base image user (nonroot) and environment.
    const user = '65532:65532';
    return {
      inputs: [
        { kind: 'file', label: name, path: binary },
        { kind: 'file', label: 'ca-certificates', path: ca },
      ],
      config: {
        entrypoint: [`/ko-app/${name}`],
        user,
        env: { PATH: `${DEFAULT_PATH}:/ko-app`, SSL_CERT_FILE: CA_CERTIFICATES },
      },
      fill: (rootfs) => {
        copyIn(rootfs, binary, `ko-app/${name}`, true);
        copyIn(rootfs, ca, CA_CERTIFICATES, false);
        writeAccounts(rootfs, [{ name: 'nonroot', ...ids(user) }]);
      },
    };
  };
}

/**
 * Envoy (the Kourier gateway) at the path of the upstream envoyproxy/envoy image, `/usr/local/bin/envoy`, with the
 * shared libraries and loader `ldd` lists; its Deployment sets the user (65534) and the command.
 */
async function envoyPlan(log: Log): Promise<ImagePlan> {
  const binary = await ensureEnvoy(log);
  const libraries = await sharedLibraries(binary);
  return {
    inputs: [
      { kind: 'file', label: 'envoy', path: binary },
      ...libraries.map((lib): HashInput => ({ kind: 'file', label: lib, path: lib })),
    ],
    config: { entrypoint: ['/usr/local/bin/envoy'], user: '65534:65534', env: { PATH: DEFAULT_PATH } },
    fill: (rootfs) => {
      copyIn(rootfs, binary, 'usr/local/bin/envoy', true);
      for (const lib of libraries) copyIn(rootfs, lib, lib, true);
      writeAccounts(rootfs, [{ name: 'nobody', ...ids('65534:65534') }]);
      mkdirIn(rootfs, 'tmp', 0o1777);
    },
  };
}

/**
 * Istio's gateway proxy laid out as upstream's proxyv2 image (pilot/docker/Dockerfile.proxyv2): pilot-agent and
 * Envoy in `/usr/local/bin`, the Envoy bootstrap template of the same Istio module at
 * `/var/lib/istio/envoy/envoy_bootstrap_tmpl.json` (pilot-agent reads it relative to the working directory `/`),
 * user istio-proxy (1337). The Envoy is the upstream one of the `envoy` image, not Istio's own build.
 */
async function istioProxyPlan(log: Log): Promise<ImagePlan> {
  const agent = await ensureBinary('pilotAgent', log);
  const envoy = await ensureEnvoy(log);
  const libraries = await sharedLibraries(envoy);
  const template = path.join(
    await upstreamModuleDir('pilotAgent'),
    'tools',
    'packaging',
    'common',
    'envoy_bootstrap.json',
  );
  const user = '1337:1337';
  return {
    inputs: [
      { kind: 'file', label: 'pilot-agent', path: agent },
      { kind: 'file', label: 'envoy', path: envoy },
      { kind: 'file', label: 'envoy_bootstrap.json', path: template },
      ...libraries.map((lib): HashInput => ({ kind: 'file', label: lib, path: lib })),
    ],
    config: {
      entrypoint: ['/usr/local/bin/pilot-agent'],
      user,
      env: { PATH: DEFAULT_PATH },
      workingDir: '/',
    },
    fill: (rootfs) => {
      copyIn(rootfs, agent, 'usr/local/bin/pilot-agent', true);
      copyIn(rootfs, envoy, 'usr/local/bin/envoy', true);
      for (const lib of libraries) copyIn(rootfs, lib, lib, true);
      copyIn(rootfs, template, 'var/lib/istio/envoy/envoy_bootstrap_tmpl.json', false);
      writeAccounts(rootfs, [{ name: 'istio-proxy', ...ids(user) }]);
      mkdirIn(rootfs, 'tmp', 0o1777);
      mkdirIn(rootfs, 'etc/istio/proxy');
    },
  };
}

/**
 * A Node.js package as its Dockerfile's final stage has it (same ENV, USER, WORKDIR, EXPOSE, CMD): the host's node
 * binary with the shared libraries and loader `ldd` lists, CA certificates, accounts, and in the working directory
 * the built dist/, the production node_modules and package.json.
 */
function nodePackagePlan(packagePath: string): (log: Log) => Promise<ImagePlan> {
  return async () => {
    const packageDir = path.join(REPO_ROOT, packagePath);
    const dist = path.join(packageDir, 'dist');
    if (!existsSync(path.join(dist, 'index.js'))) {
      throw new Error(`${packagePath}/dist/index.js is missing: run \`npm run build\` first`);
    }
    const config = dockerfileRuntimeConfig(readFileSync(path.join(packageDir, 'Dockerfile'), 'utf8'), {
      PATH: DEFAULT_PATH,
    });
    const workDir = config.workingDir ?? '/';
    const node = process.execPath;
    const libraries = await sharedLibraries(node);
    const ca = hostFile(CA_CERTIFICATES, 'ca-certificates');
    return {
      inputs: [
        { kind: 'file', label: 'node', path: node },
        ...libraries.map((lib): HashInput => ({ kind: 'file', label: lib, path: lib })),
        { kind: 'file', label: 'ca-certificates', path: ca },
        { kind: 'tree', label: 'dist', path: dist },
        { kind: 'file', label: 'package.json', path: path.join(packageDir, 'package.json') },
        { kind: 'file', label: 'package-lock.json', path: path.join(packageDir, 'package-lock.json') },
      ],
      config,
      fill: async (rootfs, log) => {
        const modules = await productionModules(packageDir, path.join(imageCacheRoot(), 'node-modules'), log);
        mkdirIn(rootfs, 'usr/bin');
        // Debug symbols are a tenth of the binary and never used in a pod.
        await runCommand('strip', ['-o', path.join(rootfs, 'usr/bin/node'), node]);
        for (const lib of libraries) copyIn(rootfs, lib, lib, true);
        copyIn(rootfs, ca, CA_CERTIFICATES, false);
        writeAccounts(rootfs, [{ name: 'node', ...ids(config.user) }]);
        mkdirIn(rootfs, 'tmp', 0o1777);
        const app = mkdirIn(rootfs, workDir);
        // cp -a keeps modes; the files stay root's (we run as root), only the process runs as config.user.
        await runCommand('cp', ['-a', dist, path.join(app, 'dist')]);
        await runCommand('cp', ['-a', modules, path.join(app, 'node_modules')]);
        copyIn(rootfs, path.join(packageDir, 'package.json'), path.join(workDir, 'package.json'), false);
      },
    };
  };
}

/** The one table of images: how each is planned. */
const IMAGES: Readonly<Record<ImageName, (log: Log) => Promise<ImagePlan>>> = {
  pause: pausePlan,
  'queue-proxy': koAppPlan('queueProxy', 'queue'),
  'apiserver-adapter': koAppPlan('apiserverAdapter', 'apiserver_receive_adapter'),
  mtping: koAppPlan('pingAdapter', 'mtping'),
  'broker-ingress': koAppPlan('brokerIngress', 'ingress'),
  'broker-filter': koAppPlan('brokerFilter', 'filter'),
  'imc-dispatcher': koAppPlan('imcDispatcher', 'channel_dispatcher'),
  'event-display': koAppPlan('eventDisplay', 'event_display'),
  envoy: envoyPlan,
  'istio-proxy': istioProxyPlan,
  helloworld: nodePackagePlan('app'),
  'config-restarter': nodePackagePlan(path.join('functions', 'config-restarter')),
};

/** What is recorded next to a cached layout. */
interface CacheRecord {
  ref: string;
  digest: string;
}

async function buildOne(name: ImageName, umociVersion: string, log: Log): Promise<BuiltImage> {
  const plan = await IMAGES[name](log);
  const hash = hashInputs([
    ...BUILDER_SOURCES.map((file): HashInput => ({ kind: 'file', label: file, path: path.join(HERE, file) })),
    { kind: 'text', label: 'umoci', value: umociVersion },
    { kind: 'text', label: 'image', value: name },
    { kind: 'text', label: 'config', value: JSON.stringify(umociConfigArgs(plan.config)) },
    ...plan.inputs,
  ]).slice(0, 12);
  const ref = imageRef(name, hash);
  const entry = path.join(imageCacheRoot(), `${name}-${hash}`);
  const ociDir = path.join(entry, 'oci');
  const recordFile = path.join(entry, 'image.json');
  if (existsSync(recordFile)) {
    const record = JSON.parse(readFileSync(recordFile, 'utf8')) as CacheRecord;
    return { ref: record.ref, digest: record.digest, ociDir };
  }

  const start = Date.now();
  log(`building image ${ref}`);
  const scratch = `${entry}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(scratch, { recursive: true });
  try {
    const digest = await packImage({
      ociDir: path.join(scratch, 'oci'),
      bundleDir: path.join(scratch, 'bundle'),
      ref,
      config: plan.config,
      fill: async (rootfs) => plan.fill(rootfs, log),
    });
    rmSync(path.join(scratch, 'bundle'), { recursive: true, force: true });
    writeFileSync(
      path.join(scratch, 'image.json'),
      `${JSON.stringify({ ref, digest } satisfies CacheRecord)}\n`,
    );
    try {
      renameSync(scratch, entry);
    } catch (err) {
      // Another build finished the same entry first: keep theirs (same inputs, same content).
      if (!existsSync(recordFile)) throw err;
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const record = JSON.parse(readFileSync(recordFile, 'utf8')) as CacheRecord;
  log(`built image ${ref} (${record.digest}) in ${elapsed(start)} s`);
  return { ref: record.ref, digest: record.digest, ociDir };
}

/**
 * Builds the named images (or finds them in the cache: the tag is the hash of the inputs, i.e. the binaries, dist/,
 * the lock files, the host files copied, the config and this builder's code and umoci's version). Sequential: each
 * step already keeps the CPU busy.
 */
export async function buildImages<N extends ImageName>(
  names: readonly N[],
  opts: { log: Log },
): Promise<Record<N, BuiltImage>> {
  const umociVersion = await ensureUmoci(opts.log);
  const result = {} as Record<N, BuiltImage>;
  for (const name of new Set(names)) result[name] = await buildOne(name, umociVersion, opts.log);
  return result;
}

/**
 * Imports built images into containerd's `k8s.io` namespace (the one the CRI plugin, so the kubelet, uses) as
 * `ref` and as `<repository>@<digest>` (manifests that pin the digest, and Knative's resolved Revisions, use that
 * name). Images containerd already holds under both names with that digest are skipped.
 */
export async function importImages(
  images: Partial<Record<ImageName, BuiltImage>>,
  opts: { containerdAddress: string; log: Log },
): Promise<void> {
  const ctr = ['-a', opts.containerdAddress, '-n', 'k8s.io'];
  const list = async (): Promise<Map<string, string>> =>
    parseCtrImageList(await runCommand('ctr', [...ctr, 'images', 'ls']));
  let present = await list();
  for (const image of Object.values(images)) {
    const repository = repositoryOf(image.ref);
    const names = [image.ref, `${repository}@${image.digest}`];
    if (names.every((n) => present.get(n) === image.digest)) {
      opts.log(`image ${image.ref} already in containerd`);
      continue;
    }
    const start = Date.now();
    await runPipe(
      { command: 'tar', args: ['-C', image.ociDir, '-cf', '-', '.'] },
      { command: 'ctr', args: [...ctr, 'images', 'import', '--base-name', repository, '--digests', '-'] },
    );
    present = await list();
    const missing = names.filter((n) => present.get(n) !== image.digest);
    if (missing.length) throw new Error(`ctr images import left out ${missing.join(', ')} (${image.digest})`);
    opts.log(`imported image ${image.ref} in ${elapsed(start)} s`);
  }
}
