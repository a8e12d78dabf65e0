import { describe, expect, it } from 'vitest';
import { honoursImmutableLink, parseNixVersion } from './lockable-tarball.js';

const honours = (out: string) => {
  const v = parseNixVersion(out);
  if (!v) throw new Error(`not parsed: ${out}`);
  return honoursImmutableLink(v);
};

describe('which Nix honours Link: rel="immutable"', () => {
  it('reads the version of Nix, Lix and Determinate Nix', () => {
    expect(parseNixVersion('nix (Nix) 2.8.0\n')).toMatchObject({
      major: 2,
      minor: 8,
      patch: 0,
      text: 'nix (Nix) 2.8.0',
    });
    expect(parseNixVersion('nix (Nix) 2.26.3')).toMatchObject({ major: 2, minor: 26, patch: 3 });
    expect(parseNixVersion('nix (Lix, like Nix) 2.91.1')).toMatchObject({ major: 2, minor: 91 });
    expect(parseNixVersion('nix (Determinate Nix 3.6.2) 2.29.0')).toMatchObject({ major: 2, minor: 29, patch: 0 });
    expect(parseNixVersion('nix (Nix) 2.18.0pre20230822_af7d89a')).toMatchObject({ major: 2, minor: 18, patch: 0 });
    expect(parseNixVersion('nix (Nix) 2.4')).toMatchObject({ major: 2, minor: 4, patch: 0 });
    expect(parseNixVersion('')).toBeUndefined();
    expect(parseNixVersion('bash: nix: command not found')).toBeUndefined();
  });

  it('2.17+ and the 2.13.5+ / 2.15.2+ backports do; 2.8, 2.14, 2.16 and early 2.13/2.15 do not', () => {
    for (const v of ['2.17.0', '2.18.1', '2.26.3', '2.13.5', '2.13.6', '2.15.2', '2.15.3'])
      expect(honours(`nix (Nix) ${v}`)).toBe(true);
    for (const v of ['2.3.16', '2.8.0', '2.8.1', '2.11.1', '2.13.4', '2.14.1', '2.15.1', '2.16.2'])
      expect(honours(`nix (Nix) ${v}`)).toBe(false);
    expect(honours('nix (Lix, like Nix) 2.90.0')).toBe(true);
    expect(honours('nix (Determinate Nix 3.6.2) 2.29.0')).toBe(true);
  });
});
