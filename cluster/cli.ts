/**
 * Local cluster CLI: `tsx cluster/cli.ts <build|up|down|status> [--dir <dir>] [--no-node] [--no-controllers]`.
 * Exit codes: 0 success (status: running), 1 failure, 2 usage error, 3 status: not running.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  describeBinarySources,
  ensureBinaries,
  ensureImageBinaries,
  ensureIstioBinaries,
  ensureKnativePathBinaries,
  ensureNodeBinaries,
} from './binaries.js';
import { ensureEnvoy } from './envoy.js';
import { clusterStatus, defaultClusterDir, startCluster, stopCluster } from './control-plane.js';
import type { ControllerProcess } from './controllers.js';
import type { NodeInfo } from './node.js';
import { elapsed, stderrLog } from './util.js';

const USAGE = `usage: tsx cluster/cli.ts <build|up|down|status> [--dir <cluster dir>] [--knative] [--istio] [--no-node] [--no-controllers]

  build   build (or locate) etcd, kube-apiserver, the ApiServerSource receive adapter, kube-controller-manager,
          the Knative Serving controller and webhook, the node's kubelet, kube-scheduler, kube-proxy and
          Knative autoscaler and activator, the Knative path's binaries, the Go commands of the images, istiod and pilot-agent
  up      start etcd + kube-apiserver with the CRDs installed, then kube-controller-manager and the Knative
          Serving controller and webhook, then a node (containerd, kubelet, kube-proxy, kube-scheduler, Knative
          autoscaler and activator in a network namespace of their own); writes <dir>/kubeconfig
  down    stop the cluster (pods, node, namespaces, cgroups) and remove its data
  status  show whether the cluster is running

Options:
  --dir <dir>        cluster directory (default: $CLUSTER_DIR or .cluster/ at the repository root)
  --knative          up: also the Knative path on the node: CoreDNS, the Kourier ingress (control plane + Envoy
                     gateway), the Knative Eventing controller and the channel-based Broker (its controller, the
                     in-memory channel controller, the ingress, filter and dispatcher pods)
  --istio            up: the Knative path plus Istio: istiod (with its validation webhook) and the ingress
                     gateway (pilot-agent + Envoy) in istio-system
  --no-node          up: no node (pods stay Pending; no root, packages or images needed; quicker)
  --no-controllers   up: etcd + kube-apiserver only (nothing reconciles; implies --no-node)
  -h, --help         this text

See docs/cluster.md.`;

function describeControllers(controllers: readonly ControllerProcess[]): string {
  if (controllers.length === 0) return 'none (--no-controllers)';
  return controllers.map((c) => `${c.name} (${display(c.log)})`).join(', ');
}

function describeNode(node: NodeInfo | undefined): string {
  if (!node) return 'none (--no-node)';
  return (
    `${node.nodeName} ${node.nodeIp} in network namespace ${node.netns} ` +
    `(enter: nsenter --net=/var/run/netns/${node.netns}); containerd ${display(node.containerdAddress)}`
  );
}

/** Path relative to the current directory when that is shorter: friendlier copy-paste commands. */
function display(p: string): string {
  const relative = path.relative(process.cwd(), p);
  return relative && !relative.startsWith('..') && relative.length < p.length ? relative : p;
}

interface CliArgs {
  command: string | undefined;
  dir: string;
  controllers: boolean;
  node: boolean;
  knative: boolean;
  istio: boolean;
  help: boolean;
}

function parseCli(argv: string[]): CliArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      'no-controllers': { type: 'boolean', default: false },
      'no-node': { type: 'boolean', default: false },
      knative: { type: 'boolean', default: false },
      istio: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (positionals.length > 1) throw new Error(`unexpected arguments: ${positionals.slice(1).join(' ')}`);
  if (values.dir === '') throw new Error('--dir needs a value');
  return {
    command: positionals[0],
    dir: values.dir ? path.resolve(values.dir) : defaultClusterDir(),
    controllers: !values['no-controllers'],
    node: !values['no-node'] && !values['no-controllers'],
    knative: values.knative,
    istio: values.istio,
    help: values.help,
  };
}

async function main(argv: string[]): Promise<number> {
  let parsed: CliArgs;
  try {
    parsed = parseCli(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { command, dir, controllers, node, knative, istio } = parsed;
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  const start = Date.now();
  switch (command) {
    case 'build': {
      await ensureBinaries(stderrLog);
      await ensureNodeBinaries(stderrLog);
      await ensureKnativePathBinaries(stderrLog);
      await ensureImageBinaries(stderrLog);
      await ensureEnvoy(stderrLog);
      await ensureIstioBinaries(stderrLog);
      console.log(`binaries ready (${elapsed(start)} s):`);
      for (const line of describeBinarySources()) console.log(`  ${line}`);
      return 0;
    }
    case 'up': {
      const info = await startCluster({ dir, log: stderrLog, controllers, node, knative, istio });
      const kubeconfig = display(info.kubeconfig);
      if (info.alreadyRunning) {
        console.log(`cluster already running in ${display(info.dir)} (since ${info.startedAt})`);
      } else {
        console.log(`cluster up in ${elapsed(start)} s`);
      }
      console.log(`  server:     ${info.server}`);
      console.log(`  kubeconfig: ${kubeconfig}`);
      console.log(`  logs:       ${display(info.logs.kubeApiserver)}, ${display(info.logs.etcd)}`);
      console.log(`  controllers: ${describeControllers(info.controllers)}`);
      console.log(`  node:       ${describeNode(info.node)}`);
      console.log(`  try:        kubectl --kubeconfig ${kubeconfig} get crds`);
      console.log(
        `  stop with:  npm run cluster:down${dir === defaultClusterDir() ? '' : ` -- --dir ${display(dir)}`}`,
      );
      return 0;
    }
    case 'down': {
      const wasRunning = await stopCluster(dir, stderrLog);
      console.log(
        wasRunning ? `cluster in ${display(dir)} stopped` : `no cluster running in ${display(dir)}`,
      );
      return 0;
    }
    case 'status': {
      const status = await clusterStatus(dir);
      switch (status.state) {
        case 'stopped':
          console.log(`no cluster in ${display(dir)}`);
          return 3;
        case 'stale':
          console.log(
            `stale state in ${display(dir)}: etcd ${status.processes.etcd ? 'running' : 'gone'}, ` +
              `kube-apiserver ${status.processes.kubeApiserver ? 'running' : 'gone'} (run cluster:down or cluster:up)`,
          );
          return 3;
        case 'unhealthy':
        case 'running': {
          const info = status.info;
          console.log(`cluster ${status.state} in ${display(dir)} (since ${info?.startedAt ?? '?'})`);
          if (info) {
            console.log(`  server:     ${info.server}`);
            console.log(`  kubeconfig: ${display(info.kubeconfig)}`);
            console.log(`  pids:       kube-apiserver ${info.pids.kubeApiserver}, etcd ${info.pids.etcd}`);
            for (const c of info.controllers) {
              const alive = status.processes.controllers[c.name] ? `pid ${c.pid}` : 'GONE';
              console.log(`  ${c.name}: ${alive} (log ${display(c.log)})`);
            }
            if (info.controllers.length === 0)
              console.log('  controllers: none (started with --no-controllers)');
            console.log(`  node:       ${describeNode(info.node)}`);
            for (const p of info.node?.processes ?? []) {
              const alive = status.processes.controllers[p.name] ? `pid ${p.pid}` : 'GONE';
              console.log(`  ${p.name}: ${alive} (log ${display(p.log)})`);
            }
          }
          return status.state === 'running' ? 0 : 1;
        }
      }
      return 1;
    }
    default:
      console.error(command ? `unknown command: ${command}\n\n${USAGE}` : USAGE);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
