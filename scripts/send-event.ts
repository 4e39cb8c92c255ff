/**
 * `npm run send-event -- [options]`: sends a CloudEvent in the ApiServerSource wire format (or a
 * PingSource resync) to a URL and prints the reply. Run with --help for the options.
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createKubeClient } from '../functions/config-restarter/src/kube.js';
import { loadApiAccess, type ApiAccess } from '../functions/config-restarter/src/kube-credentials.js';
import { createKubePost } from '../functions/config-restarter/src/token-review.js';
import yaml from 'js-yaml';
import {
  apiServerSourceRequest,
  pingSourceRequest,
  type ApiServerAction,
  type ApiServerMode,
  type EventObject,
  type WireRequest,
} from '../cluster/apiserver-event.js';

/** The audience the project's senders name (knative/base/apiserversource.yaml). */
const DEFAULT_AUDIENCE = 'serving.knative.dev/service/helloworld/config-restarter';

const HELP = `Send a test CloudEvent to config-restarter and print the reply.

Usage:
  npm run send-event -- --file <configmap.yaml> [options]
  npm run send-event -- --live --namespace <ns> --name <name> [options]
  npm run send-event -- --resync [options]

Object (one of):
  --file <path>          a ConfigMap or Secret manifest (YAML or JSON)
  --live                 read the object from the current kube context
    --namespace <ns>     its namespace (default: the context's, else "default")
    --name <name>        its name
    --kind <kind>        ConfigMap (default) or Secret
    --kubeconfig <path>  kubeconfig to use (default: KUBECONFIG or ~/.kube/config)
  --resync               send a PingSource resync event instead (type dev.knative.sources.ping)

Options:
  --action <a>           add | update (default) | delete
  --mode <m>             reference (default, the ApiServerSource default) | resource
  --url <url>            where to POST (default http://localhost:8080)
  --id <id>              ce-id (default: a new UUID; reuse one to simulate a retry)
  --source <url>         ce-source (default https://10.96.0.1:443)
  --token <jwt>          send Authorization: Bearer <jwt> (for AUTH_AUDIENCE)
  --token-from-sa <ns>/<name>
                         mint a token for that ServiceAccount (TokenRequest through --kubeconfig),
                         as Knative Eventing does for its senders with authentication-oidc on
    --audience <aud>     its audience (default ${DEFAULT_AUDIENCE})
  --print                print the request and do not send it
  -h, --help             this text

Secrets are only sent in Reference mode: their data never travels in an event.`;

async function loadObject(values: Record<string, string | boolean | undefined>): Promise<EventObject> {
  if (typeof values.file === 'string') {
    const parsed = yaml.load(await readFile(values.file, 'utf8')) as EventObject | undefined;
    if (!parsed?.kind || !parsed.metadata?.name) throw new Error(`${values.file} holds no Kubernetes object`);
    parsed.apiVersion ??= 'v1';
    parsed.metadata.namespace ??= typeof values.namespace === 'string' ? values.namespace : 'default';
    return parsed;
  }
  if (values.live) {
    if (typeof values.name !== 'string') throw new Error('--live needs --name');
    const access = await apiAccess(values);
    const namespace =
      typeof values.namespace === 'string' ? values.namespace : (access.namespace ?? 'default');
    const kind = typeof values.kind === 'string' ? values.kind : 'ConfigMap';
    if (kind !== 'ConfigMap' && kind !== 'Secret')
      throw new Error(`--kind must be ConfigMap or Secret, got ${kind}`);
    // Read it the way the function does, through its API module.
    const client = createKubeClient(access, { timeoutMs: 10_000 });
    const found = await client.getConfig({ kind, namespace, name: values.name });
    if (!found) throw new Error(`${kind} ${namespace}/${values.name} not found`);
    const object = found as EventObject;
    object.apiVersion ??= 'v1';
    object.kind ??= kind;
    return object;
  }
  throw new Error('say which object: --file <path>, --live --name <name>, or --resync');
}

function apiAccess(values: Record<string, string | boolean | undefined>): Promise<ApiAccess> {
  return loadApiAccess(
    typeof values.kubeconfig === 'string' ? { ...process.env, KUBECONFIG: values.kubeconfig } : process.env,
  );
}

/** The bearer token to send: --token, or one minted for --token-from-sa with the TokenRequest API. */
async function bearerToken(
  values: Record<string, string | boolean | undefined>,
): Promise<string | undefined> {
  if (typeof values.token === 'string') return values.token;
  if (typeof values['token-from-sa'] !== 'string') return undefined;
  const [namespace, name, ...rest] = values['token-from-sa'].split('/');
  if (!namespace || !name || rest.length > 0) throw new Error('--token-from-sa must be <namespace>/<name>');
  const audience = typeof values.audience === 'string' ? values.audience : DEFAULT_AUDIENCE;
  const post = createKubePost(await apiAccess(values), { timeoutMs: 10_000 });
  const { status, json } = await post(
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(name)}/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [audience], expirationSeconds: 600 },
    },
  );
  const answer = json as { status?: { token?: string }; message?: string } | undefined;
  if (status !== 201 || !answer?.status?.token) {
    throw new Error(`no token issued for ${namespace}/${name}: HTTP ${status} ${answer?.message ?? ''}`);
  }
  return answer.status.token;
}

function printRequest(request: WireRequest, url: string): void {
  console.log(`POST ${url}`);
  for (const [key, value] of Object.entries(request.headers)) {
    // Never print a credential: its length is enough to see one is sent.
    console.log(
      key === 'Authorization' ? `${key}: Bearer <${value.length - 7} characters>` : `${key}: ${value}`,
    );
  }
  console.log(`\n${request.body}\n`);
}

async function run(): Promise<number> {
  const { values } = parseArgs({
    options: {
      file: { type: 'string' },
      live: { type: 'boolean' },
      namespace: { type: 'string' },
      name: { type: 'string' },
      kind: { type: 'string' },
      kubeconfig: { type: 'string' },
      resync: { type: 'boolean' },
      action: { type: 'string', default: 'update' },
      mode: { type: 'string', default: 'reference' },
      url: { type: 'string', default: 'http://localhost:8080' },
      id: { type: 'string' },
      source: { type: 'string' },
      token: { type: 'string' },
      'token-from-sa': { type: 'string' },
      audience: { type: 'string' },
      print: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const url = values.url;
  let request: WireRequest;
  if (values.resync) {
    request = pingSourceRequest({ namespace: values.namespace, id: values.id });
  } else {
    const action = values.action as ApiServerAction;
    if (!['add', 'update', 'delete'].includes(action))
      throw new Error(`--action must be add, update or delete`);
    const modeName = values.mode.toLowerCase();
    if (modeName !== 'reference' && modeName !== 'resource')
      throw new Error('--mode must be reference or resource');
    const mode: ApiServerMode = modeName === 'reference' ? 'Reference' : 'Resource';
    const refuseSecretData = 'refusing to put Secret data into an event: use --mode reference';
    if (values.kind === 'Secret' && mode === 'Resource') throw new Error(refuseSecretData);
    const object = await loadObject(values);
    if (object.kind === 'Secret' && mode === 'Resource') {
      throw new Error(refuseSecretData);
    }
    request = apiServerSourceRequest({ action, mode, object, id: values.id, source: values.source });
  }
  const token = await bearerToken(values);
  if (token) request = { ...request, headers: { ...request.headers, Authorization: `Bearer ${token}` } };
  printRequest(request, url);
  if (values.print) return 0;

  const response = await fetch(url, { method: 'POST', headers: request.headers, body: request.body });
  console.log(`HTTP ${response.status} ${response.statusText}`);
  response.headers.forEach((value, key) => {
    if (key.startsWith('ce-') || key === 'content-type') console.log(`${key}: ${value}`);
  });
  const text = await response.text();
  try {
    console.log(JSON.stringify(JSON.parse(text), null, 2));
  } catch {
    console.log(text);
  }
  return response.ok ? 0 : 1;
}

run().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`send-event: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  },
);
