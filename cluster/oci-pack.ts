import { lutimesSync, readdirSync, readFileSync, writeFileSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { commandExists, runCommand } from './command.js';
import {
  IMAGE_CREATED,
  type ImageConfig,
  type OciIndex,
  repositoryOf,
  umociConfigArgs,
  withContainerdName,
} from './image-config.js';
import type { Log } from './util.js';

/**
 * Makes `umoci` (Debian package `umoci`) available: installed with apt-get when missing and we are root, the way
 * `.ci/run` installs it; otherwise a clear error.
 */
export async function ensureUmoci(log: Log): Promise<string> {
  if (!(await commandExists('umoci'))) {
    if (process.getuid?.() !== 0 || !(await commandExists('apt-get'))) {
      throw new Error('umoci is not on PATH: install it (Debian/Ubuntu: apt-get install umoci)');
    }
    log('installing umoci (apt-get install umoci)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = ['install', '-y', '--no-install-recommends', 'umoci'];
    // A fresh machine may have no package lists yet.
    await runCommand('apt-get', install, { env }).catch(async () => {
      await runCommand('apt-get', ['update'], { env });
      await runCommand('apt-get', install, { env });
    });
  }
  return (await runCommand('umoci', ['--version'])).trim();
}

/** Sets every mtime below `dir` (and its own) to the epoch: the layer tar then depends on content only. */
function clampTimes(dir: string): void {
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (lstatSync(full).isDirectory()) clampTimes(full);
    else lutimesSync(full, 0, 0);
  }
  lutimesSync(dir, 0, 0);
}

/** What {@link packImage} needs. */
export interface PackRequest {
  /** The OCI layout to create (must not exist). */
  ociDir: string;
  /** Scratch directory for umoci's bundle (must not exist). */
  bundleDir: string;
  /** Full reference, `repository:tag`; the tag names the image inside the layout too. */
  ref: string;
  config: ImageConfig;
  /** Fills the empty root file system (owned by root, as unpacked by umoci). */
  fill: (rootfs: string) => Promise<void> | void;
}

/**
 * Builds a one-layer OCI image with umoci: `init` + `new` give an empty image, `unpack` a bundle whose rootfs
 * `fill` populates, `repack` turns it into the layer, `config` sets the runtime config, `gc` drops the empty
 * image's leftovers. The index entry then carries the full reference for `ctr images import`.
 * Returns the manifest digest.
 */
export async function packImage(request: PackRequest): Promise<string> {
  const { ociDir, bundleDir, ref, config } = request;
  const image = `${ociDir}:${ref.slice(repositoryOf(ref).length + 1)}`;
  await runCommand('umoci', ['init', '--layout', ociDir]);
  await runCommand('umoci', ['new', '--image', image]);
  await runCommand('umoci', ['unpack', '--image', image, bundleDir]);
  const rootfs = path.join(bundleDir, 'rootfs');
  await request.fill(rootfs);
  clampTimes(rootfs);
  await runCommand('umoci', [
    'repack',
    '--image',
    image,
    `--history.created=${IMAGE_CREATED}`,
    `--history.created_by=cluster/images.ts ${repositoryOf(ref)}`,
    bundleDir,
  ]);
  await runCommand('umoci', ['config', '--image', image, ...umociConfigArgs(config)]);
  await runCommand('umoci', ['gc', '--layout', ociDir]);
  const indexFile = path.join(ociDir, 'index.json');
  const index = withContainerdName(JSON.parse(readFileSync(indexFile, 'utf8')) as OciIndex, ref);
  writeFileSync(indexFile, JSON.stringify(index));
  return (index.manifests[0] as OciIndex['manifests'][number]).digest;
}
