import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.js';

describe('RateLimiter', () => {
  it('allows a burst, then refills at the configured rate, per key', () => {
    const rl = new RateLimiter(6); // one every 10 s
    const t = 1_000_000;
    for (let i = 0; i < 6; i++) expect(rl.take('a', t)).toBe(0);
    expect(rl.take('a', t)).toBe(10);
    expect(rl.take('b', t)).toBe(0);
    expect(rl.take('a', t + 5_000)).toBe(5);
    expect(rl.take('a', t + 10_000)).toBe(0);
    expect(rl.take('a', t + 10_001)).toBeGreaterThan(0);
  });

  it('0 disables it', () => {
    const rl = new RateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(rl.take('a')).toBe(0);
  });
});
