/**
 * The resync path driven by Knative's own code: the real PingSource adapter (mtping, run by the local control plane)
 * fires the project's PingSource at the function; no test sends an event. A change made while no ApiServerSource
 * watched is rolled out by the next ping, and kube-controller-manager rolls the new ReplicaSet.
 */
import { jest } from '@jest/globals';
import path from 'node:path';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import { kubeRequest, type KubeTarget } from '../../cluster/kube.js';
import {
  applyKustomizationIn,
  appsWorkload,
  deleteNamespace,
  eventually,
  mergePatch,
  optedInConfigMap,
  PATHS,
  readWorkload,
  rolloutsOf,
} from '../../cluster/objects.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget, uniqueName } from './cluster-env.js';

jest.setTimeout(60_000);

const NS = uniqueName('ping');
const PING = `/apis/sources.knative.dev/v1/namespaces/${NS}/pingsources/config-restarter-resync`;
const HASHES = 'rolling.restart.controller/configHashes';
const labels = { app: 'pinged', env: 'test' };

let admin: KubeTarget;
let fn: FunctionProcess;

beforeAll(async () => {
  admin = adminTarget();
  const dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), NS);
  // The project's plumbing, PingSource config-restarter-resync included, in a namespace of its own.
  await applyKustomizationIn(adminKubeconfigPath(), 'knative', NS);
  fn = await startFunction({
    adminKubeconfig: adminKubeconfigPath(),
    namespace: NS,
    logFile: path.join(dir, 'config-restarter.log'),
  });
  await kubeRequest(
    admin,
    'POST',
    PATHS.configmaps(NS),
    optedInConfigMap('pinged-config', labels, { A: '1' }),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(NS),
    appsWorkload('Deployment', 'pinged', { labels, optIn: true }),
  );
});

afterAll(async () => {
  // No PingSource, no more pings: then the function can stop.
  await kubeRequest(admin, 'DELETE', PING, undefined, { allowStatus: [404] });
  const code = await fn?.stop();
  await deleteNamespace(admin, NS);
  expect(code).toBe(0);
});

it('the real PingSource adapter sends the resync: first contact records, a change made meanwhile rolls out', async () => {
  // Every 2 s instead of every 10 min (a seconds field: both the Eventing webhook and mtping accept six fields), so
  // the test does not wait for a cron minute; data and content type stay the project's. The PingSource controller
  // would resolve the sink and report readiness: nothing runs it here.
  await mergePatch(admin, PING, { spec: { schedule: '*/2 * * * * *' } });
  const now = new Date().toISOString();
  const ready = (type: string) => ({ type, status: 'True', lastTransitionTime: now });
  await kubeRequest(
    admin,
    'PATCH',
    `${PING}/status`,
    {
      status: {
        sinkUri: fn.url,
        conditions: ['Ready', 'SinkProvided', 'Deployed', 'OIDCIdentityCreated'].map(ready),
      },
    },
    { contentType: 'application/merge-patch+json' },
  );

  const recorded = await eventually(
    'a ping to record the ConfigMap on the Deployment',
    async () => {
      const state = await readWorkload(admin, PATHS.deployments(NS), 'pinged');
      return state.annotations[HASHES] ? state : undefined;
    },
    20_000,
  );
  expect(recorded.templateAnnotations['rolling.restart.controller/restartTimestamp']).toBeUndefined();

  // No ApiServerSource adapter runs: only the next ping can notice this.
  await mergePatch(admin, `${PATHS.configmaps(NS)}/pinged-config`, { data: { A: '2' } });
  const sets = await eventually(
    'a ping to restart the Deployment and kube-controller-manager to roll a second ReplicaSet',
    async () => {
      const found = await rolloutsOf(admin, PATHS.replicasets(NS), 'Deployment/pinged');
      return found.length === 2 ? found : undefined;
    },
    20_000,
  );
  expect(sets.map((s) => s.revision)).toEqual([1, 2]);

  // Every event the function got was a ping from the adapter.
  const events = fn.logLines().filter((line) => typeof line.eventType === 'string');
  expect(events.length).toBeGreaterThan(0);
  expect(new Set(events.map((line) => line.eventType))).toEqual(new Set(['dev.knative.sources.ping']));
});
