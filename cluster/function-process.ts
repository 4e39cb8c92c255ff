/**
 * Runs the built config-restarter (`node functions/config-restarter/dist/index.js`) as its own process,
 * exactly as the image does, with the settings a test gives it, and the credentials a pod gets: the
 * in-cluster contract (service host and port, a ServiceAccount directory with a TokenRequest token of the
 * ServiceAccount and the CA, see service-account.ts), so tests, demo and bench run the function's production
 * credential path.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ProjectedServiceAccount } from './service-account.js';
import { freePorts, REPO_ROOT, sleep, tailFile } from './util.js';

/** The function's entry point; `npm test` builds it before the tests run. */
export const FUNCTION_ENTRY = path.join(REPO_ROOT, 'functions', 'config-restarter', 'dist', 'index.js');

/** A running function process. */
export interface FunctionProcess {
  url: string;
  /** Process id of the Node process running the function (for /proc readings). */
  pid: number;
  /** `process.hrtime.bigint()` just before the spawn. */
  spawnedAt: bigint;
  logFile: string;
  /** Its ServiceAccount directory: `rotate()` or `writeToken()` change the token it reads. */
  serviceAccount: ProjectedServiceAccount;
  /** Sum of `config_restarter_events_total` over all labels. */
  eventsHandled(): Promise<number>;
  /** Parsed JSON log lines so far. */
  logLines(): Record<string, unknown>[];
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts the function and waits until its readiness endpoint answers (unless `waitUntilReady` is false: then it
 * returns right after the spawn, for callers that time the start themselves).
 */
export async function startFunction(options: {
  /** Admin kubeconfig of the cluster: mints the ServiceAccount's token, gives the API server and its CA. */
  adminKubeconfig: string;
  /** Namespace of the ServiceAccount the function runs as (with the project's RBAC applied there). */
  namespace: string;
  /** Default `config-restarter`. */
  serviceAccount?: string;
  logFile: string;
  env?: Record<string, string>;
  waitUntilReady?: boolean;
}): Promise<FunctionProcess> {
  if (!existsSync(FUNCTION_ENTRY)) {
    throw new Error(`${FUNCTION_ENTRY} is missing: run \`npm run build\` first (npm test does)`);
  }
  // Never 8080: the ApiServerSource adapter binds it for its probes.
  const [port] = (await freePorts(1)) as [number];
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const serviceAccount = await ProjectedServiceAccount.create(
    options.adminKubeconfig,
    `${options.logFile.replace(/\.log$/, '')}-serviceaccount`,
    options.namespace,
    options.serviceAccount,
  );
  const fd = openSync(options.logFile, 'w');
  let child: ChildProcess;
  const spawnedAt = process.hrtime.bigint();
  try {
    child = spawn(process.execPath, [FUNCTION_ENTRY], {
      env: {
        PATH: process.env.PATH,
        PORT: String(port),
        ...serviceAccount.env(),
        LOG_LEVEL: 'debug',
        ...options.env,
      },
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (options.waitUntilReady !== false) {
    if (exitCode !== undefined) {
      throw new Error(`config-restarter exited (${exitCode}) at start:\n${tailFile(options.logFile)}`);
    }
    try {
      if ((await fetch(`${url}/health/readiness`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`config-restarter not ready after 20 s:\n${tailFile(options.logFile)}`);
    }
    await sleep(100);
  }
  return {
    url,
    pid: child.pid ?? 0,
    spawnedAt,
    logFile: options.logFile,
    serviceAccount,
    async eventsHandled() {
      const text = await (await fetch(`${url}/metrics`)).text();
      return [...text.matchAll(/^config_restarter_events_total\{[^}]*\} (\d+)$/gm)].reduce(
        (sum, match) => sum + Number(match[1]),
        0,
      );
    },
    logLines() {
      return readFileSync(options.logFile, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    async stop() {
      if (exitCode !== undefined) return exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
