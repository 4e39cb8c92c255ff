import type { ConfigKind } from '../../../functions/config-restarter/src/config.js';
import { collectUses } from '../../../functions/config-restarter/src/references.js';
import type { PodSpecLike } from '../../../functions/config-restarter/src/model.js';

/** True when the pod spec uses the config object `kind`/`name` at all. */
const uses = (podSpec: PodSpecLike | undefined, kind: ConfigKind, name: string): boolean =>
  collectUses(podSpec)[kind].has(name);

const cases: [string, PodSpecLike, boolean][] = [
  ['a volume', { volumes: [{ configMap: { name: 'cm' } }] }, true],
  [
    'a projected volume',
    { volumes: [{ projected: { sources: [{ secret: { name: 's' } }, { configMap: { name: 'cm' } }] } }] },
    true,
  ],
  ['envFrom', { containers: [{ envFrom: [{ configMapRef: { name: 'cm' } }] }] }, true],
  ['env valueFrom', { containers: [{ env: [{ valueFrom: { configMapKeyRef: { name: 'cm' } } }] }] }, true],
  ['an init container', { initContainers: [{ envFrom: [{ configMapRef: { name: 'cm' } }] }] }, true],
  [
    'an ephemeral container',
    { ephemeralContainers: [{ env: [{ valueFrom: { configMapKeyRef: { name: 'cm' } } }] }] },
    true,
  ],
  [
    'another ConfigMap',
    {
      volumes: [{ configMap: { name: 'other' } }],
      containers: [{ envFrom: [{ configMapRef: { name: 'other' } }] }],
    },
    false,
  ],
  ['a Secret of the same name', { volumes: [{ secret: { secretName: 'cm' } }] }, false],
  ['nothing', {}, false],
  ['malformed lists', { volumes: 'nope', containers: [null] } as unknown as PodSpecLike, false],
];

describe('collectUses: ConfigMap', () => {
  it.each(cases)('%s', (_name, podSpec, expected) => {
    expect(uses(podSpec, 'ConfigMap', 'cm')).toBe(expected);
  });

  it('is false without a pod spec', () => {
    expect(uses(undefined, 'ConfigMap', 'cm')).toBe(false);
  });
});

describe('collectUses: Secret', () => {
  it.each<[string, PodSpecLike, boolean]>([
    ['a volume', { volumes: [{ secret: { secretName: 's' } }] }, true],
    ['a projected volume', { volumes: [{ projected: { sources: [{ secret: { name: 's' } }] } }] }, true],
    ['envFrom', { containers: [{ envFrom: [{ secretRef: { name: 's' } }] }] }, true],
    ['env valueFrom', { initContainers: [{ env: [{ valueFrom: { secretKeyRef: { name: 's' } } }] }] }, true],
    ['only an imagePullSecret', { imagePullSecrets: [{ name: 's' }] }, false],
    ['a ConfigMap of the same name', { volumes: [{ configMap: { name: 's' } }] }, false],
  ])('%s', (_name, podSpec, expected) => {
    expect(uses(podSpec, 'Secret', 's')).toBe(expected);
  });
});

it('collectUses gathers every name once', () => {
  const refs = collectUses({
    volumes: [{ configMap: { name: 'a' } }, { secret: { secretName: 'x' } }],
    containers: [{ envFrom: [{ configMapRef: { name: 'a' } }, { configMapRef: { name: 'b' } }] }],
  });
  expect([...refs.ConfigMap.keys()].sort()).toEqual(['a', 'b']);
  expect([...refs.Secret.keys()]).toEqual(['x']);
});
