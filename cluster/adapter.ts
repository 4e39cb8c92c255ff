import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePorts, sleep, tailFile } from './util.js';

/** One watched resource, as in the ApiServerSource adapter's K_SOURCE_CONFIG. */
export interface AdapterResource {
  /** API group, `''` for the core group. */
  group: string;
  version: string;
  /** Plural resource name, e.g. `configmaps`. */
  resource: string;
  /** Label selector, e.g. `app=helloworld`. */
  selector?: string;
}

/** Options of {@link startApiServerSourceAdapter}. */
export interface ApiServerSourceAdapterOptions {
  /** Path of the `apiserver_receive_adapter` binary (see ensureBinaries). */
  binary: string;
  /** Kubeconfig the adapter uses; give it a ServiceAccount kubeconfig to exercise the source's RBAC. */
  kubeconfig: string;
  /** Namespace of the (virtual) ApiServerSource: the `Kn-Namespace` header and the default watched namespace. */
  namespace: string;
  /** Namespaces to watch. Default: `[namespace]`. Ignored when `allNamespaces` is true. */
  namespaces?: string[];
  /** Watch all namespaces (ApiServerSource `namespaceSelector: {}`). */
  allNamespaces?: boolean;
  /** URL the CloudEvents are POSTed to (K_SINK). */
  sink: string;
  /** Event mode; set explicitly because the adapter defaults to Resource while the CRD defaults to Reference. */
  mode: 'Reference' | 'Resource';
  resources: AdapterResource[];
  /** Name of the (virtual) ApiServerSource (NAME). */
  name: string;
  /** File receiving the adapter's stdout and stderr (truncated at start). */
  logFile: string;
  /** K_SINK_TIMEOUT in seconds (default 10): without it a hung sink stalls the watch forever. */
  sinkTimeoutSeconds?: number;
  /** Only forward objects owned by this kind (ApiServerSource `spec.owner`). */
  owner?: { apiVersion: string; kind: string };
  /** Extra CloudEvent extensions (ApiServerSource `spec.ceOverrides.extensions`). */
  ceExtensions?: Record<string, string>;
  /**
   * Further environment, e.g. `K_AUDIENCE` and `K_OIDC_SERVICE_ACCOUNT` as the ApiServerSource controller sets
   * them with Knative's `authentication-oidc` feature on (the adapter then sends a bearer token).
   */
  env?: Record<string, string>;
}

/** A running receive adapter. */
export interface ApiServerSourceAdapter {
  readonly pid: number;
  readonly logFile: string;
  /**
   * Resolves once every configured watch has completed its initial list: from then on every change is delivered
   * (the watch resumes from the list's resourceVersion). Rejects if the adapter exits or reports an unknown
   * resource, or after `timeoutMs` (default 30 s), quoting its log.
   */
  waitUntilWatching(timeoutMs?: number): Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5 s). Resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** `GroupVersionResource.String()` in Go, which the adapter uses to name its reflectors. */
function gvrString(r: AdapterResource): string {
  return `${r.group}/${r.version}, Resource=${r.resource}`;
}

/**
 * Starts the real Knative ApiServerSource receive adapter (knative.dev/eventing cmd/apiserver_receive_adapter)
 * outside a cluster, configured the way the ApiServerSource controller would configure its Deployment.
 *
 * The adapter always binds its health probes on :8080 (all interfaces; a conflict is logged, not fatal), so do not
 * run a function under test on 8080 at the same time. Its pprof port (PROFILING_PORT) is set to a free port.
 */
export async function startApiServerSourceAdapter(
  options: ApiServerSourceAdapterOptions,
): Promise<ApiServerSourceAdapter> {
  const namespaces = options.namespaces ?? [options.namespace];
  const sourceConfig = {
    namespaces: options.allNamespaces ? [] : namespaces,
    allNamespaces: options.allNamespaces ?? false,
    // The Go struct has no JSON tags on GroupVersionResource: the keys are the capitalised field names.
    resources: options.resources.map((r) => ({
      gvr: { Group: r.group, Version: r.version, Resource: r.resource },
      ...(r.selector ? { selector: r.selector } : {}),
    })),
    ...(options.owner ? { owner: options.owner } : {}),
    mode: options.mode,
  };
  const [profilingPort] = (await freePorts(1)) as [number];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NAME: options.name,
    NAMESPACE: options.namespace,
    K_SINK: options.sink,
    K_SINK_TIMEOUT: String(options.sinkTimeoutSeconds ?? 10),
    K_SOURCE_CONFIG: JSON.stringify(sourceConfig),
    K_LOGGING_CONFIG: '{}',
    K_OBSERVABILITY_CONFIG: '{}',
    PROFILING_PORT: String(profilingPort),
    ...(options.ceExtensions ? { K_CE_OVERRIDES: JSON.stringify({ extensions: options.ceExtensions }) } : {}),
    ...options.env,
  };

  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const fd = openSync(options.logFile, 'w');
  let child: ChildProcess;
  try {
    // -v=2 makes client-go log "Caches populated" per reflector, which is what waitUntilWatching looks for.
    child = spawn(options.binary, [`--kubeconfig=${options.kubeconfig}`, '-v=2'], {
      env,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  let exitCode: number | null | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      resolve();
    });
    child.once('error', (err) => {
      spawnError = err;
      exitCode = -1;
      resolve();
    });
  });
  if (child.pid === undefined) {
    await exited;
    throw new Error(`could not start ${options.binary}: ${spawnError?.message ?? 'unknown error'}`);
  }
  const pid = child.pid;

  const expected = options.resources.flatMap((r) =>
    options.allNamespaces
      ? [[gvrString(r)]]
      : namespaces.map((ns) => [`${gvrString(r)}/${ns}`, gvrString(r)]),
  );

  return {
    pid,
    logFile: options.logFile,
    async waitUntilWatching(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const text = readFileSync(options.logFile, 'utf8');
        const populated = new Set(
          [...text.matchAll(/"Caches populated".*?reflector="([^"]*)"/g)].map((m) => m[1] ?? ''),
        );
        if (expected.every((names) => names.some((n) => populated.has(n)))) return;
        const unknown = /could not retrieve information about resource[^"\n]*/.exec(text);
        if (unknown) throw new Error(`adapter ${options.name}: ${unknown[0]}. Log ${options.logFile}`);
        if (exitCode !== undefined) {
          throw new Error(
            `adapter ${options.name} exited (${exitCode}) before watching. Last lines of ${options.logFile}:\n` +
              tailFile(options.logFile),
          );
        }
        if (Date.now() > deadline) {
          // The adapter retries forbidden lists forever; point at RBAC rather than at the adapter.
          const hint = /forbidden/.test(text)
            ? ' (its ServiceAccount lacks get/list/watch: check the RBAC)'
            : '';
          throw new Error(
            `adapter ${options.name} not watching after ${timeoutMs / 1000} s${hint}. ` +
              `Last lines of ${options.logFile}:\n${tailFile(options.logFile)}`,
          );
        }
        await sleep(100);
      }
    },
    async stop(graceMs = 5_000) {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
