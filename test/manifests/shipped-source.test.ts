/**
 * cluster/shipped-source.ts: the adapter configuration the tests, the demo and the benchmark derive from the
 * project's ApiServerSource, for every kustomize variant, and the selector strings it builds.
 */
import { adapterConfigOf, selectorString, shippedSource } from '../../cluster/shipped-source.js';

const WATCH = 'rolling.restart.controller/watch=true';

describe('shippedSource', () => {
  it.each([
    ['knative', ['configmaps']],
    ['knative/broker', ['configmaps']],
    ['knative/secrets', ['configmaps', 'secrets']],
    ['knative/authentication', ['configmaps']],
    ['knative/argo-rollouts', ['configmaps']],
  ])('%s: Reference mode, every watched kind selected by the watch label', async (dir, plurals) => {
    expect(await shippedSource(dir)).toEqual({
      name: 'config-restarter-source',
      mode: 'Reference',
      resources: plurals.map((resource) => ({ group: '', version: 'v1', resource, selector: WATCH })),
    });
  });
});

describe('shippedSource config-restarter-workloads', () => {
  it.each([
    'knative',
    'knative/broker',
    'knative/secrets',
    'knative/authentication',
    'knative/argo-rollouts',
  ])('%s: the followed workload kinds, each selected by the watch label', async (dir) => {
    expect(await shippedSource(dir, 'config-restarter-workloads')).toEqual({
      name: 'config-restarter-workloads',
      mode: 'Reference',
      resources: [
        { group: 'apps', version: 'v1', resource: 'deployments', selector: WATCH },
        { group: 'apps', version: 'v1', resource: 'statefulsets', selector: WATCH },
        { group: 'apps', version: 'v1', resource: 'daemonsets', selector: WATCH },
        { group: 'serving.knative.dev', version: 'v1', resource: 'services', selector: WATCH },
      ],
    });
  });
});

describe('selectorString', () => {
  it.each([
    [undefined, undefined],
    [{}, undefined],
    [{ matchLabels: { b: '2', a: '1' } }, 'a=1,b=2'],
    [
      {
        matchLabels: { env: 'prod' },
        matchExpressions: [
          { key: 'team', operator: 'In' as const, values: ['b', 'a'] },
          { key: 'tier', operator: 'NotIn' as const, values: ['x'] },
          { key: 'owner', operator: 'Exists' as const },
          { key: 'legacy', operator: 'DoesNotExist' as const },
        ],
      },
      'env=prod,!legacy,owner,team in (a,b),tier notin (x)',
    ],
  ])('%j -> %s', (selector, expected) => {
    expect(selectorString(selector)).toBe(expected);
  });

  it('keeps a source without a selector unselected, and refuses kinds it has no plural for', () => {
    const source = {
      kind: 'ApiServerSource',
      metadata: { name: 's' },
      spec: { resources: [{ apiVersion: 'v1', kind: 'ConfigMap' }] },
    };
    expect(adapterConfigOf(source)).toEqual({
      name: 's',
      mode: 'Reference',
      resources: [{ group: '', version: 'v1', resource: 'configmaps' }],
    });
    expect(() =>
      adapterConfigOf({ ...source, spec: { resources: [{ apiVersion: 'batch/v1', kind: 'CronJob' }] } }),
    ).toThrow('no plural known for the watched kind CronJob');
  });
});
