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
    case 'lz4':
      return lz4(data);
  }
}

/** The `lz4` command-line tool (liblz4, the reference implementation) with these frame options. */
const lz4 = (data: Buffer, args: string[] = []) =>
  execFileSync('lz4', ['-c', '-q', ...args], { input: data, maxBuffer: 1 << 30 });

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

const KINDS = ['gzip', 'br', 'xz', 'zstd', 'bzip2', 'lz4'] as const;

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

  it('lz4: every frame option liblz4 writes (linked blocks, block and content checksums, sizes, HC, concatenated and skippable frames)', async () => {
    const decode = async (packed: Buffer, size = 1000) => {
      const out: Buffer[] = [];
      await pipeline(chunked(packed, size), createDecompressor('lz4'), async (source: AsyncIterable<Buffer>) => {
        for await (const c of source) out.push(c);
      });
      return Buffer.concat(out);
    };
    for (const args of [
      ['-BD'],
      ['-BD', '-B4'],
      ['-BX', '--content-size'],
      ['-B5', '--no-frame-crc'],
      ['-9', '-BD'],
      ['-1', '-B6'],
    ])
      expect((await decode(lz4(data, args), 7919)).equals(data), args.join(' ')).toBe(true);
    // Incompressible data is stored in uncompressed blocks.
    const noise = randomBytes(300_000);
    expect((await decode(lz4(noise, ['-B4']))).equals(noise)).toBe(true);
    // Frames one after another, and a skippable frame (user data) between them.
    const skippable = Buffer.concat([Buffer.from([0x52, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
    const two = Buffer.concat([lz4(Buffer.from('one ')), skippable, lz4(Buffer.from('two'))]);
    expect((await decode(two, 1)).toString()).toBe('one two');
    expect((await decode(lz4(Buffer.alloc(0)))).length).toBe(0);
  });

  it('lz4: refuses what is not a well-formed frame, with a message', async () => {
    const refuse = (packed: Buffer) =>
      pipeline(Readable.from([packed]), createDecompressor('lz4'), new Writable({ write: (_c, _e, cb) => cb() }));
    const good = lz4(Buffer.alloc(100_000, 'ab'));
    await expect(refuse(Buffer.from('LZIPnot lz4 at all'))).rejects.toThrow(/bad magic/);
    const badVersion = Buffer.from(good);
    badVersion[4] = (badVersion[4]! & 0x3f) | 0x80;
    await expect(refuse(badVersion)).rejects.toThrow(/version/);
    const dict = Buffer.from(good);
    dict[4] = dict[4]! | 0x01;
    await expect(refuse(dict)).rejects.toThrow(/dictionary|descriptor/);
    // A block claiming more than the frame's block size.
    const huge = Buffer.from(good);
    huge.writeUInt32LE(0x7fffffff, 7);
    await expect(refuse(huge)).rejects.toThrow(/larger than the frame allows/);
    // A match reaching before the start of the data.
    const frame = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82]);
    const block = Buffer.from([0x1f, 0x61, 0x10, 0x00, 0x00]); // 1 literal, offset 16, then end
    const size = Buffer.alloc(4);
    size.writeUInt32LE(block.length);
    await expect(refuse(Buffer.concat([frame, size, block, Buffer.alloc(4)]))).rejects.toThrow(/before the start/);
  });

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

    it('bzip2, zstd and lz4 decode a slow consumer without running ahead of it', async () => {
      for (const kind of ['bzip2', 'zstd', 'lz4'] as const) {
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
