/**
 * Tokens as Knative Eventing's senders get them: the TokenRequest API with an audience, issued by the local
 * kube-apiserver to a ServiceAccount (with `authentication-oidc` on, a per-sender OIDC ServiceAccount).
 */
import { kubeRequest, type KubeTarget } from './kube.js';

/**
 * Mints a token for `namespace/serviceAccount` valid for `audiences`, as the admin. The apiserver enforces a
 * minimum lifetime of 600 seconds.
 */
export async function createAudienceToken(
  admin: KubeTarget,
  namespace: string,
  serviceAccount: string,
  audiences: string[],
  expirationSeconds = 3600,
): Promise<string> {
  const { body } = await kubeRequest<{ status: { token: string } }>(
    admin,
    'POST',
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(serviceAccount)}/token`,
    { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { audiences, expirationSeconds } },
  );
  return body.status.token;
}
