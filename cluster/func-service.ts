/**
 * The Knative Service `func deploy` creates from functions/config-restarter/func.yaml, rebuilt the way the Knative
 * Functions deployer (knative.dev/func pkg/knative/deployer.go, generateNewService) builds it: the function's
 * default and deploy labels on the Service and its template, the Dapr annotations, scale options as autoscaling
 * annotations of the template, the health endpoints as HTTP probes without ports, a restricted securityContext,
 * `BUILT` + the run envs + `ADDRESS=0.0.0.0`, and the image by digest.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { REPO_ROOT } from './util.js';

interface FuncYaml {
  name: string;
  runtime: string;
  run?: { envs?: { name: string; value: string }[] };
  deploy: {
    namespace?: string;
    serviceAccountName?: string;
    labels?: { key: string; value: string }[];
    annotations?: Record<string, string>;
    options?: {
      scale?: { min?: number; max?: number };
      resources?: {
        requests?: { cpu?: string; memory?: string };
        limits?: { cpu?: string; memory?: string };
      };
    };
    healthEndpoints?: { liveness?: string; readiness?: string };
  };
}

function readFuncYaml(): FuncYaml {
  return yaml.load(
    readFileSync(path.join(REPO_ROOT, 'functions', 'config-restarter', 'func.yaml'), 'utf8'),
  ) as FuncYaml;
}

/** The namespace `func deploy` deploys the function to (func.yaml `deploy.namespace`). */
export function funcDeployNamespace(): string {
  const namespace = readFuncYaml().deploy.namespace;
  if (!namespace) throw new Error('functions/config-restarter/func.yaml has no deploy.namespace');
  return namespace;
}

/** `20060102T150405`, the deployer's BUILT stamp. */
function builtStamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').slice(0, 15);
}

/** The Knative Service of the function as `func deploy` would create it, with `image` (by digest, as deployed). */
export function funcDeployService(image: string, now = new Date()): Record<string, unknown> {
  const f = readFuncYaml();
  const labels: Record<string, string> = {
    'function.knative.dev': 'true',
    'function.knative.dev/name': f.name,
    'function.knative.dev/runtime': f.runtime,
    'boson.dev/function': 'true',
    'boson.dev/runtime': f.runtime,
    ...Object.fromEntries((f.deploy.labels ?? []).map((l) => [l.key, l.value])),
  };
  const annotations: Record<string, string> = {
    'dapr.io/app-id': f.name,
    'dapr.io/enabled': 'true',
    'dapr.io/metrics-port': '9092',
    'dapr.io/app-port': '8080',
    'dapr.io/enable-api-logging': 'true',
    ...f.deploy.annotations,
  };
  const scale = f.deploy.options?.scale;
  const resources = f.deploy.options?.resources;
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name: f.name, labels, annotations },
    spec: {
      template: {
        metadata: {
          labels,
          annotations: {
            ...annotations,
            ...(scale?.min !== undefined ? { 'autoscaling.knative.dev/min-scale': String(scale.min) } : {}),
            ...(scale?.max !== undefined ? { 'autoscaling.knative.dev/max-scale': String(scale.max) } : {}),
          },
        },
        spec: {
          serviceAccountName: f.deploy.serviceAccountName,
          containers: [
            {
              image,
              env: [
                { name: 'BUILT', value: builtStamp(now) },
                ...(f.run?.envs ?? []),
                { name: 'ADDRESS', value: '0.0.0.0' },
              ],
              livenessProbe: { httpGet: { path: f.deploy.healthEndpoints?.liveness ?? '/health/liveness' } },
              readinessProbe: {
                httpGet: { path: f.deploy.healthEndpoints?.readiness ?? '/health/readiness' },
              },
              resources: { requests: resources?.requests, limits: resources?.limits },
              securityContext: {
                runAsNonRoot: true,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
            },
          ],
        },
      },
    },
  };
}
