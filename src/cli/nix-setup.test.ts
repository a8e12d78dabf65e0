import { describe, expect, it } from 'vitest';
import { upsertNixConfBlock } from './netrc.js';
import { adminInstructions, cacheConfLines, existingNetrcFile, nixMode, removeNixConfBlock } from './nix-setup.js';

describe('nix setup', () => {
  it('tells single- from multi-user Nix', () => {
    expect(nixMode({}, '/s', true).multiUser).toBe(true);
    expect(nixMode({}, '/s', false).multiUser).toBe(false);
    expect(nixMode({ NIX_REMOTE: 'daemon' }, '/s', false).multiUser).toBe(true);
    expect(nixMode({ NIX_REMOTE: 'local' }, '/s', true).multiUser).toBe(false);
  });
  it("finds an existing netrc-file outside Floe's block, and removes exactly the block", () => {
    const base = 'substituters = https://c\nnetrc-file = /etc/company-netrc # ours\n';
    const withBlock = upsertNixConfBlock(base, 'h', cacheConfLines({ substituter: 'u', publicKey: 'k' }, '/x/netrc'));
    expect(existingNetrcFile(withBlock, 'h')).toBe('/etc/company-netrc');
    expect(existingNetrcFile(upsertNixConfBlock('', 'h', ['netrc-file = /x']), 'h')).toBeUndefined();
    expect(removeNixConfBlock(withBlock, 'h')).toBe(base);
  });
  it('leaves netrc-file out when one is set already, and says what the admin adds', () => {
    expect(cacheConfLines({ substituter: 'u', publicKey: 'k' }, undefined)).toEqual([
      'extra-substituters = u',
      'extra-trusted-public-keys = k',
    ]);
    const text = adminInstructions({
      c: { substituter: 'http://f/cache', publicKey: 'k:1' },
      host: 'f',
      confDir: '/etc/nix',
      netrcFile: undefined,
      user: 'bob',
      loginCommand: 'floe login oidc',
    });
    expect(text).toContain('sudo floe login oidc --system');
    expect(text).toContain('netrc-file = /etc/nix/netrc');
    expect(text).toContain('trusted-substituters = http://f/cache');
    expect(text).toContain('trusted-users = bob');
    expect(text).not.toMatch(/floe_/);
  });
});
