/**
 * Local control plane CLI: `tsx test/cluster/cli.ts <build|up|down|status> [--dir <dir>]`.
 * Exit codes: 0 success (status: running), 1 failure, 2 usage error, 3 status: not running.
 */
import path from 'node:path';
import { describeBinarySources, ensureBinaries } from './binaries.js';
import { clusterStatus, defaultClusterDir, startCluster, stopCluster } from './control-plane.js';
import { elapsed, stderrLog } from './util.js';

const USAGE = `usage: tsx test/cluster/cli.ts <build|up|down|status> [--dir <cluster dir>]

  build   build (or locate) kube-apiserver, etcd and the ApiServerSource receive adapter
  up      start etcd + kube-apiserver with the CRDs installed; writes <dir>/kubeconfig
  down    stop the cluster and remove its data
  status  show whether the cluster is running

The cluster dir defaults to $CLUSTER_DIR or .cluster/ at the repository root. See docs/cluster.md.`;

/** Path relative to the current directory when that is shorter: friendlier copy-paste commands. */
function display(p: string): string {
  const relative = path.relative(process.cwd(), p);
  return relative && !relative.startsWith('..') && relative.length < p.length ? relative : p;
}

function parseArgs(argv: string[]): { command: string | undefined; dir: string } {
  let dir = defaultClusterDir();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--dir') {
      const value = argv[++i];
      if (!value) throw new Error('--dir needs a value');
      dir = path.resolve(value);
    } else if (arg.startsWith('--dir=')) {
      dir = path.resolve(arg.slice('--dir='.length));
    } else {
      rest.push(arg);
    }
  }
  if (rest.length > 1) throw new Error(`unexpected arguments: ${rest.slice(1).join(' ')}`);
  return { command: rest[0], dir };
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { command, dir } = parsed;
  const start = Date.now();
  switch (command) {
    case 'build': {
      await ensureBinaries(stderrLog);
      console.log(`binaries ready (${elapsed(start)} s):`);
      for (const line of describeBinarySources()) console.log(`  ${line}`);
      return 0;
    }
    case 'up': {
      const info = await startCluster({ dir, log: stderrLog });
      const kubeconfig = display(info.kubeconfig);
      if (info.alreadyRunning) {
        console.log(`cluster already running in ${display(info.dir)} (since ${info.startedAt})`);
      } else {
        console.log(`cluster up in ${elapsed(start)} s`);
      }
      console.log(`  server:     ${info.server}`);
      console.log(`  kubeconfig: ${kubeconfig}`);
      console.log(`  logs:       ${display(info.logs.kubeApiserver)}, ${display(info.logs.etcd)}`);
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
