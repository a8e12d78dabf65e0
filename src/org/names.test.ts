import { describe, expect, it } from 'vitest';
import type { Principal } from '../identity/principal.js';
import { closestName, editDistance, noSliceNamed, sliceNamesKnownTo } from './names.js';

describe('closestName', () => {
  it('suggests names within two edits, nothing further', () => {
    expect(editDistance('acme', 'acne')).toBe(1);
    expect(closestName('acm', ['globex', 'acme'])).toBe('acme');
    expect(closestName('Acme', ['acme'])).toBe('acme');
    expect(closestName('zzzz', ['acme'])).toBeUndefined();
    expect(closestName('acme', ['acme'])).toBeUndefined();
  });
});

describe('slice names', () => {
  const member = (slices: string[] | null): Principal => ({
    kind: 'token',
    tokenId: 't',
    subject: 's',
    org: { id: 'o1', name: 'acme' },
    scopes: new Set(['read'] as const),
    slices,
  });

  it('one message for each missing slice, with the closest known name as the hint', () => {
    expect(noSliceNamed('acme', ['stagin'], ['default', 'staging'])).toBe(
      'no slice named "stagin" in org acme (did you mean "staging"?)',
    );
    expect(noSliceNamed('acme', ['stagin', 'zzzzzz'], [])).toBe(
      'no slice named "stagin" in org acme; no slice named "zzzzzz" in org acme',
    );
  });

  it('hints only at slices the caller may know: the org, its own slices, nothing for strangers', () => {
    const names = ['default', 'staging'];
    expect(sliceNamesKnownTo({ kind: 'server-admin', tokenId: 'a', subject: 'admin' }, 'o1', names)).toEqual(names);
    expect(sliceNamesKnownTo(member(null), 'o1', names)).toEqual(names);
    expect(sliceNamesKnownTo(member(['default']), 'o1', names)).toEqual(['default']);
    expect(sliceNamesKnownTo(member(null), 'o2', names)).toBeUndefined();
    expect(sliceNamesKnownTo({ kind: 'anonymous' }, 'o1', names)).toBeUndefined();
  });
});
