/**
 * Fault suite, hostile input against the real API server: the generated requests of the unit fuzz run (fewer
 * of them, same generator) hit the built function acting in a namespace with opted-in workloads. No 5xx, every
 * body JSON or a CloudEvent, the process stays up, and no workload changes (generation and annotations identical).
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import fc from 'fast-check';
import { kubeRequest, type KubeTarget } from '../../cluster/kube.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { contractViolation, fuzzRequests } from '../support/http-fuzz.js';
import { rawExchange } from '../support/raw-http.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { applyKustomizationIn, appsWorkload, optedInConfigMap, PATHS } from '../../cluster/objects.js';

jest.setTimeout(300_000);

const SEED = 4242;
const RUNS = 300;
const CONFIG_MAP = 'fuzz-config';

let admin: KubeTarget;
let ns: string;
let fn: FunctionProcess;

/**
 * What the function could write, per Deployment: generation and annotations. Not the resourceVersion:
 * kube-controller-manager writes the Deployments' status at any time.
 */
async function workloadStates(): Promise<Record<string, string>> {
  const { body } = await kubeRequest<{
    items: {
      metadata: { name: string; generation?: number; annotations?: Record<string, string> };
      spec: { template: { metadata?: { annotations?: Record<string, string> } } };
    }[];
  }>(admin, 'GET', PATHS.deployments(ns));
  return Object.fromEntries(
    body.items.map((d) => [
      d.metadata.name,
      JSON.stringify([d.metadata.generation, d.metadata.annotations, d.spec.template.metadata?.annotations]),
    ]),
  );
}

beforeAll(async () => {
  admin = adminTarget();
  ns = uniqueName('fuzz');
  await kubeRequest(admin, 'POST', '/api/v1/namespaces', { metadata: { name: ns } });
  const labels = { app: 'fuzz', env: 'test' };
  await kubeRequest(admin, 'POST', PATHS.configmaps(ns), optedInConfigMap(CONFIG_MAP, labels, { A: '1' }));
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(ns),
    appsWorkload('Deployment', 'by-label', { labels, optIn: true }),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(ns),
    appsWorkload('Deployment', 'by-reference', {
      labels: { app: 'other' },
      optIn: true,
      podSpec: { volumes: [{ name: 'c', configMap: { name: CONFIG_MAP } }] },
    }),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(ns),
    appsWorkload('Deployment', 'not-opted-in', { labels, optIn: false }),
  );
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), 'faults');
  // The function runs as its ServiceAccount in `ns`, with the project's RBAC applied there.
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', ns);
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: ns,
    logFile: path.join(dir, 'config-restarter-fuzz.log'),
    env: { WATCH_NAMESPACES: ns, LOG_LEVEL: 'warn' },
  });
  // Steady state first: the resync records the current hash on the opted-in workloads.
  const res = await fetch(fn.url, {
    method: 'POST',
    headers: {
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.sources.ping',
      'ce-source': '/ping',
      'ce-id': 'r1',
    },
    body: '{}',
  });
  expect(res.status).toBe(200);
});

afterAll(async () => {
  expect(await fn?.stop()).toBe(0);
});

it(`answers ${RUNS} generated hostile requests without a 5xx and changes no workload`, async () => {
  const before = await workloadStates();
  expect(Object.keys(before).length).toBe(3);
  const port = Number(new URL(fn.url).port);
  const statuses = new Map<number, number>();
  let slowest = 0;
  await fc.assert(
    fc.asyncProperty(fuzzRequests({ namespace: ns, configMap: CONFIG_MAP }), async (req) => {
      const answer = await rawExchange(port, req.bytes, { halfClose: req.halfClose, timeoutMs: 15_000 });
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      slowest = Math.max(slowest, answer.ms);
      const violation = contractViolation(answer);
      if (violation) throw new Error(`${req.category}: ${violation}`);
    }),
    { seed: SEED, numRuns: RUNS, endOnFailure: true },
  );
  const after = await workloadStates();
  const changed = Object.keys(before).filter((name) => before[name] !== after[name]);
  process.stdout.write(
    `fuzz (real API server, seed ${SEED}): ${RUNS} requests, statuses ${JSON.stringify(
      Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])),
    )}, slowest ${slowest} ms, workloads changed ${changed.length}/${Object.keys(before).length}\n`,
  );
  expect(changed).toEqual([]);
  expect((await fetch(`${fn.url}/health/liveness`)).status).toBe(200);
});
