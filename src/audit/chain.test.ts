import { describe, expect, it } from 'vitest';
import { canonicalJson, entryHash, GENESIS_HASH, verifyChain } from './chain.js';

function chain(n: number) {
  let prev = GENESIS_HASH;
  return Array.from({ length: n }, (_, i) => {
    const e = {
      seq: i + 1,
      at: `2026-11-29T00:00:0${i}Z`,
      org_id: 'o1',
      actor: 'acme:ci',
      token_id: 't',
      action: 'cache.write',
      target: `path ${i}`,
      outcome: 'event',
      reason: 'ok',
      detail: '{}',
    };
    const hash = entryHash(prev, e);
    const row = { ...e, prev_hash: prev, hash };
    prev = hash;
    return row;
  });
}

describe('audit chain', () => {
  it('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { y: 1, x: 2 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[2,{"x":2,"y":1}]},"b":1}',
    );
  });

  it('accepts an intact chain and pinpoints an altered, dropped or reordered entry', () => {
    const rows = chain(5);
    expect(verifyChain(rows, GENESIS_HASH, 0)).toBeUndefined();
    const altered = rows.map((r) => ({ ...r }));
    altered[2]!.reason = 'changed';
    expect(verifyChain(altered, GENESIS_HASH, 0)).toEqual({
      seq: 3,
      problem: 'content does not match its hash (altered)',
    });
    expect(verifyChain([rows[0]!, rows[2]!], GENESIS_HASH, 0)?.seq).toBe(3);
    expect(verifyChain([rows[1]!, rows[0]!], GENESIS_HASH, 0)?.problem).toMatch(/missing/);
    // Recomputing one entry's hash after altering it still breaks the next link.
    const forged = rows.map((r) => ({ ...r }));
    forged[1]!.target = 'forged';
    forged[1]!.hash = entryHash(forged[1]!.prev_hash, forged[1]!);
    expect(verifyChain(forged, GENESIS_HASH, 0)).toEqual({ seq: 3, problem: 'does not link to the previous entry' });
  });
});
