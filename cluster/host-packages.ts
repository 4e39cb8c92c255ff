/**
 * The Debian packages the node runs on (containerd, runc, the CNI plugins, iptables, conntrack, socat) and the image
 * builder uses (umoci; gcc and libc6-dev for the static pause binary): installed with apt-get when missing, once per
 * machine.
 */
import { existsSync } from 'node:fs';
import { runCommand } from './node-network.js';
import { elapsed, type Log } from './util.js';

/** A Debian package and a file that tells whether it is installed. */
interface HostPackage {
  name: string;
  /** A file the package installs. */
  file: string;
}

/** The node's packages (Debian bookworm names; the versions are Debian's). */
export const HOST_PACKAGES: readonly HostPackage[] = [
  { name: 'containerd', file: '/usr/bin/containerd' },
  { name: 'runc', file: '/usr/sbin/runc' },
  { name: 'containernetworking-plugins', file: '/usr/lib/cni/bridge' },
  { name: 'iptables', file: '/usr/sbin/iptables' },
  { name: 'conntrack', file: '/usr/sbin/conntrack' },
  { name: 'socat', file: '/usr/bin/socat' },
  { name: 'umoci', file: '/usr/bin/umoci' },
  // The image builder compiles the pause binary statically.
  { name: 'gcc', file: '/usr/bin/gcc' },
  { name: 'libc6-dev', file: '/usr/include/stdio.h' },
  // Also needed, and present on almost every system: nsenter/unshare, ip, openssl.
  { name: 'util-linux', file: '/usr/bin/nsenter' },
  { name: 'iproute2', file: '/usr/sbin/ip' },
  { name: 'openssl', file: '/usr/bin/openssl' },
];

/** The packages whose file is missing. */
export function missingHostPackages(exists: (file: string) => boolean = existsSync): string[] {
  return HOST_PACKAGES.filter((p) => !exists(p.file)).map((p) => p.name);
}

/**
 * Installs the missing packages with `apt-get update && apt-get install -y --no-install-recommends`. Fails with the
 * list of packages when that is not possible (not root, no apt-get).
 */
export async function ensureHostPackages(log: Log): Promise<void> {
  const missing = missingHostPackages();
  if (missing.length === 0) return;
  const manual = `install them with: apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (process.getuid?.() !== 0) throw new Error(`the node needs Debian packages that are missing; ${manual}`);
  if (!existsSync('/usr/bin/apt-get'))
    throw new Error(`the node needs packages and there is no apt-get; ${manual}`);
  const start = Date.now();
  log(`installing Debian packages for the node: ${missing.join(' ')}`);
  // Another cluster starting at the same time may hold the dpkg lock: wait for it.
  const lock = ['-o', 'DPkg::Lock::Timeout=600'];
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [
    ['update', ...lock],
    ['install', '-y', '--no-install-recommends', ...lock, ...missing],
  ]) {
    const result = await runCommand('apt-get', args, { env });
    if (result.code !== 0) {
      throw new Error(
        `apt-get ${args[0]} failed (exit ${result.code}): ${result.stderr.trim().slice(-2000)}; ${manual}`,
      );
    }
  }
  log(`installed ${missing.join(' ')} (${elapsed(start)} s)`);
}
