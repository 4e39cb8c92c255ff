import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Receives one human-readable progress line. */
export type Log = (line: string) => void;

/** Default logger: progress lines go to stderr so stdout stays machine-friendly. */
export const stderrLog: Log = (line) => {
  process.stderr.write(`${line}\n`);
};

/** Absolute path of the repository root (this file lives in `cluster/`). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Seconds elapsed since `startMs`, one decimal. */
export function elapsed(startMs: number): string {
  return ((Date.now() - startMs) / 1000).toFixed(1);
}

/**
 * Ports handed out by {@link freePorts}: below Linux's default ephemeral range (32768-60999). An outgoing connection
 * never takes one of these as its source port, so a server restarted on its old port (as the fault tests do while
 * clients keep reconnecting) never finds it taken by a client that connected to itself.
 */
const PORT_RANGE = { min: 20_000, max: 32_767 };

function listenOn(port: number): Promise<ReturnType<typeof createServer> | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/**
 * Finds `count` distinct free TCP ports on 127.0.0.1 (random ones from {@link PORT_RANGE}, each checked by
 * listening on it). All listeners are held open until every port is known so the same port is never handed out
 * twice.
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: ReturnType<typeof createServer>[] = [];
  const ports: number[] = [];
  for (let attempts = 0; ports.length < count; attempts++) {
    if (attempts > 1_000) throw new Error(`no ${count} free ports in ${PORT_RANGE.min}-${PORT_RANGE.max}`);
    const port = PORT_RANGE.min + Math.floor(Math.random() * (PORT_RANGE.max - PORT_RANGE.min + 1));
    if (ports.includes(port)) continue;
    const server = await listenOn(port);
    if (!server) continue;
    servers.push(server);
    ports.push(port);
  }
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** The last `lines` lines of a (log) file, or a placeholder when it does not exist. */
export function tailFile(file: string, lines = 30): string {
  if (!existsSync(file)) return `(no log file at ${file})`;
  // Read at most the last 64 KiB: apiserver logs can grow large.
  const size = statSync(file).size;
  const length = Math.min(size, 64 * 1024);
  const buffer = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  const all = buffer.toString('utf8').split('\n');
  if (all.at(-1) === '') all.pop();
  return all.slice(-lines).join('\n');
}

/**
 * Whether `pid` is a live (non-zombie) process. When `expectedBinary` is given and /proc is available, the process
 * must also run that binary, so a PID recycled by an unrelated process is never mistaken for ours.
 */
export function isProcessAlive(pid: number, expectedBinary?: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    // ESRCH: gone. EPERM: it exists but belongs to another user, so it is not ours either.
    return false;
  }
  const procDir = `/proc/${pid}`;
  if (!existsSync('/proc/self')) return true;
  try {
    const stat = readFileSync(`${procDir}/stat`, 'utf8');
    // The state field follows the parenthesised command name, which may itself contain spaces.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    if (expectedBinary === undefined) return true;
    // argv[1] covers a wrapper script run through its interpreter.
    const argv = readFileSync(`${procDir}/cmdline`, 'utf8').split('\0').slice(0, 2);
    return argv.some((arg) => path.basename(arg) === path.basename(expectedBinary));
  } catch {
    return false;
  }
}

/**
 * Stops one process: SIGTERM, then SIGKILL once `graceMs` has passed. Resolves when it is gone (or was never ours).
 */
export async function terminateProcess(pid: number, expectedBinary: string, graceMs = 10_000): Promise<void> {
  if (!isProcessAlive(pid, expectedBinary)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isProcessAlive(pid, expectedBinary)) return;
    await sleep(100);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  const killDeadline = Date.now() + 5_000;
  while (Date.now() < killDeadline) {
    if (!isProcessAlive(pid, expectedBinary)) return;
    await sleep(100);
  }
  throw new Error(`process ${pid} (${path.basename(expectedBinary)}) did not exit after SIGKILL`);
}

const exits = new Map<number, string>();

/**
 * How a process started by {@link spawnLogged} in this Node process ended (`exited with code N`, `killed by
 * SIGx`), or undefined while it runs or when this process did not start it.
 */
export function exitOf(pid: number): string | undefined {
  return exits.get(pid);
}

/** Spawns one control plane process (in `env`, default: ours) with stdout and stderr written to `logFile`. */
export function spawnLogged(
  binary: string,
  args: string[],
  logFile: string,
  cwd: string,
  detached: boolean,
  env?: NodeJS.ProcessEnv,
): number {
  const fd = openSync(logFile, 'w');
  try {
    const child = spawn(binary, args, { cwd, detached, env, stdio: ['ignore', fd, fd] });
    // Spawn failures (ENOENT, EACCES) are reported asynchronously; the missing pid is checked below.
    child.on('error', () => undefined);
    const pid = child.pid;
    // Kept so a process that dies without a log line can still say how (see exitOf).
    child.on('exit', (code, signal) => {
      if (pid !== undefined) exits.set(pid, signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${binary}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** Polls `probe` until it returns true; fails early when `alive` turns false, citing `logFile`. */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  alive: () => boolean,
  logFile: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (!alive()) {
      throw new Error(`${what} exited during start-up. Last lines of ${logFile}:\n${tailFile(logFile)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what} not ready after ${timeoutMs / 1000} s. Last lines of ${logFile}:\n${tailFile(logFile)}`,
      );
    }
    await sleep(200);
  }
}
