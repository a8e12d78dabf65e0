import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { decompress } from 'zstd-napi';
import { ONE_SHOT_BYTES, compressWhole, createStorageCompressor } from './storage-compressor.js';

async function compressChunks(chunks: Buffer[], sizeHint?: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    createStorageCompressor(sizeHint),
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return out;
}

/** Text that compresses like a NAR of scripts does (random bytes would not compress at all). */
function textOf(bytes: number, seed: number): Buffer {
  const words = Array.from({ length: 64 }, (_, i) => `w${(i * 7919 + seed) % 1000}`);
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const w = words[(i * 31 + seed) % words.length]!;
    parts.push(w);
    n += w.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, bytes);
}

describe('storage compressor', () => {
  it('compresses a small input in one frame, in one piece, that decodes to the input', async () => {
    const input = textOf(5000, 1);
    const out = await compressChunks([input.subarray(0, 100), input.subarray(100, 4000), input.subarray(4000)]);
    expect(out).toHaveLength(1);
    expect(out[0]!.length).toBeLessThan(input.length / 2);
    expect(decompress(out[0]!).equals(input)).toBe(true);
  });

  it('reuses its context across inputs without carrying anything from one to the next', async () => {
    const inputs = [textOf(300, 2), randomBytes(700), textOf(ONE_SHOT_BYTES, 3), Buffer.from('x'), textOf(1200, 4)];
    for (const input of inputs) {
      const out = Buffer.concat(await compressChunks([input]));
      expect(decompress(out).equals(input)).toBe(true);
      expect(compressWhole(input).equals(out)).toBe(true);
    }
  });

  it('switches to streaming past the one-shot size, keeping every byte held so far', async () => {
    const input = Buffer.concat([textOf(ONE_SHOT_BYTES - 10, 5), randomBytes(64 << 10), textOf(3 << 20, 6)]);
    const chunks: Buffer[] = [];
    for (let at = 0; at < input.length; at += 100_000) chunks.push(input.subarray(at, at + 100_000));
    const out = await compressChunks(chunks);
    expect(out.length).toBeGreaterThan(1);
    expect(decompress(Buffer.concat(out)).equals(input)).toBe(true);
  });

  it('streams on zstd threads when the input is declared large, with the same result once decoded', async () => {
    const input = textOf(9 << 20, 7);
    const out = await compressChunks([input.subarray(0, 5 << 20), input.subarray(5 << 20)], input.length);
    expect(decompress(Buffer.concat(out)).equals(input)).toBe(true);
  });

  it('an empty input is an empty frame', async () => {
    const out = Buffer.concat(await compressChunks([]));
    expect(out.length).toBeGreaterThan(0);
    expect(decompress(out).length).toBe(0);
  });
});
