/** fast-check generators of valid Nix values, shared by the fuzz files (harmonia's `arb_store_path`). */
import fc from 'fast-check';
import type { Hash } from '../../src/nix/hash.js';
import type { NarTree } from '../../src/nix/nar.js';
import type { NarInfo } from '../../src/nix/narinfo.js';
import { NIX32_ALPHABET, encodeNix32 } from '../../src/nix/nix32.js';
import type { StorePathBase } from '../../src/nix/store-path.js';

const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-._?=';

export const arbStorePathHash = fc.string({ unit: fc.constantFrom(...NIX32_ALPHABET), minLength: 32, maxLength: 32 });

export const arbStorePathName = fc
  .string({ unit: fc.constantFrom(...NAME_CHARS), minLength: 1, maxLength: 60 })
  .filter((n) => !n.startsWith('.'));

export const arbStorePathBase: fc.Arbitrary<StorePathBase> = fc
  .tuple(arbStorePathHash, arbStorePathName)
  .map(([h, n]) => `${h}-${n}` as StorePathBase);

export const arbSha256: fc.Arbitrary<Hash> = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((digest) => ({ algo: 'sha256' as const, digest }));

const arbKeyName = fc.string({
  unit: fc
    .integer({ min: 0x21, max: 0x7e })
    .filter((c) => c !== 0x3a)
    .map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 30,
});

export const arbSig = fc
  .tuple(arbKeyName, fc.uint8Array({ minLength: 64, maxLength: 64 }))
  .map(([name, sig]) => `${name}:${Buffer.from(sig).toString('base64')}`);

export const arbCa = fc.oneof(
  arbSha256.map((h) => `fixed:r:sha256:${encodeNix32(h.digest)}`),
  arbSha256.map((h) => `text:sha256:${encodeNix32(h.digest)}`),
  fc.uint8Array({ minLength: 20, maxLength: 20 }).map((d) => `fixed:sha1:${encodeNix32(d)}`),
);

/** Narinfos as a well-behaved client uploads them (every field Nix writes, in any combination). */
export const arbNarInfo: fc.Arbitrary<NarInfo> = fc
  .record(
    {
      storePath: arbStorePathBase,
      url: fc
        .tuple(arbStorePathHash, fc.constantFrom('nar', 'nar.xz', 'nar.zst', 'nar.bz2'))
        .map(([h, ext]) => `nar/${h}.${ext}`),
      compression: fc.constantFrom('none', 'xz', 'zstd', 'bzip2', 'gzip', 'br'),
      fileHash: arbSha256,
      fileSize: fc.nat(),
      narHash: arbSha256,
      narSize: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      references: fc.uniqueArray(arbStorePathBase, { maxLength: 6 }),
      deriver: arbStorePathBase.map((b) => `${b.slice(0, 33)}x.drv` as StorePathBase),
      sigs: fc.array(arbSig, { maxLength: 3 }),
      ca: arbCa,
    },
    { requiredKeys: ['storePath', 'url', 'compression', 'narHash', 'narSize', 'references', 'sigs'] },
  )
  .map((r) => r as NarInfo);

/** Directory entry names a NAR may hold: anything but "", ".", "..", "/" and NUL, at most 255 bytes. */
const arbEntryName = fc
  .oneof(
    fc.constantFrom(
      'a',
      'b',
      'flake.nix',
      'A',
      'z',
      '.hidden',
      'constructor',
      '__proto__',
      'toString',
      'é',
      '-',
      '...',
    ),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }),
  )
  // Well-formed UTF-16 only: names are written as UTF-8, and two lone surrogates would collide.
  .filter(
    (n) =>
      n !== '.' &&
      n !== '..' &&
      !n.includes('/') &&
      !n.includes('\0') &&
      Buffer.byteLength(n) <= 255 &&
      Buffer.from(n).toString() === n,
  );

export const arbNarTree: fc.Arbitrary<NarTree> = fc.letrec<{ node: NarTree }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({
      type: fc.constant('regular' as const),
      contents: fc.uint8Array({ maxLength: 300 }),
      executable: fc.boolean(),
    }),
    fc.record({
      type: fc.constant('symlink' as const),
      target: fc.string({ minLength: 1, maxLength: 40 }).filter((t) => !t.includes('\0')),
    }),
    fc.record({
      type: fc.constant('directory' as const),
      entries: fc.dictionary(arbEntryName, tie('node'), { maxKeys: 4, noNullPrototype: false }),
    }),
  ),
})).node;
