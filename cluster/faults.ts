/**
 * Faults of the local control plane for tests: freeze kube-apiserver (SIGSTOP/SIGCONT), kill it, and start it
 * again with exactly the same command line (same port, certificates, token file and signing key), while etcd
 * keeps running with its data. The cluster's state file is updated with the new PID, so `stopCluster` still
 * cleans up.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { kubeRequest } from './kube.js';
import { isProcessAlive, sleep, tailFile } from './util.js';

/** The fields of `<cluster dir>/state.json` this module reads and updates. */
interface StateFile {
  server: string;
  caData: string;
  adminToken: string;
  pids: { kubeApiserver: number; etcd: number };
  logs: { kubeApiserver: string };
  binaries: { kubeApiserver: string };
  [key: string]: unknown;
}

/** Fault injection on the kube-apiserver of one running local cluster. */
export interface ApiServerFaults {
  /** PID of the current kube-apiserver. */
  readonly pid: number;
  /** SIGSTOP: the process keeps its sockets; the kernel still accepts connections, nothing answers. */
  freeze(): void;
  /** SIGCONT after {@link freeze}. */
  thaw(): void;
  /** SIGKILL (works on a frozen process too); resolves once the process is gone. */
  kill(): Promise<void>;
  /**
   * Starts kube-apiserver again with the command line it had, appending to its log, and resolves with the
   * milliseconds until `/readyz` answered 200. Kills a still running one first.
   */
  restart(timeoutMs?: number): Promise<number>;
  /** True when `/readyz` answers 200 within `timeoutMs` (default 2 s). */
  ready(timeoutMs?: number): Promise<boolean>;
}

function readState(dir: string): StateFile {
  return JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8')) as StateFile;
}

/** The argv of a running process (Linux /proc). */
function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
}

/**
 * Fault injection for the cluster recorded in `dir` (e.g. `TEST_CLUSTER_DIR`). Reads kube-apiserver's command
 * line now, while it runs, so that {@link ApiServerFaults.restart} can reproduce it exactly.
 */
export function apiServerFaults(dir: string): ApiServerFaults {
  const initial = readState(dir);
  let pid = initial.pids.kubeApiserver;
  const binary = initial.binaries.kubeApiserver;
  if (!isProcessAlive(pid, binary)) throw new Error(`kube-apiserver (pid ${pid}) of ${dir} is not running`);
  const [, ...args] = commandLine(pid);
  const target = { server: initial.server, caData: initial.caData, token: initial.adminToken };

  const ready = async (timeoutMs = 2_000): Promise<boolean> => {
    try {
      const { status } = await kubeRequest(target, 'GET', '/readyz', undefined, { timeoutMs });
      return status === 200;
    } catch {
      return false;
    }
  };

  const kill = async (): Promise<void> => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    const deadline = Date.now() + 10_000;
    while (isProcessAlive(pid, binary)) {
      if (Date.now() > deadline) throw new Error(`kube-apiserver (pid ${pid}) survived SIGKILL`);
      await sleep(50);
    }
  };

  return {
    get pid() {
      return pid;
    },
    freeze: () => process.kill(pid, 'SIGSTOP'),
    thaw: () => process.kill(pid, 'SIGCONT'),
    kill,
    ready,
    async restart(timeoutMs = 90_000) {
      if (isProcessAlive(pid, binary)) await kill();
      const started = Date.now();
      const logFile = initial.logs.kubeApiserver;
      for (;;) {
        pid = spawnApiserver(binary, args, dir, logFile);
        const outcome = await untilReadyOrExit(ready, () => isProcessAlive(pid, binary), started + timeoutMs);
        if (outcome === 'ready') return Date.now() - started;
        const tail = tailFile(logFile);
        // A socket of the killed process can hold the port for a moment after its exit (seen rarely under load):
        // start again until the deadline rather than fail the test on the kernel's timing.
        if (
          outcome === 'exited' &&
          tail.includes('address already in use') &&
          Date.now() - started < timeoutMs
        ) {
          await sleep(500);
          continue;
        }
        throw new Error(
          outcome === 'exited'
            ? `kube-apiserver exited during restart. Last lines of ${logFile}:\n${tail}`
            : `kube-apiserver not ready ${timeoutMs / 1000} s after restart:\n${tail}`,
        );
      }
    },
  };
}

/** Starts kube-apiserver with `args` (appending to its log) and records its PID in the cluster's state file. */
function spawnApiserver(binary: string, args: string[], dir: string, logFile: string): number {
  const fd = openSync(logFile, 'a');
  let pid: number;
  try {
    const child = spawn(binary, args, { cwd: dir, stdio: ['ignore', fd, fd] });
    child.on('error', () => undefined);
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${binary}`);
    pid = child.pid;
  } finally {
    closeSync(fd);
  }
  const state = readState(dir);
  state.pids.kubeApiserver = pid;
  writeFileSync(path.join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  return pid;
}

/** Polls `ready` until it answers, the process exits, or `deadline` (epoch ms) passes. */
async function untilReadyOrExit(
  ready: () => Promise<boolean>,
  alive: () => boolean,
  deadline: number,
): Promise<'ready' | 'exited' | 'timeout'> {
  for (;;) {
    if (await ready()) return 'ready';
    if (!alive()) return 'exited';
    if (Date.now() > deadline) return 'timeout';
    await sleep(100);
  }
}
