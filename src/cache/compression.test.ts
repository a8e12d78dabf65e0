import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { type Compression, createDecompressor } from './compression.js';

/** Compressed with the command-line tools (what Nix and other clients would produce). */
function compress(kind: Exclude<Compression, 'none'>, data: Buffer): Buffer {
  switch (kind) {
    case 'gzip':
      return zlib.gzipSync(data, { level: 9 });
    case 'br':
      return zlib.brotliCompressSync(data, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } });
    case 'xz':
      return execFileSync('xz', ['-6', '-c'], { input: data, maxBuffer: 1 << 30 });
    case 'zstd':
      return execFileSync('zstd', ['-19', '-c', '-q'], { input: data, maxBuffer: 1 << 30 });
    case 'bzip2':
      return execFileSync('bzip2', ['-9', '-c'], { input: data, maxBuffer: 1 << 30 });
  }
}

/** Feeds `input` in chunks of `chunkSize`, like a network body. */
function chunked(input: Buffer, chunkSize = 16 << 10): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < input.length; i += chunkSize) yield input.subarray(i, i + chunkSize);
    })(),
  );
}

/** The longest time the event loop went without running a timer while `work` ran. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ result: PromiseSettledResult<T>; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  const [result] = await Promise.allSettled([work()]);
  clearInterval(timer);
  stallMs = Math.max(stallMs, performance.now() - last);
  return { result, stallMs };
}

const KINDS = ['gzip', 'br', 'xz', 'zstd', 'bzip2'] as const;

describe('createDecompressor', () => {
  const data = Buffer.concat([randomBytes(1 << 20), Buffer.alloc(2 << 20, 'nix'), randomBytes(300_000)]);
  for (const kind of KINDS) {
    it(`decodes ${kind} exactly, from small and large input chunks`, async () => {
      const packed = compress(kind, data);
      for (const size of [1000, 64 << 10]) {
        const out: Buffer[] = [];
        await pipeline(chunked(packed, size), createDecompressor(kind), async (source: AsyncIterable<Buffer>) => {
          for await (const c of source) out.push(c);
        });
        expect(Buffer.concat(out).equals(data)).toBe(true);
      }
    });

    it(`refuses truncated ${kind}`, async () => {
      const packed = compress(kind, data);
      await expect(
        pipeline(
          chunked(packed.subarray(0, Math.floor(packed.length / 2))),
          createDecompressor(kind),
          new Writable({ write: (_c, _e, cb) => cb() }),
        ),
      ).rejects.toThrow();
    });
  }

  describe('bombs: work follows the consumer, which can stop it', () => {
    const bombs = new Map<string, Buffer>();
    const BOMB = 256 << 20;
    beforeAll(() => {
      const zeros = Buffer.alloc(BOMB);
      for (const kind of KINDS)
        bombs.set(kind, compress(kind, kind === 'xz' || kind === 'bzip2' ? zeros.subarray(0, 64 << 20) : zeros));
    }, 120_000);

    for (const kind of KINDS) {
      it(`${kind}: a consumer refusing after 8 MiB stops the decoder, and the event loop keeps running`, async () => {
        const bomb = bombs.get(kind)!;
        let seen = 0;
        const decoder = createDecompressor(kind);
        const { result, stallMs } = await longestStall(() =>
          pipeline(
            chunked(bomb),
            decoder,
            new Writable({
              write(c: Buffer, _e, cb) {
                seen += c.length;
                cb(seen > 8 << 20 ? new Error('over the cap') : null);
              },
            }),
          ),
        );
        expect(result.status).toBe('rejected');
        expect((result as PromiseRejectedResult).reason.message).toBe('over the cap');
        expect(decoder.destroyed).toBe(true);
        // Decoded ahead of the consumer: at most a slice and the stream buffers, not the bomb.
        expect(seen).toBeLessThan(16 << 20);
        expect(stallMs).toBeLessThan(500);
        // Nothing keeps producing after the refusal.
        let later = 0;
        decoder.on('data', (c: Buffer) => (later += c.length));
        await new Promise((r) => setTimeout(r, 200));
        expect(later).toBe(0);
      });
    }

    it('bzip2 and zstd decode a slow consumer without running ahead of it', async () => {
      for (const kind of ['bzip2', 'zstd'] as const) {
        const decoder = createDecompressor(kind);
        Readable.from([bombs.get(kind)!]).pipe(decoder);
        await new Promise((r) => setTimeout(r, 500));
        // Nobody reads: what was decoded sits in buffers bounded by the decoder, not by the bomb.
        expect(decoder.readableLength).toBeLessThan(8 << 20);
        decoder.destroy();
      }
    });
  });
});
