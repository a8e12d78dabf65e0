import { describe, expect, it } from 'vitest';
import type { Principal } from './principal.js';
import { remainingLifetime, ttlWithinCreator } from './lifetime.js';

const NOW = 1_000_000;
const token = (expiresAt?: number): Principal => ({
  kind: 'token',
  tokenId: 't',
  subject: 'ci',
  org: { id: 'o', name: 'acme' },
  scopes: new Set(['admin']),
  slices: null,
  issuedAt: NOW - 60,
  ...(expiresAt !== undefined ? { expiresAt } : {}),
});
const admin: Principal = { kind: 'server-admin', tokenId: 'a', subject: 'admin' };

describe('a token never outlives its creator', () => {
  it('refuses a requested lifetime past the creator, with its expiry', () => {
    expect(() => ttlWithinCreator(token(NOW + 3600), 366 * 86400, 86400, NOW)).toThrow(
      /expires at .*: a token you create cannot outlive it \(ask for a ttl of at most 3600s/,
    );
    expect(ttlWithinCreator(token(NOW + 3600), 3600, 86400, NOW)).toBe(3600);
    expect(ttlWithinCreator(token(NOW + 3600), 60, 86400, NOW)).toBe(60);
  });

  it('shortens the default to what the creator has left', () => {
    expect(ttlWithinCreator(token(NOW + 3600), undefined, 86400, NOW)).toBe(3600);
    expect(ttlWithinCreator(token(NOW + 7 * 86400), undefined, 86400, NOW)).toBe(86400);
  });

  it('does not bound the server admin or a creator without expiry', () => {
    expect(ttlWithinCreator(admin, 366 * 86400, 86400, NOW)).toBe(366 * 86400);
    expect(ttlWithinCreator(token(), 366 * 86400, 86400, NOW)).toBe(366 * 86400);
    expect(remainingLifetime(admin, NOW)).toBeUndefined();
  });

  it('refuses anything from an expired creator', () => {
    expect(() => ttlWithinCreator(token(NOW - 1), undefined, 86400, NOW)).toThrow(/expired/);
  });
});
