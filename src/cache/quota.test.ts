import { describe, expect, it } from 'vitest';
import { formatBytes } from '../units.js';
import { quotaFull, quotaViolation } from './quota.js';

describe('quota arithmetic', () => {
  it('no quota never refuses', () => {
    expect(quotaViolation('acme', null, 0, 10 ** 15)).toBeUndefined();
    expect(quotaFull('acme', undefined, 10 ** 15)).toBeUndefined();
  });
  it('refuses a write that grows usage past the quota, with both numbers', () => {
    expect(quotaViolation('acme', 1000, 900, 1000)).toBeUndefined();
    const msg = quotaViolation('acme', 1000, 900, 1001);
    expect(msg).toMatch(/quota exceeded: org acme would store .*1001 bytes.*quota of .*1000 bytes/);
  });
  it('a write that adds nothing passes even over the quota', () => {
    expect(quotaViolation('acme', 1000, 5000, 5000)).toBeUndefined();
  });
  it('refuses early only when already full', () => {
    expect(quotaFull('acme', 1000, 999)).toBeUndefined();
    expect(quotaFull('acme', 1000, 1000)).toMatch(/already stores/);
  });
  it('formats sizes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(2048)).toBe('2.0 KiB');
    expect(formatBytes(3 * 2 ** 30)).toBe('3.00 GiB');
  });
});
