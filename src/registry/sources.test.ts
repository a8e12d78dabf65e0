import { describe, expect, it } from 'vitest';
import { parseHash } from '../nix/hash.js';
import { sourceStorePath } from './sources.js';

describe('sourceStorePath', () => {
  // The paths real Nix asked the substituter for (`nix build -vvvv` of a consumer with this lock).
  it.each([
    ['sha256-9ihsei0HRWApooJz4GYCDteteGGYC+myUb6icm6+Kvs=', '41x1dycpx09c04kzf482df9xis19l4q8-source', '2.26.3'],
    ['sha256-JNPm6euHTAiAJCCtxoKhsrTCnuiHIloOpa0OWdQlBI8=', 'fqbny2hjfyi6kb1qwzvxmzbmpgqaissx-source', '2.8.0'],
  ])('%s is %s, as Nix %s computes it', (narHash, path) => {
    expect(sourceStorePath(parseHash(narHash))).toBe(path);
  });
});
