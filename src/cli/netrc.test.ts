import { describe, expect, it } from 'vitest';
import { nixConfLines, removeNetrcEntry, upsertNetrcEntry, upsertNixConfBlock } from './netrc.js';

describe('netrc editing', () => {
  it('adds an entry and replaces only its own host on the next login', () => {
    const start = 'machine github.com login me password gh-secret\ndefault login anon password x\n';
    const once = upsertNetrcEntry(start, 'cache.example.com', 'floe_one');
    expect(once).toBe(
      'machine github.com login me password gh-secret\nmachine cache.example.com login floe password floe_one\ndefault login anon password x\n',
    );
    const twice = upsertNetrcEntry(once, 'cache.example.com', 'floe_two');
    expect(twice).toContain('password floe_two');
    expect(twice).not.toContain('floe_one');
    expect(twice).toContain('gh-secret');
    expect(twice.trim().split('\n').at(-1)).toMatch(/^default/);
  });
  it('handles multi-line entries and empty files', () => {
    expect(upsertNetrcEntry('', 'h', 't')).toBe('machine h login floe password t\n');
    const multi = 'machine h\n  login a\n  password old\nmachine other password y\n';
    expect(upsertNetrcEntry(multi, 'h', 'new')).toBe('machine other password y\nmachine h login floe password new\n');
    expect(removeNetrcEntry(multi, 'h')).toBe('machine other password y\n');
  });
  it('refuses what it cannot edit safely', () => {
    expect(() => upsertNetrcEntry('macdef init\ncd /\n\n', 'h', 't')).toThrow(/macdef/);
    expect(() => upsertNetrcEntry('', 'h', 'a b')).toThrow(/white space/);
  });
});

describe('nix.conf managed block', () => {
  it('appends once and replaces in place afterwards', () => {
    const lines = nixConfLines({
      substituter: 'https://c/cache',
      publicKey: 'c-1:abc=',
      netrcFile: '/home/u/.config/nix/netrc',
    });
    const once = upsertNixConfBlock('experimental-features = nix-command flakes', 'c', lines);
    expect(once.startsWith('experimental-features = nix-command flakes\n# >>> floe c')).toBe(true);
    const twice = upsertNixConfBlock(
      once,
      'c',
      nixConfLines({ substituter: 'https://c/cache', publicKey: 'c-1:new=', netrcFile: '/n' }),
    );
    expect(twice.match(/>>> floe c/g)!.length).toBe(1);
    expect(twice).toContain('c-1:new=');
    expect(twice).not.toContain('c-1:abc=');
  });
});
