import { describe, expect, it } from 'vitest';
import { forcedRenewalWait, renewalDelay, retryDelay, tokenTimes } from './refresh.js';

const min = 60_000;
const issued = (life: number) => ({ issuedAt: 0, expiresAt: life });

describe('login renewal timing', () => {
  it('renews `before` ahead of expiry, tokens whose life is shorter a third of it ahead, never within a second', () => {
    expect(renewalDelay(issued(60 * min), 0, 10 * min)).toBe(50 * min);
    expect(renewalDelay(issued(60_000), 0, 58_000)).toBe(2000);
    // The same token looked at later (a watcher started late): the same moment, not a jump.
    expect(renewalDelay(issued(60_000), 1500, 58_000)).toBe(1000);
    expect(renewalDelay(issued(5 * min), 0, 10 * min)).toBe((5 * min * 2) / 3);
    expect(renewalDelay(issued(6000), 2000, 10 * min)).toBe(2000);
    expect(renewalDelay(issued(6000), 9000, 10 * min)).toBe(1000);
  });

  it('retries a failed renewal often enough to make it before expiry', () => {
    expect(retryDelay(60 * min, 0)).toBe(30_000);
    expect(retryDelay(8000, 0)).toBe(2000);
    expect(retryDelay(0, 1000)).toBe(1000);
  });

  it("reads a Floe token's issue and expiry times, and nothing from what is not one", () => {
    const payload = Buffer.from(JSON.stringify({ iat: 1000, exp: 1060, sub: 'x' })).toString('base64url');
    expect(tokenTimes(`floe_eyJhbGciOiJFZERTQSJ9.${payload}.sig`)).toEqual({
      issuedAt: 1_000_000,
      expiresAt: 1_060_000,
    });
    expect(tokenTimes('floe_bogus')).toBeUndefined();
    expect(tokenTimes(`floe_a.${Buffer.from('{"iat":1}').toString('base64url')}.b`)).toBeUndefined();
  });
});

describe('renewals forced by a 401', () => {
  it('go at once after a quiet minute, and back off (doubling, at most a minute) when they come in a row', () => {
    expect(forcedRenewalWait(undefined, 5000)).toEqual({ waitMs: 0, backoff: 1000 });
    expect(forcedRenewalWait({ at: 0, backoff: 1000 }, 60_000)).toEqual({ waitMs: 0, backoff: 1000 });
    expect(forcedRenewalWait({ at: 0, backoff: 1000 }, 200)).toEqual({ waitMs: 800, backoff: 2000 });
    expect(forcedRenewalWait({ at: 0, backoff: 8000 }, 9000)).toEqual({ waitMs: 0, backoff: 16_000 });
    expect(forcedRenewalWait({ at: 0, backoff: 60_000 }, 100)).toEqual({ waitMs: 59_900, backoff: 60_000 });
  });
});
