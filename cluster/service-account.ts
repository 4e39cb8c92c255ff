/**
 * The in-cluster contract, presented to a process the way the kubelet presents it to a pod:
 * `KUBERNETES_SERVICE_HOST` / `KUBERNETES_SERVICE_PORT` of the API server, and a ServiceAccount directory laid
 * out like the kubelet's projected volume: `token`, `ca.crt` and `namespace` are links into `..data`, a link to
 * a timestamped directory that is swapped in one rename on every update (the kubelet's atomic writer), so a
 * reader never sees half a token. Tokens come from the TokenRequest API, as the kubelet mints them.
 * The function reads the directory from `SERVICE_ACCOUNT_DIR` (default: the kubelet's mount path).
 */
import { mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { kubeRequest, readKubeconfig, type KubeTarget } from './kube.js';

/** Options of a token request. */
export interface TokenOptions {
  /** Default 3607 s, what the kubelet asks for. The API server's minimum is 600 s. */
  expirationSeconds?: number;
  /** Binds the token to an object: deleting the object revokes the token (the kubelet binds to the pod). */
  boundTo?: { kind: 'Secret' | 'Pod'; name: string; uid: string };
}

/** Mints a token of `namespace/serviceAccount` with the TokenRequest API, as the admin. */
export async function requestServiceAccountToken(
  admin: KubeTarget,
  namespace: string,
  serviceAccount: string,
  options: TokenOptions = {},
): Promise<string> {
  const { boundTo } = options;
  const { body } = await kubeRequest<{ status: { token: string } }>(
    admin,
    'POST',
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        expirationSeconds: options.expirationSeconds ?? 3607,
        ...(boundTo ? { boundObjectRef: { apiVersion: 'v1', ...boundTo } } : {}),
      },
    },
  );
  return body.status.token;
}

/** The files of a ServiceAccount directory. */
export interface ServiceAccountFiles {
  token: string;
  /** Base64 of the PEM CA bundle (as in a kubeconfig). */
  caData: string;
  namespace: string;
}

let updates = 0;

/**
 * Writes (or updates) a ServiceAccount directory as the kubelet's atomic writer does: the files go to a new
 * timestamped directory, `..data` is pointed at it in one rename, `token`, `ca.crt` and `namespace` link
 * through `..data`, and the previous directory is removed.
 */
export function writeServiceAccountDir(dir: string, files: ServiceAccountFiles): void {
  mkdirSync(dir, { recursive: true });
  const stamp = `..${new Date().toISOString().replace(/[-:.]/g, '_')}.${++updates}`;
  const next = path.join(dir, stamp);
  mkdirSync(next);
  writeFileSync(path.join(next, 'token'), files.token, { mode: 0o600 });
  writeFileSync(path.join(next, 'ca.crt'), Buffer.from(files.caData, 'base64'));
  writeFileSync(path.join(next, 'namespace'), files.namespace);
  const data = path.join(dir, '..data');
  let previous: string | undefined;
  try {
    previous = readlinkSync(data);
  } catch {
    previous = undefined;
  }
  const swap = path.join(dir, '..data_tmp');
  rmSync(swap, { force: true });
  symlinkSync(stamp, swap);
  renameSync(swap, data);
  if (previous === undefined) {
    for (const file of ['token', 'ca.crt', 'namespace']) symlinkSync(`..data/${file}`, path.join(dir, file));
  } else {
    rmSync(path.join(dir, previous), { recursive: true, force: true });
  }
}

/** The in-cluster environment of a process: the API server's address and the ServiceAccount directory. */
export function inClusterEnv(server: string, dir: string): Record<string, string> {
  const url = new URL(server);
  return {
    KUBERNETES_SERVICE_HOST: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    KUBERNETES_SERVICE_PORT: url.port || '443',
    SERVICE_ACCOUNT_DIR: dir,
  };
}

/** A ServiceAccount directory of one ServiceAccount, and the environment that points a process at it. */
export class ProjectedServiceAccount {
  private constructor(
    /** The directory (`SERVICE_ACCOUNT_DIR`). */
    readonly dir: string,
    private readonly admin: KubeTarget,
    readonly namespace: string,
    readonly name: string,
  ) {}

  /**
   * Creates the directory for `namespace/name` (which must exist) with a fresh token, the cluster's CA and the
   * namespace.
   */
  static async create(
    adminKubeconfig: string,
    dir: string,
    namespace: string,
    name = 'config-restarter',
  ): Promise<ProjectedServiceAccount> {
    const account = new ProjectedServiceAccount(dir, readKubeconfig(adminKubeconfig), namespace, name);
    rmSync(dir, { recursive: true, force: true });
    await account.rotate();
    return account;
  }

  /** The in-cluster environment pointing at this directory. */
  env(): Record<string, string> {
    return inClusterEnv(this.admin.server, this.dir);
  }

  /** Mints a new token (as the kubelet does before the current one expires) and swaps it in. */
  async rotate(options: TokenOptions = {}): Promise<string> {
    const token = await requestServiceAccountToken(this.admin, this.namespace, this.name, options);
    this.writeToken(token);
    return token;
  }

  /** Swaps in a new set of files holding `token`. */
  writeToken(token: string): void {
    writeServiceAccountDir(this.dir, { token, caData: this.admin.caData, namespace: this.namespace });
  }
}
