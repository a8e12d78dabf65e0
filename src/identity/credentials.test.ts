import { describe, expect, it } from 'vitest';
import { credentialFromAuthorization } from './credentials.js';

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

describe('credentialFromAuthorization', () => {
  it('takes the password of Basic auth whatever the user name (netrc from Nix)', () => {
    expect(credentialFromAuthorization(basic(':floe_abc'))).toBe('floe_abc');
    expect(credentialFromAuthorization(basic('"":floe_abc'))).toBe('floe_abc');
    expect(credentialFromAuthorization(basic('ci:floe_a:b'))).toBe('floe_a:b');
  });
  it('takes Bearer tokens, case-insensitively', () => {
    expect(credentialFromAuthorization('Bearer floe_xyz')).toBe('floe_xyz');
    expect(credentialFromAuthorization('bearer floe_xyz')).toBe('floe_xyz');
  });
  it('returns undefined for absent or unusable headers', () => {
    for (const h of [undefined, '', 'Bearer', 'Digest abc', basic('nopassword'), basic('user:')]) {
      expect(credentialFromAuthorization(h)).toBeUndefined();
    }
  });
});
