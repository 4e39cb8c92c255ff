import { formatDuration, parseDuration } from '../../../functions/config-restarter/src/duration.js';

describe('parseDuration (Go style)', () => {
  it.each<[string, number | undefined]>([
    ['0', 0],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1.5h', 5_400_000],
    ['250ms', 250],
    [' 2m10s ', 130_000],
    ['', undefined],
    ['5', undefined],
    ['-5m', undefined],
    ['5 m', undefined],
    ['5d', undefined],
    ['m5', undefined],
    ['5m junk', undefined],
  ])('%j -> %s', (text, expected) => {
    expect(parseDuration(text)).toBe(expected);
  });
});

describe('formatDuration', () => {
  it.each<[number, string]>([
    [250, '250ms'],
    [30_000, '30s'],
    [300_000, '5m'],
    [5_430_000, '1h30m30s'],
  ])('%d -> %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
});
