/**
 * Store paths, hashes, nix32, content addresses and signatures (src/nix/store-path.ts, hash.ts,
 * nix32.ts, content-address.ts, signing.ts) on arbitrary strings: they arrive in URLs, narinfos
 * and API bodies. Each parser returns a value or throws InvalidInput; what it returns formats back
 * to the same value; nix32 accepts exactly the canonical encodings; and store path syntax is
 * accepted exactly when an independent statement of Nix's rule accepts it.
 */
import { describe, expect, it } from 'vitest';
import { isVerifiedContentAddressed, parseContentAddress } from '../../src/nix/content-address.js';
import { HASH_SIZES, formatNix32Hash, formatSriHash, hashesEqual, parseHash } from '../../src/nix/hash.js';
import { NIX32_ALPHABET, decodeNix32, encodeNix32, nix32EncodedLength } from '../../src/nix/nix32.js';
import { parseSignature } from '../../src/nix/signing.js';
import { parseStorePath, parseStorePathBase, parseStorePathHash } from '../../src/nix/store-path.js';
import { arbCa, arbSha256, arbSig, arbStorePathBase } from './arbitraries.js';
import { corpus, fc, fuzzParams, fuzzTimeout, outcome } from './fuzz.js';

/** Nix's rule, written out separately: 32 nix32 characters, "-", a name of 1..211 allowed characters not starting with ".". */
function modelIsStorePathBase(s: string): boolean {
  if (s.length < 34 || s[32] !== '-') return false;
  if (![...s.slice(0, 32)].every((c) => NIX32_ALPHABET.includes(c))) return false;
  const name = s.slice(33);
  return (
    name.length >= 1 &&
    name.length <= 211 &&
    !name.startsWith('.') &&
    [...name].every((c) => /[A-Za-z0-9+\-._?=]/.test(c) && c.length === 1)
  );
}

const arbNix32ish = (n: number) =>
  fc.string({
    unit: fc.constantFrom(...NIX32_ALPHABET, 'e', 'o', 't', 'u', 'A', '-', '\u0100'),
    minLength: n,
    maxLength: n,
  });
const arbPathLike = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc
    .tuple(
      arbNix32ish(32),
      fc.constantFrom('-', '_', ''),
      fc.string({ unit: fc.constantFrom('a', '.', '-', '+', '?', '=', '_', '/', ' ', '\n', 'é', 'Z'), maxLength: 215 }),
    )
    .map(([h, d, n]) => `${h}${d}${n}`),
  arbStorePathBase,
);
const arbHashLike = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 140 }),
  fc
    .tuple(
      fc.constantFrom('sha256', 'sha1', 'md5', 'sha512', 'SHA256', 'blake3', ''),
      fc.constantFrom(':', '-'),
      fc.oneof(
        arbNix32ish(52),
        arbNix32ish(32),
        arbNix32ish(103),
        fc.uint8Array({ maxLength: 70 }).map((b) => Buffer.from(b).toString('hex')),
        fc.uint8Array({ maxLength: 70 }).map((b) => Buffer.from(b).toString('base64')),
        fc.string({ maxLength: 90 }),
      ),
    )
    .map(([a, s, d]) => `${a}${s}${d}`),
);

describe('store path and hash fuzz', () => {
  it.each(
    corpus('store-path').flatMap((e) =>
      e.bytes
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => [e.name, l] as const),
    ),
  )('corpus %s: %s', (_name, line) => {
    for (const parse of [
      parseStorePathHash,
      parseStorePathBase,
      (s: string) => parseStorePath(s),
      (s: string) => parseHash(s),
      parseContentAddress,
      parseSignature,
    ])
      outcome(() => parse(line), 'invalid_input');
  });

  it(
    'store paths: accepted exactly when Nix’s rule accepts them, refused with InvalidInput otherwise',
    () => {
      fc.assert(
        fc.property(arbPathLike, (s) => {
          const base = outcome(() => parseStorePathBase(s), 'invalid_input');
          expect(base.ok, JSON.stringify(s)).toBe(modelIsStorePathBase(s));
          const full = outcome(() => parseStorePath(`/nix/store/${s}`), 'invalid_input');
          expect(full.ok).toBe(base.ok);
          if (full.ok) expect(full.value).toBe(s);
          outcome(() => parseStorePath(s), 'invalid_input');
          const hash = outcome(() => parseStorePathHash(s.slice(0, 32)), 'invalid_input');
          if (base.ok) expect(hash.ok).toBe(true);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'hashes: InvalidInput, or a digest of the algorithm’s size that formats back to itself',
    () => {
      fc.assert(
        fc.property(arbHashLike, (s) => {
          const r = outcome(() => parseHash(s), 'invalid_input');
          if (!r.ok) return;
          expect(r.value.digest.length).toBe(HASH_SIZES[r.value.algo]);
          expect(hashesEqual(parseHash(formatNix32Hash(r.value)), r.value)).toBe(true);
          expect(hashesEqual(parseHash(formatSriHash(r.value)), r.value)).toBe(true);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'nix32: any bytes round-trip, and a decoded string is exactly the canonical encoding',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 70 }), (bytes) => {
          const text = encodeNix32(bytes);
          expect(text.length).toBe(nix32EncodedLength(bytes.length));
          expect(Buffer.from(decodeNix32(text, bytes.length)).equals(Buffer.from(bytes))).toBe(true);
        }),
        fuzzParams(),
      );
      fc.assert(
        fc.property(
          fc.constantFrom(16, 20, 32, 64),
          fc.nat(),
          fc.string({ unit: fc.constantFrom(...NIX32_ALPHABET, 'e', '\u00ff', '\u{1F600}'), maxLength: 110 }),
          (size, pad, chars) => {
            const len = nix32EncodedLength(size);
            const text = (chars + NIX32_ALPHABET[pad % 32]!.repeat(len)).slice(
              0,
              pad % 3 === 0 ? len + (pad % 2) : len,
            );
            const r = outcome(() => decodeNix32(text, size), 'invalid_input');
            if (r.ok) expect(encodeNix32(r.value)).toBe(text);
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'content addresses and signatures: InvalidInput or a value; path checks never throw',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            arbCa,
            arbHashLike.map((h) => `fixed:r:${h}`),
            arbHashLike.map((h) => `text:${h}`),
            fc.string({ maxLength: 80 }),
          ),
          arbStorePathBase,
          arbSha256,
          fc.array(arbStorePathBase, { maxLength: 3 }),
          (ca, storePath, narHash, references) => {
            outcome(() => parseContentAddress(ca), 'invalid_input');
            expect(typeof isVerifiedContentAddressed({ storePath, narHash, references, ca })).toBe('boolean');
          },
        ),
        fuzzParams(),
      );
      fc.assert(
        fc.property(
          fc.oneof(
            arbSig,
            fc.string({ unit: 'binary', maxLength: 120 }),
            arbSig.map((s) => s.replace(/.$/, '\n')),
          ),
          (sig) => {
            const r = outcome(() => parseSignature(sig), 'invalid_input');
            if (r.ok) {
              expect(r.value.sig.length).toBe(64);
              expect(r.value.keyName).not.toMatch(/[\s:\x00-\x1f\x7f]/);
            }
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );
});
