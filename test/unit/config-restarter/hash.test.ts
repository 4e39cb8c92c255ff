import { contentHash } from '../../../functions/config-restarter/src/hash.js';
import { configMap } from './fake-cluster.js';

describe('contentHash', () => {
  const base = configMap('cm', { A: '1', B: '2' });

  it('is stable and independent of key order and metadata', () => {
    const reordered = configMap('cm', { B: '2', A: '1' }, { labels: { app: 'x' } });
    reordered.metadata!.resourceVersion = '999';
    expect(contentHash('ConfigMap', reordered)).toBe(contentHash('ConfigMap', base));
    expect(contentHash('ConfigMap', base)).toMatch(/^sha256:[0-9a-f]{32}$/);
  });

  it.each([
    ['a changed value', configMap('cm', { A: '1', B: '3' })],
    ['an added key', configMap('cm', { A: '1', B: '2', C: '' })],
    ['binaryData', { ...configMap('cm', { A: '1', B: '2' }), binaryData: { bin: 'AAEC' } }],
  ])('changes with %s', (_name, changed) => {
    expect(contentHash('ConfigMap', changed)).not.toBe(contentHash('ConfigMap', base));
  });

  it('keys Secret hashes by uid, so the recorded value is no plain digest of the secret', () => {
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's', uid: 'u1' },
      data: { p: 'cGFzcw==' },
    };
    const other = { ...secret, metadata: { name: 's', uid: 'u2' } };
    expect(contentHash('Secret', secret)).not.toBe(contentHash('Secret', other));
    expect(contentHash('Secret', secret)).toBe(contentHash('Secret', structuredClone(secret)));
    expect(contentHash('Secret', secret)).not.toBe(contentHash('ConfigMap', secret));
  });
});
