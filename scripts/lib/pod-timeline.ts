/**
 * What the node does with a rollout, as a user watching `kubectl get pods -w` sees it: each pod's phase, readiness
 * and termination over time, polled from the API server. Used by the demo (and the node benchmark reads the same
 * pod fields).
 */
import { kubeRequest, type KubeTarget } from '../../cluster/kube.js';
import { fetchInNode, type NodeFetchResult } from '../../cluster/node-network.js';
import { sleep } from '../../cluster/util.js';

/** The pod fields read here. */
export interface PodView {
  metadata: { name: string; uid: string; deletionTimestamp?: string; creationTimestamp?: string };
  status: { phase?: string; podIP?: string; conditions?: { type: string; status: string }[] };
}

/** `Terminating` (being deleted), `Running/Ready`, or the phase. */
export function podState(pod: PodView): string {
  if (pod.metadata.deletionTimestamp) return 'Terminating';
  const ready = pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  const phase = pod.status.phase ?? 'Pending';
  return phase === 'Running' ? (ready ? 'Running/Ready' : 'Running/NotReady') : phase;
}

/** Pods of `namespace` matching `selector`. */
export async function listPods(target: KubeTarget, namespace: string, selector: string): Promise<PodView[]> {
  const { body } = await kubeRequest<{ items: PodView[] }>(
    target,
    'GET',
    `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(selector)}`,
  );
  return body.items;
}

/** One change seen: seconds since the start, pod, new state (`gone` once deleted). */
export interface PodChange {
  at: number;
  pod: string;
  state: string;
}

/**
 * Polls the pods of `selectors` every `intervalMs` and records every change of state until `done()` returns true
 * (checked after each poll) or `timeoutMs` passes (then it throws, naming `what`).
 */
export async function podTimeline(
  target: KubeTarget,
  namespace: string,
  selectors: string[],
  done: () => Promise<boolean>,
  options: { what: string; timeoutMs?: number; intervalMs?: number; onChange?: (change: PodChange) => void },
): Promise<PodChange[]> {
  const start = Date.now();
  const deadline = start + (options.timeoutMs ?? 180_000);
  const last = new Map<string, string>();
  const changes: PodChange[] = [];
  const record = (pod: string, state: string): void => {
    if (last.get(pod) === state) return;
    last.set(pod, state);
    const change = { at: (Date.now() - start) / 1000, pod, state };
    changes.push(change);
    options.onChange?.(change);
  };
  for (;;) {
    const seen = new Set<string>();
    for (const selector of selectors) {
      for (const pod of await listPods(target, namespace, selector)) {
        seen.add(pod.metadata.name);
        record(pod.metadata.name, podState(pod));
      }
    }
    for (const name of last.keys()) if (!seen.has(name)) record(name, 'gone');
    if (await done()) return changes;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what}`);
    await sleep(options.intervalMs ?? 250);
  }
}

/** `/message` and `/messageFromFile` of a helloworld pod (by pod IP) or Service (by ClusterIP), from inside the node. */
export async function helloworldMessages(
  netns: string,
  base: string,
  headers: Record<string, string> = {},
): Promise<{ message: NodeFetchResult; messageFromFile: NodeFetchResult }> {
  const get = (route: string): Promise<NodeFetchResult> =>
    fetchInNode(netns, `${base}${route}`, { headers, timeoutMs: 30_000 });
  return { message: await get('/message'), messageFromFile: await get('/messageFromFile') };
}
