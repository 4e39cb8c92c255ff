/**
 * Fault suite, forged senders: the function with sender authentication on (AUTH_AUDIENCE, the default allowed
 * subjects, its own ServiceAccount bound by knative/authentication) against tokens the local kube-apiserver
 * mints the way Knative Eventing does (TokenRequest with the sink's audience, for the per-sender OIDC
 * ServiceAccounts that Knative names `<sender>-oidc-<group>-<kind>`). Missing, garbage and wrong-audience tokens
 * get 401, valid tokens of identities that are not allowed senders 403 (as Knative Eventing's receivers answer),
 * and nothing is read or written for either; the real ApiServerSource adapter, configured as the controller
 * configures it with `authentication-oidc` on (and with the selector of knative/authentication), gets its token
 * itself and is accepted.
 */
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startApiServerSourceAdapter } from '../../cluster/adapter.js';
import { shippedSource } from '../../cluster/shipped-source.js';
import { kubeRequest, writeServiceAccountKubeconfig, type KubeTarget } from '../../cluster/kube.js';
import { createAudienceToken } from '../../cluster/tokens.js';
import { REPO_ROOT } from '../../cluster/util.js';
import { adminKubeconfigPath, adminTarget } from './cluster-env.js';
import { startFunction, type FunctionProcess } from '../../cluster/function-process.js';
import {
  applyKustomization,
  appsWorkload,
  eventually,
  optedInConfigMap,
  PATHS,
  readWorkload,
  type WorkloadState,
} from '../../cluster/objects.js';

jest.setTimeout(120_000);

const NS = 'helloworld';
const AUDIENCE = 'serving.knative.dev/service/helloworld/config-restarter';
/** Knative's names (kmeta.ChildName) of the OIDC ServiceAccounts of the project's sources. */
const APISERVERSOURCE_OIDC = 'config-restarter-sourcee203382cddce8e899c753215fb6a0fd6-oidc-so';
const PINGSOURCE_OIDC = 'config-restarter-resync-oidc-sources.knative.dev-pingsource';
const APP = 'it-auth';
const RESTART = 'rolling.restart.controller/restartTimestamp';

let admin: KubeTarget;
let fn: FunctionProcess;
let dir: string;

function updateEvent(id: string): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      'ce-specversion': '1.0',
      'ce-type': 'dev.knative.apiserver.ref.update',
      'ce-source': admin.server,
      'ce-subject': `/apis/v1/namespaces/${NS}/configmaps/${APP}-config`,
      'ce-id': id,
      'ce-kind': 'ConfigMap',
      'ce-apiversion': 'v1',
      'ce-name': `${APP}-config`,
      'ce-namespace': NS,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ kind: 'ConfigMap', namespace: NS, name: `${APP}-config`, apiVersion: 'v1' }),
  };
}

async function post(token: string | undefined, id: string): Promise<{ status: number; body: unknown }> {
  const event = updateEvent(id);
  const res = await fetch(fn.url, {
    method: 'POST',
    headers: { ...event.headers, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    body: event.body,
  });
  return { status: res.status, body: await res.json().catch(() => undefined) };
}

/** What the function could write on the Deployment (not its resourceVersion: kube-controller-manager writes status). */
async function deploymentVersion(): Promise<WorkloadState> {
  return readWorkload(admin, PATHS.deployments(NS), APP);
}

async function setData(value: string): Promise<void> {
  await kubeRequest(
    admin,
    'PATCH',
    `${PATHS.configmaps(NS)}/${APP}-config`,
    { data: { VALUE: value } },
    { contentType: 'application/merge-patch+json' },
  );
}

beforeAll(async () => {
  admin = adminTarget();
  dir = path.join(process.env.TEST_CLUSTER_DIR ?? path.join(REPO_ROOT, '.cluster', 'test'), 'auth');
  // The project's manifests with the TokenReview grant; then what Knative's controllers create with
  // `authentication-oidc` on: the OIDC ServiceAccounts, and the Role letting the source's ServiceAccount
  // request tokens for its OIDC ServiceAccount (pkg/reconciler/apiserversource/resources/oidc_rolebinding.go).
  await applyKustomization(adminKubeconfigPath(), 'knative/authentication');
  for (const name of [APISERVERSOURCE_OIDC, PINGSOURCE_OIDC]) {
    await kubeRequest(admin, 'POST', `/api/v1/namespaces/${NS}/serviceaccounts`, { metadata: { name } });
  }
  await kubeRequest(admin, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles`, {
    metadata: { name: 'config-restarter-source-create-oidc-token' },
    rules: [
      {
        apiGroups: [''],
        resources: ['serviceaccounts/token'],
        resourceNames: [APISERVERSOURCE_OIDC],
        verbs: ['create'],
      },
    ],
  });
  await kubeRequest(admin, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings`, {
    metadata: { name: 'config-restarter-source-create-oidc-token' },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: 'config-restarter-source-create-oidc-token',
    },
    subjects: [{ kind: 'ServiceAccount', name: 'config-restarter-source', namespace: NS }],
  });

  const labels = { app: APP, env: 'test' };
  await kubeRequest(
    admin,
    'POST',
    PATHS.configmaps(NS),
    optedInConfigMap(`${APP}-config`, labels, { VALUE: 'one' }),
  );
  await kubeRequest(
    admin,
    'POST',
    PATHS.deployments(NS),
    appsWorkload('Deployment', APP, { labels, optIn: true }),
  );

  const kubeconfig = path.join(dir, 'config-restarter.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), kubeconfig, NS, 'config-restarter');
  fn = await startFunction({
    kubeconfig,
    logFile: path.join(dir, 'config-restarter.log'),
    env: { AUTH_AUDIENCE: AUDIENCE },
  });
});

afterAll(async () => {
  expect(await fn?.stop()).toBe(0);
});

it('refuses missing, garbage and wrong-audience tokens with 401, reading and writing nothing', async () => {
  await setData('two'); // an accepted event would now restart the Deployment
  const before = await deploymentVersion();
  const wrongAudience = await createAudienceToken(admin, NS, PINGSOURCE_OIDC, ['some-other-sink']);
  const cases: [string, string | undefined][] = [
    ['no token', undefined],
    ['garbage', 'not-a-token'],
    ['a forged JWT', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.'],
    ['wrong audience', wrongAudience],
    // Static tokens are audience-agnostic: the API server does not accept them for another audience.
    ['the cluster admin token', admin.token],
  ];
  const answers: Record<string, unknown> = {};
  for (const [what, token] of cases) {
    const { status, body } = await post(token, `forged-${what.replace(/ /g, '-')}`);
    answers[what] = { status, error: (body as { error?: string } | undefined)?.error };
  }
  expect(answers).toEqual(
    Object.fromEntries(cases.map(([what]) => [what, { status: 401, error: 'unauthenticated' }])),
  );
  expect(await deploymentVersion()).toEqual(before);
  // Nothing was read for them either: no decision, no event handled past authentication.
  const lines = fn.logLines();
  expect(lines.filter((l) => typeof l.eventId === 'string' && l.eventId.startsWith('forged-'))).toEqual([]);
  expect(lines.filter((l) => l.msg === 'refused sender').length).toBe(cases.length);
  const metrics = await (await fetch(`${fn.url}/metrics`)).text();
  expect(metrics).toMatch(
    new RegExp(
      `config_restarter_events_total\\{category="unauthenticated",result="unauthenticated"\\} ${cases.length}`,
    ),
  );
  expect(metrics).not.toMatch(/config_restarter_events_total\{category="apiserver"/);
});

it('refuses valid tokens of identities that are not allowed senders with 403, reading and writing nothing', async () => {
  await setData('two-and-a-half'); // an accepted event would now restart the Deployment
  const before = await deploymentVersion();
  // Real tokens for the function's audience, which the API server accepts: the source's own ServiceAccount
  // (not its OIDC sender identity) and the function's.
  const identities = ['config-restarter-source', 'config-restarter'];
  const answers: Record<string, unknown> = {};
  for (const account of identities) {
    const token = await createAudienceToken(admin, NS, account, [AUDIENCE]);
    const { status, body } = await post(token, `stranger-${account}`);
    answers[account] = { status, ...(body as object) };
  }
  expect(answers).toEqual(
    Object.fromEntries(
      identities.map((account) => [
        account,
        {
          status: 403,
          error: 'sender_not_allowed',
          detail: `sender "system:serviceaccount:${NS}:${account}" is authenticated but not allowed (AUTH_ALLOWED_SUBJECTS)`,
        },
      ]),
    ),
  );
  expect(await deploymentVersion()).toEqual(before);
  const lines = fn.logLines();
  expect(lines.filter((l) => typeof l.eventId === 'string' && l.eventId.startsWith('stranger-'))).toEqual([]);
  expect(lines.filter((l) => l.msg === 'refused sender' && l.status === 403).map((l) => l.subject)).toEqual(
    identities.map((account) => `system:serviceaccount:${NS}:${account}`),
  );
  const metrics = await (await fetch(`${fn.url}/metrics`)).text();
  expect(metrics).toContain(
    `config_restarter_events_total{category="unauthorized",result="sender_not_allowed"} ${identities.length}`,
  );
});

it('accepts the PingSource identity with a token for its audience', async () => {
  const token = await createAudienceToken(admin, NS, PINGSOURCE_OIDC, [AUDIENCE], 600);
  const { status } = await post(token, 'pingsource-identity');
  expect(status).toBe(200);
  const state = await readWorkload(admin, PATHS.deployments(NS), APP);
  expect(state.templateAnnotations[RESTART]).toBeDefined();
});

it('npm run send-event --token-from-sa sends a real token: a sender is accepted, another identity gets 403; no token, 401', async () => {
  const run = promisify(execFile);
  const sendEvent = (...args: string[]) =>
    run(
      process.execPath,
      [
        '--import',
        'tsx',
        'scripts/send-event.ts',
        '--url',
        fn.url,
        '--live',
        '--namespace',
        NS,
        '--name',
        `${APP}-config`,
        '--kubeconfig',
        adminKubeconfigPath(),
        ...args,
      ],
      { cwd: REPO_ROOT },
    );
  const { stdout } = await sendEvent('--token-from-sa', `${NS}/${PINGSOURCE_OIDC}`);
  expect(stdout).toContain('HTTP 200');
  expect(stdout).toMatch(/Authorization: Bearer <\d+ characters>/);
  await expect(sendEvent('--token-from-sa', `${NS}/config-restarter-source`)).rejects.toMatchObject({
    stdout: expect.stringContaining('HTTP 403') as string,
  });
  await expect(sendEvent()).rejects.toMatchObject({ stdout: expect.stringContaining('HTTP 401') as string });
});

it('accepts the real ApiServerSource adapter, which requests its own token for the audience', async () => {
  const sourceKubeconfig = path.join(dir, 'config-restarter-source.kubeconfig');
  await writeServiceAccountKubeconfig(adminKubeconfigPath(), sourceKubeconfig, NS, 'config-restarter-source');
  const source = await shippedSource('knative/authentication');
  const adapter = await startApiServerSourceAdapter({
    binary: process.env.TEST_ASSET_APISERVER_ADAPTER ?? 'apiserver_receive_adapter',
    kubeconfig: sourceKubeconfig,
    namespace: NS,
    name: source.name,
    sink: fn.url,
    mode: source.mode,
    resources: source.resources,
    logFile: path.join(dir, 'adapter.log'),
    // As the ApiServerSource controller sets them with authentication-oidc on.
    env: { K_AUDIENCE: AUDIENCE, K_OIDC_SERVICE_ACCOUNT: APISERVERSOURCE_OIDC },
  });
  try {
    await adapter.waitUntilWatching();
    const before = (await readWorkload(admin, PATHS.deployments(NS), APP)).templateAnnotations[RESTART];
    await setData('three');
    await eventually('the adapter-delivered change to restart the Deployment', async () => {
      const now = (await readWorkload(admin, PATHS.deployments(NS), APP)).templateAnnotations[RESTART];
      return now !== before ? now : undefined;
    });
    const accepted = fn
      .logLines()
      .filter(
        (l) => l.msg === 'event processed' && String(l.eventType).startsWith('dev.knative.apiserver.ref.'),
      );
    expect(accepted.length).toBeGreaterThan(0);
  } finally {
    await adapter.stop();
  }
});
