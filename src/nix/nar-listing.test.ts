/** NAR listings (`.ls`) built by the streaming validator, against what Nix 2.8 writes. */
import { describe, expect, it } from 'vitest';
import { NarValidator, formatNarListing, serializeNar } from './nar.js';

function listingOf(nar: Buffer, chunk = 7, maxEntries = 1000): string {
  const v = new NarValidator({ listing: { maxEntries } });
  for (let i = 0; i < nar.length; i += chunk) v.push(nar.subarray(i, i + chunk));
  v.end();
  return formatNarListing(v.listing!);
}

describe('NAR listings', () => {
  it('match the .ls Nix 2.8 wrote for the same tree (key order, narOffset, executable only when true)', () => {
    const nar = serializeNar({
      type: 'directory',
      entries: {
        README: { type: 'regular', contents: 'readme\n' },
        bin: {
          type: 'directory',
          entries: { hi: { type: 'regular', contents: '#!/bin/sh\necho hi\n', executable: true } },
        },
        link: { type: 'symlink', target: 'README' },
      },
    });
    const expected =
      '{"version":1,"root":{"type":"directory","entries":{"README":{"type":"regular","size":7,"narOffset":232},"bin":{"type":"directory","entries":{"hi":{"type":"regular","size":18,"executable":true,"narOffset":592}}},"link":{"type":"symlink","target":"README"}}}}';
    for (const chunk of [1, 7, 64, nar.length]) expect(listingOf(nar, chunk)).toBe(expected);
  });

  it("gives narOffset 232 for bar in Nix's binary-cache.sh tree", () => {
    const nar = serializeNar({
      type: 'directory',
      entries: { bar: { type: 'regular', contents: 'foo\n' }, link: { type: 'symlink', target: 'xyzzy' } },
    });
    const root = JSON.parse(listingOf(nar)) as { root: { entries: { bar: { narOffset: number } } } };
    expect(root.root.entries.bar.narOffset).toBe(232);
    // The offset really is where the bytes are.
    expect(nar.subarray(232, 236).toString()).toBe('foo\n');
  });

  it('lists a single file and keeps an entry named __proto__ as an ordinary key', () => {
    expect(listingOf(serializeNar({ type: 'regular', contents: 'x' }))).toBe(
      '{"version":1,"root":{"type":"regular","size":1,"narOffset":96}}',
    );
    const odd = JSON.parse(
      listingOf(
        serializeNar({
          type: 'directory',
          entries: Object.fromEntries([['__proto__', { type: 'symlink' as const, target: 't' }]]),
        }),
      ),
    ) as { root: { entries: Record<string, unknown> } };
    expect(Object.keys(odd.root.entries)).toEqual(['__proto__']);
  });

  it('refuses to list more entries than allowed, and builds no listing unless asked', () => {
    const many = serializeNar({
      type: 'directory',
      entries: Object.fromEntries(
        Array.from({ length: 20 }, (_, i) => [
          `f${String(i).padStart(2, '0')}`,
          { type: 'regular' as const, contents: '' },
        ]),
      ),
    });
    expect(() => listingOf(many, 64, 10)).toThrow(/more than 10 entries/);
    const plain = new NarValidator();
    plain.push(many);
    plain.end();
    expect(plain.listing).toBeUndefined();
  });
});
