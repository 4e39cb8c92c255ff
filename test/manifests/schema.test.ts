import { Broker } from '@kubernetes-models/knative/eventing.knative.dev/v1/Broker';
import { Trigger } from '@kubernetes-models/knative/eventing.knative.dev/v1/Trigger';
import { Service as KnativeServiceModel } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { ApiServerSource } from '@kubernetes-models/knative/sources.knative.dev/v1/ApiServerSource';
import { PingSource } from '@kubernetes-models/knative/sources.knative.dev/v1/PingSource';
import { Gateway } from '@kubernetes-models/istio/networking.istio.io/v1beta1/Gateway';
import { VirtualService } from '@kubernetes-models/istio/networking.istio.io/v1beta1/VirtualService';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Pod } from 'kubernetes-models/v1/Pod';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

import { ENTRY_POINTS, render, type K8sObject, type KnativeService } from './kustomize.js';

/** A kubernetes-models class: construct it from plain data, then `.validate()` throws on schema errors. */
type Model = new (data: never) => { validate(): void };

const MODELS: Record<string, Model> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'serving.knative.dev/v1/Service': KnativeServiceModel,
  'sources.knative.dev/v1/ApiServerSource': ApiServerSource,
  'sources.knative.dev/v1/PingSource': PingSource,
  'eventing.knative.dev/v1/Broker': Broker,
  'eventing.knative.dev/v1/Trigger': Trigger,
  'networking.istio.io/v1beta1/Gateway': Gateway,
  'networking.istio.io/v1beta1/VirtualService': VirtualService,
};

function validate(object: K8sObject): void {
  const model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (model === undefined) throw new Error(`no schema for ${object.apiVersion}/${object.kind}`);
  new model(object as never).validate();
}

/**
 * The Knative CRD schemas leave the pod spec open, so the Revision template is also checked against the core
 * PodSpec schema. Knative fills in the probe ports itself (core requires one): emulate that first.
 */
function validatePodSpec(ksvc: KnativeService): void {
  const spec = structuredClone(ksvc.spec.template.spec);
  for (const c of spec.containers) {
    for (const probe of [c.livenessProbe, c.readinessProbe]) {
      if (probe?.httpGet && probe.httpGet.port === undefined)
        probe.httpGet.port = c.ports?.[0]?.containerPort ?? 8080;
    }
  }
  new Pod({ metadata: { name: ksvc.metadata.name }, spec: spec as never }).validate();
}

describe.each(ENTRY_POINTS)('schema of every object in %s', (dir) => {
  it('validates with kubernetes-models', async () => {
    const { objects } = await render(dir);
    for (const object of objects) {
      expect(() => validate(object)).not.toThrow();
      if (object.apiVersion === 'serving.knative.dev/v1' && object.kind === 'Service') {
        expect(() => validatePodSpec(object as KnativeService)).not.toThrow();
      }
    }
  });
});

describe('the validators', () => {
  it.each<[string, K8sObject]>([
    [
      'a Role with verbs as a string',
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'x' },
        rules: [{ verbs: 'get' }],
      },
    ],
    [
      'a ConfigMap with a number value',
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: 1 } },
    ],
    [
      'a VirtualService with hosts as a string',
      {
        apiVersion: 'networking.istio.io/v1beta1',
        kind: 'VirtualService',
        metadata: { name: 'x' },
        spec: { hosts: 'a' },
      },
    ],
    ['an unknown kind', { apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } }],
  ])('reject %s', (_name, object) => {
    expect(() => validate(object)).toThrow();
  });

  it('reject a pod spec with a bad container', () => {
    const ksvc = {
      apiVersion: 'serving.knative.dev/v1',
      kind: 'Service',
      metadata: { name: 'x' },
      spec: { template: { spec: { containers: [{ image: 'x', ports: [{ containerPort: 'http' }] }] } } },
    } as unknown as KnativeService;
    expect(() => validatePodSpec(ksvc)).toThrow();
  });
});
