import { describe, expect, it } from 'vitest';
import { parseAuthorization } from './credentials.js';

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
const credential = (h: string | undefined) => {
  const r = parseAuthorization(h);
  return r.kind === 'credential' ? r.credential : r.kind;
};

describe('parseAuthorization', () => {
  it('takes the password of Basic auth whatever the user name (netrc from Nix)', () => {
    expect(credential(basic(':floe_abc'))).toBe('floe_abc');
    expect(credential(basic('"":floe_abc'))).toBe('floe_abc');
    expect(credential(basic('ci:floe_a:b'))).toBe('floe_a:b');
    // A password wins even when the user name looks like a token too.
    expect(credential(basic('floe_user:floe_pass'))).toBe('floe_pass');
  });
  it('takes Bearer tokens, case-insensitively', () => {
    expect(credential('Bearer floe_xyz')).toBe('floe_xyz');
    expect(credential('bearer floe_xyz')).toBe('floe_xyz');
  });
  it('says so when a token is in the Basic user name with no password (netrc "login TOKEN")', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvaGVsbG8ifQ.c2lnbmF0dXJlc2lnbmF0dXJl';
    for (const h of [basic('floe_abc.def:'), basic('floe_abc'), basic(' floe_abc :'), basic(`${jwt}:`), basic(jwt)]) {
      expect(parseAuthorization(h), h).toEqual({ kind: 'token-in-user-name' });
    }
  });
  it('is none for absent or unusable headers, and for user names that are not tokens', () => {
    for (const h of [
      undefined,
      '',
      'Bearer',
      'Digest abc',
      basic('nopassword'),
      basic('user:'),
      basic(':'),
      basic('a.b.c:'),
      basic('floe_:'),
      'Basic !!!',
    ]) {
      expect(parseAuthorization(h), String(h)).toEqual({ kind: 'none' });
    }
  });
});
