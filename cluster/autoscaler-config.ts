/**
 * Shorter scale-to-zero windows for a local cluster's Knative Serving autoscaler, so a test or a benchmark sees an
 * idle Revision go to zero in seconds instead of the defaults' 60-90 s. Only the local tooling uses it; the shipped
 * manifests never set `config-autoscaler`.
 */
import { kubeRequest, type KubeTarget } from './kube.js';

const CONFIG_AUTOSCALER = '/api/v1/namespaces/knative-serving/configmaps/config-autoscaler';

/**
 * The smallest windows knative.dev/serving v0.49.1 accepts (`pkg/autoscaler/config/config.go`: `stable-window` and
 * `scale-to-zero-grace-period` at least 6 s) and no pod retention: an idle Revision is at zero about 12 s after its
 * last request, instead of 60 s stable window + 30 s grace.
 */
const FAST_SCALE_TO_ZERO: Readonly<Record<string, string>> = {
  'stable-window': '6s',
  'scale-to-zero-grace-period': '6s',
  'scale-to-zero-pod-retention-period': '0s',
};

/**
 * Merges `data` into `knative-serving/config-autoscaler` (the autoscaler and the Serving controller watch it) and
 * returns the data it held before, for {@link restoreAutoscalerConfig}.
 */
export async function setAutoscalerConfig(
  target: KubeTarget,
  data: Readonly<Record<string, string>> = FAST_SCALE_TO_ZERO,
): Promise<Record<string, string>> {
  const { body } = await kubeRequest<{ data?: Record<string, string> }>(target, 'GET', CONFIG_AUTOSCALER);
  await kubeRequest(
    target,
    'PATCH',
    CONFIG_AUTOSCALER,
    { data },
    {
      contentType: 'application/merge-patch+json',
    },
  );
  return body.data ?? {};
}

/** Puts back what {@link setAutoscalerConfig} returned. */
export async function restoreAutoscalerConfig(
  target: KubeTarget,
  previous: Readonly<Record<string, string>>,
): Promise<void> {
  await kubeRequest(target, 'PUT', CONFIG_AUTOSCALER, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'config-autoscaler', namespace: 'knative-serving' },
    data: previous,
  });
}
