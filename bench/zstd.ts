/**
 * `node dist/bench/zstd.js`: Node's built-in zlib zstd (Node >= 22.15) against zstd-napi, which Floe
 * stores and serves NARs with. Same input, same level (3, as createStorageCompressor), streams fed
 * in 64 KiB chunks like an upload; each codec's output is decoded by the other one, so the
 * formats are checked to be interchangeable too. Reports MiB/s of uncompressed data and the
 * ratio built-in / zstd-napi (above 1 = the built-in is faster).
 */
import { randomBytes } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { CompressStream, DecompressStream } from 'zstd-napi';

const MIB = Number(process.env.BENCH_ZSTD_MIB ?? 64);
const ROUNDS = Number(process.env.BENCH_ZSTD_ROUNDS ?? 3);
const CHUNK = 64 << 10;

/** NAR-like input: half incompressible (binaries' compressed sections), half repetitive text. */
function sample(bytes: number): Buffer {
  const text = Buffer.from('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-glibc-2.40/lib/libc.so.6\0'.repeat(4096));
  const parts: Buffer[] = [];
  for (let n = 0; n < bytes; n += 2 * (1 << 20)) parts.push(randomBytes(1 << 20), text.subarray(0, 1 << 20));
  return Buffer.concat(parts).subarray(0, bytes);
}

async function run(input: Buffer, codec: () => Transform): Promise<{ out: Buffer; ms: number }> {
  const chunks: Buffer[] = [];
  const started = performance.now();
  await pipeline(Readable.from(chunked(input)), codec(), async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) chunks.push(c);
  });
  return { out: Buffer.concat(chunks), ms: performance.now() - started };
}

function* chunked(buf: Buffer): Generator<Buffer> {
  for (let i = 0; i < buf.length; i += CHUNK) yield buf.subarray(i, i + CHUNK);
}

const builtIn = {
  compress: () => zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: 3 } }),
  decompress: () => zlib.createZstdDecompress(),
};
const napi = {
  compress: () => new CompressStream({ compressionLevel: 3 }),
  decompress: () => new DecompressStream(),
};

async function main(): Promise<void> {
  if (typeof zlib.createZstdCompress !== 'function') {
    console.log(`Node ${process.version} has no zlib zstd (needs >= 22.15): nothing to compare`);
    return;
  }
  const input = sample(MIB << 20);
  const best = { builtInC: Infinity, napiC: Infinity, builtInD: Infinity, napiD: Infinity };
  let sizes = { builtIn: 0, napi: 0 };
  for (let round = 0; round < ROUNDS; round++) {
    const a = await run(input, builtIn.compress);
    const b = await run(input, napi.compress);
    // Cross-decode: each codec reads the other's frames.
    const da = await run(a.out, napi.decompress);
    const db = await run(b.out, builtIn.decompress);
    if (!da.out.equals(input) || !db.out.equals(input)) throw new Error('round trip changed the data');
    best.builtInC = Math.min(best.builtInC, a.ms);
    best.napiC = Math.min(best.napiC, b.ms);
    best.builtInD = Math.min(best.builtInD, db.ms);
    best.napiD = Math.min(best.napiD, da.ms);
    sizes = { builtIn: a.out.length, napi: b.out.length };
  }
  const rate = (ms: number) => (MIB / (ms / 1000)).toFixed(0);
  console.log(`zstd level 3, ${MIB} MiB NAR-like input, best of ${ROUNDS}, Node ${process.version}`);
  console.log('| measure | zstd-napi | node:zlib | ratio |');
  console.log('|---|---|---|---|');
  console.log(
    `| compress (MiB/s) | ${rate(best.napiC)} | ${rate(best.builtInC)} | ${(best.napiC / best.builtInC).toFixed(2)}x |`,
  );
  console.log(
    `| decompress (MiB/s) | ${rate(best.napiD)} | ${rate(best.builtInD)} | ${(best.napiD / best.builtInD).toFixed(2)}x |`,
  );
  console.log(`| output (bytes) | ${sizes.napi} | ${sizes.builtIn} | ${(sizes.builtIn / sizes.napi).toFixed(3)}x |`);
}

await main();
