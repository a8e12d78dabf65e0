import { describe, expect, it } from 'vitest';
import { ListingMemo } from './listings.js';

describe('ListingMemo', () => {
  it('keeps listings by NAR hash within its byte and entry bounds, least recently used out first', () => {
    const memo = new ListingMemo(10, 3);
    memo.set('a', 'aaaa');
    memo.set('b', 'bbbb');
    expect(memo.get('a')).toBe('aaaa'); // a is now the most recent
    memo.set('c', 'cccc'); // 12 bytes > 10: b (least recent) goes
    expect(memo.get('b')).toBeUndefined();
    expect(memo.get('a')).toBe('aaaa');
    expect(memo.get('c')).toBe('cccc');
    memo.set('x', null);
    memo.set('y', null); // 4 entries > 3: the least recent goes (a)
    expect(memo.size).toBe(3);
    expect(memo.get('a')).toBeUndefined();
    expect(memo.get('x')).toBeNull();
    // A listing larger than the whole memo is not kept (and evicts nothing).
    memo.set('huge', 'h'.repeat(11));
    expect(memo.get('huge')).toBeUndefined();
    expect(memo.get('c')).toBe('cccc');
  });
});
