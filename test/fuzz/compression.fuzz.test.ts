/**
 * Compression sniffing and decoding of NAR uploads (src/cache/compression.ts, decoders.ts,
 * bzip2-decoder.ts), driven through `ingestNar` on real storage (SQLite + files in a temp dir), as
 * `PUT /cache/nar/…` drives it. Arbitrary, truncated and mutated bodies of every codec end with a
 * stored NAR or a FloeError (invalid_input / too_large), within a generous bound (never a hang),
 * and never with a TypeError or a decoder's own error escaping. What is stored is what was
 * claimed: its hash and size are the decoded NAR's, and the stored bytes are a valid NAR.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress as zstdCompress, decompress as zstdDecompress } from 'zstd-napi';
import { type Compression, compressionFromName, sniffCompression } from '../../src/cache/compression.js';
import { ingestNar } from '../../src/cache/ingest.js';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { NarValidator, serializeNar } from '../../src/nix/nar.js';
import { openStorage } from '../../src/storage/open.js';
import type { Storage } from '../../src/storage/types.js';
import { arbNarTree } from './arbitraries.js';
import { chunksOf, corpus, fc, fuzzParams, fuzzTimeout, mutated, outcome, outcomeAsync, withinMs } from './fuzz.js';

/** Small caps, so bombs and oversized bodies meet them within a case. */
const LIMITS = { maxUploadBytes: 256 << 10, maxNarBytes: 1 << 20 };
/** "Did not hang": far above the few milliseconds a case takes. */
const CASE_MS = 15_000;

let storage: Storage;
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'floe-fuzz-compression-'));
  storage = await openStorage({ dataDir: dir });
});
afterAll(async () => {
  await storage?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function* body(chunks: Buffer[]): AsyncIterable<Buffer> {
  for (const c of chunks) yield c;
}

/**
 * One upload. Returns the stored NAR's hash when accepted (after checking the stored blob), or
 * undefined when refused with a client error.
 */
async function upload(
  bytes: Buffer,
  declared: Compression | undefined,
  cuts: number[] = [],
  declaredNarSize?: number,
): Promise<string | undefined> {
  const r = await withinMs(
    CASE_MS,
    'ingestNar',
    outcomeAsync(
      () => ingestNar(body(chunksOf(bytes, cuts)), declared, storage, LIMITS, undefined, declaredNarSize),
      ['invalid_input', 'too_large'],
    ),
  );
  if (!r.ok) return undefined;
  const stored = await storage.blobs.get(r.value.blobKey);
  expect(stored).toBeDefined();
  const parts: Buffer[] = [];
  for await (const c of stored!.body) parts.push(c as Buffer);
  const nar = zstdDecompress(Buffer.concat(parts));
  expect(nar.length).toBe(r.value.narSize);
  expect(encodeNix32(createHash('sha256').update(nar).digest())).toBe(encodeNix32(r.value.narHash.digest));
  const v = new NarValidator();
  v.push(nar);
  v.end();
  if (declaredNarSize !== undefined) expect(r.value.narSize).toBeLessThanOrEqual(declaredNarSize);
  return encodeNix32(r.value.narHash.digest);
}

const sha = (b: Buffer) => encodeNix32(createHash('sha256').update(b).digest());

/** Compresses in-process (bzip2 has no in-process encoder here: its cases come from the corpus). */
function compressAs(kind: 'none' | 'gzip' | 'br' | 'zstd', nar: Buffer): Buffer {
  if (kind === 'gzip') return zlib.gzipSync(nar);
  if (kind === 'br') return zlib.brotliCompressSync(nar);
  if (kind === 'zstd') return zstdCompress(nar);
  return nar;
}

const arbDeclared = fc.constantFrom<Compression | undefined>(undefined, 'none', 'xz', 'zstd', 'bzip2', 'gzip', 'br');
const arbCuts = fc.array(fc.nat(), { maxLength: 6 });
const seeds = corpus('compression');
const arbCorpusEntry = fc.constantFrom(...seeds);
const declaredOf = (name: string) => compressionFromName(path.extname(name).slice(1));

describe('compression fuzz (through ingestNar)', () => {
  it.each(seeds.map((e) => [e.name, e.bytes] as const))('corpus %s', async (name, bytes) => {
    const stored = await upload(bytes, declaredOf(name), [3, 50, 100]);
    if (name.startsWith('valid')) expect(stored).toBe(sha(seeds.find((s) => s.name === 'valid-plain.nar')!.bytes));
    else expect(stored).toBeUndefined();
  });

  it(
    'sniffing arbitrary heads: a codec or InvalidInput, nothing else',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 40 }), arbDeclared, (head, declared) => {
          outcome(() => sniffCompression(Buffer.from(head), declared), 'invalid_input');
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'generated NARs in gzip, brotli, zstd or none are stored under their own hash, however the body is chunked',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          arbNarTree,
          fc.constantFrom('none' as const, 'gzip' as const, 'br' as const, 'zstd' as const),
          arbCuts,
          async (tree, kind, cuts) => {
            const nar = serializeNar(tree);
            expect(await upload(compressAs(kind, nar), kind, cuts)).toBe(sha(nar));
          },
        ),
        fuzzParams(6),
      );
    },
    fuzzTimeout(200),
  );

  it(
    'arbitrary bodies behind each magic end with a client error (or a valid stored NAR), never a crash or a hang',
    async () => {
      const magics = [
        Buffer.alloc(0),
        Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
        Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
        Buffer.from('BZh9'),
        Buffer.from('BZh1'),
        Buffer.from([0x1f, 0x8b, 8, 0]),
        serializeNar({ type: 'regular', contents: '' }).subarray(0, 21),
      ];
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...magics),
          fc.uint8Array({ maxLength: 2000 }),
          arbDeclared,
          arbCuts,
          async (magic, rest, declared, cuts) => {
            await upload(Buffer.concat([magic, rest]), declared, cuts);
          },
        ),
        fuzzParams(6),
      );
    },
    fuzzTimeout(200),
  );

  it(
    'mutated compressed NARs of every codec (and bombs): stored only as what they decode to, or refused',
    async () => {
      const arbCompressed = fc.oneof(
        arbCorpusEntry.map((e) => ({ bytes: new Uint8Array(e.bytes), declared: declaredOf(e.name) })),
        fc.tuple(arbNarTree, fc.constantFrom('gzip' as const, 'br' as const, 'zstd' as const)).map(([t, k]) => ({
          bytes: new Uint8Array(compressAs(k, serializeNar(t))),
          declared: k as Compression | undefined,
        })),
      );
      await fc.assert(
        fc.asyncProperty(
          arbCompressed.chain((c) => mutated(fc.constant(c.bytes)).map((bytes) => ({ bytes, declared: c.declared }))),
          arbCuts,
          fc.option(fc.integer({ min: 1, max: 1 << 21 }), { nil: undefined }),
          async ({ bytes, declared }, cuts, declaredNarSize) => {
            await upload(bytes, declared, cuts, declaredNarSize);
          },
        ),
        fuzzParams(6),
      );
    },
    fuzzTimeout(200),
  );
});
