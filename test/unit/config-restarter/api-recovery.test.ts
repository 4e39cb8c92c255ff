import { describe, expect, it } from '@jest/globals';
import {
  ApiRecovery,
  RECOVERY_GRACE_MS,
  unavailable,
} from '../../../functions/config-restarter/src/api-recovery.js';
import { KubeApiError } from '../../../functions/config-restarter/src/kube.js';

describe('unavailable', () => {
  it.each([
    [0, true],
    [429, true],
    [500, true],
    [503, true],
    [200, false],
    [403, false],
    [404, false],
    [409, false],
  ])('status %i -> %s', (status, expected) => {
    expect(unavailable(status)).toBe(expected);
  });
});

describe('ApiRecovery', () => {
  const clock = (start: number) => {
    let now = start;
    return { now: () => now, advance: (ms: number) => (now += ms) };
  };

  it.each([
    ['never unavailable', [], 0, false],
    ['an outage just now', [503], 0, true],
    ['no answer just now', [0], 0, true],
    ['an outage at the edge of the grace', [503], RECOVERY_GRACE_MS, true],
    ['an outage longer ago than the grace', [503], RECOVERY_GRACE_MS + 1, false],
    ['only denials and successes', [403, 200, 404], 0, false],
  ])('%s -> recovering %s', (_name, statuses, later, expected) => {
    const time = clock(1_000_000);
    const recovery = new ApiRecovery(RECOVERY_GRACE_MS, time.now);
    for (const status of statuses) recovery.saw(status);
    time.advance(later);
    expect(recovery.recovering()).toBe(expected);
  });
});

describe('KubeApiError', () => {
  it.each([
    ['RBAC denial', 403, false, { transient: false, forbidden: true }],
    ['403 of a recovering API server', 403, true, { transient: true, forbidden: false }],
    ['unavailable', 503, false, { transient: true, forbidden: false }],
    ['refused', 422, false, { transient: false, forbidden: false }],
  ])('%s', (_name, status, recovering, expected) => {
    const error = new KubeApiError(status, 'get', 'configmaps', 'ns', 'cm', 'detail', recovering);
    expect({ transient: error.transient, forbidden: error.forbidden }).toEqual(expected);
  });
});
