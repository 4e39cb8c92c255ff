/** What the function stores on a workload: the hash record and the pending restart, keys and codecs. */
import {
  configKey,
  formatHashRecord,
  formatPendingRestart,
  hashRecordAnnotation,
  parseHashRecord,
  parsePendingRestart,
  recordKey,
  withEntries,
} from '../../../functions/config-restarter/src/records.js';

describe('record keys', () => {
  it('name the kind and the object, and the keys when only some are used', () => {
    expect(configKey({ kind: 'ConfigMap', name: 'cm' })).toBe('configmap/cm');
    expect(configKey({ kind: 'Secret', name: 's' })).toBe('secret/s');
    expect(recordKey({ kind: 'ConfigMap', name: 'cm' })).toBe('configmap/cm');
    expect(recordKey({ kind: 'ConfigMap', name: 'cm' }, ['A', 'B'])).toBe('configmap/cm#A,B');
  });
});

describe('the hash record', () => {
  it.each<[string, string | null | undefined]>([
    ['nothing', undefined],
    ['null', null],
    ['not JSON', '{not json'],
    ['an array', '["a"]'],
    ['a string', '"x"'],
  ])('reads %s as no record', (_name, value) => {
    expect(parseHashRecord(value)).toEqual({});
  });

  it('keeps only string values, and formats with sorted keys', () => {
    expect(parseHashRecord('{"b":"2","a":"1","n":3}')).toEqual({ a: '1', b: '2' });
    expect(formatHashRecord({ 'secret/s': 'h2', 'configmap/cm': 'h1' })).toBe(
      '{"configmap/cm":"h1","secret/s":"h2"}',
    );
  });

  it('an entry replaces every other key set of the same object and keeps the others', () => {
    const records = {
      'configmap/cm': 'old',
      'configmap/cm#A': 'oldA',
      'configmap/cmx': 'x',
      'secret/cm': 's',
    };
    expect(
      withEntries(records, [{ ref: { kind: 'ConfigMap', name: 'cm' }, key: 'configmap/cm#B', hash: 'b' }]),
    ).toEqual({ 'configmap/cm#B': 'b', 'configmap/cmx': 'x', 'secret/cm': 's' });
  });

  it('the annotation is written only when there is an entry', () => {
    const entry = { ref: { kind: 'ConfigMap' as const, name: 'cm' }, key: 'configmap/cm', hash: 'h' };
    expect(hashRecordAnnotation('p/configHashes', {}, [])).toEqual({});
    expect(hashRecordAnnotation('p/configHashes', { 'secret/s': 's' }, [entry])).toEqual({
      'p/configHashes': '{"configmap/cm":"h","secret/s":"s"}',
    });
  });
});

describe('the pending restart', () => {
  it('round-trips with sorted, unique records', () => {
    const text = formatPendingRestart({ records: ['configmap/b', 'configmap/a'], since: 's', due: 'd' });
    expect(text).toBe('{"records":["configmap/a","configmap/b"],"since":"s","due":"d"}');
    expect(parsePendingRestart(text)).toEqual({
      records: ['configmap/a', 'configmap/b'],
      since: 's',
      due: 'd',
    });
    expect(parsePendingRestart('{"records":["x","x",1]}')).toEqual({ records: ['x'], since: '', due: '' });
  });

  it.each([undefined, '', 'nope', 'null', '{"records":"x"}', '{"records":[]}'])(
    'reads %j as nothing pending',
    (value) => {
      expect(parsePendingRestart(value)).toBeUndefined();
    },
  );
});
