import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { runCommand } from './command.js';
import { hashInputs } from './input-hash.js';
import type { Log } from './util.js';

/**
 * The pieces the image builder (cluster/images.ts) lays into a root file system: host files with their shared
 * libraries, accounts, and a package's production node_modules.
 */

/**
 * Absolute paths of the shared libraries and the dynamic loader in `ldd` output, in order, without the vDSO
 * (which the kernel maps). A library `ldd` could not find throws: the image would not start.
 */
export function parseLdd(output: string): string[] {
  const paths: string[] = [];
  const missing: string[] = [];
  for (const line of output.split('\n').map((l) => l.trim())) {
    const arrow = /^(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$/.exec(line);
    if (arrow) {
      const [, name = '', target = ''] = arrow;
      if (target === 'not found') missing.push(name);
      else if (target.startsWith('/')) paths.push(target);
      continue;
    }
    const direct = /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (direct?.[1]) paths.push(direct[1]);
  }
  if (missing.length) throw new Error(`shared libraries not found: ${missing.join(', ')}`);
  return [...new Set(paths)];
}

/** The shared libraries `binary` loads (empty for a static binary). */
export async function sharedLibraries(binary: string): Promise<string[]> {
  let output: string;
  try {
    output = await runCommand('ldd', [binary]);
  } catch (err) {
    // glibc's ldd exits 1 with "not a dynamic executable" for static binaries.
    if (/not a dynamic executable/.test((err as Error).message)) return [];
    throw err;
  }
  return parseLdd(output);
}

/** Creates `dir` inside the image and its parents, mode 0755 (umask aside). */
export function mkdirIn(rootfs: string, dir: string, mode = 0o755): string {
  const full = path.join(rootfs, dir);
  mkdirSync(full, { recursive: true });
  chmodSync(full, mode);
  return full;
}

/** Copies a host file (symlinks followed) to `imagePath`, mode 0755 for executables, else 0644. */
export function copyIn(rootfs: string, hostPath: string, imagePath: string, executable: boolean): void {
  mkdirIn(rootfs, path.dirname(imagePath));
  const target = path.join(rootfs, imagePath);
  copyFileSync(hostPath, target);
  chmodSync(target, executable ? 0o755 : 0o644);
}

/** One account of the image's /etc/passwd and /etc/group. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** Writes /etc/passwd and /etc/group (root plus `accounts`) and each account's home directory. */
export function writeAccounts(rootfs: string, accounts: readonly Account[]): void {
  const all: Account[] = [{ name: 'root', uid: 0, gid: 0 }, ...accounts];
  const home = (a: Account): string => (a.uid === 0 ? '/root' : `/home/${a.name}`);
  mkdirIn(rootfs, 'etc');
  writeFileSync(
    path.join(rootfs, 'etc/passwd'),
    all.map((a) => `${a.name}:x:${a.uid}:${a.gid}:${a.name}:${home(a)}:/sbin/nologin\n`).join(''),
    { mode: 0o644 },
  );
  writeFileSync(path.join(rootfs, 'etc/group'), all.map((a) => `${a.name}:x:${a.gid}:\n`).join(''), {
    mode: 0o644,
  });
  for (const account of all) {
    const dir = mkdirIn(rootfs, home(account), account.uid === 0 ? 0o700 : 0o755);
    chownSync(dir, account.uid, account.gid);
  }
}

/** The environment without npm's `npm_*` variables, which an enclosing `npm run` would pass on as settings. */
function cleanNpmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));
}

/**
 * The production dependencies of the package in `packageDir`, installed from its own standalone lock file
 * (`npm ci --omit=dev --ignore-scripts`, what its Dockerfile runs) into `cacheRoot/<package>-<hash>/node_modules`,
 * keyed by package.json + package-lock.json. Prefers npm's cache, so it also works without network once the
 * repository's own `npm ci` has run.
 */
export async function productionModules(packageDir: string, cacheRoot: string, log: Log): Promise<string> {
  const manifests = ['package.json', 'package-lock.json'].map((name) => ({
    kind: 'file' as const,
    label: name,
    path: path.join(packageDir, name),
  }));
  const key = hashInputs(manifests).slice(0, 12);
  const target = path.join(cacheRoot, `${path.basename(packageDir)}-${key}`);
  const modules = path.join(target, 'node_modules');
  if (existsSync(modules)) return modules;

  const start = Date.now();
  const staging = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  mkdirSync(staging, { recursive: true });
  try {
    for (const file of manifests) copyFileSync(file.path, path.join(staging, file.label));
    await runCommand(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'],
      { cwd: staging, env: cleanNpmEnv() },
    );
    try {
      renameSync(staging, target);
    } catch (err) {
      // Another build finished the same entry first: keep theirs.
      if (!existsSync(modules)) throw err;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  log(`installed the production node_modules of ${path.basename(packageDir)} in ${Date.now() - start} ms`);
  return modules;
}
