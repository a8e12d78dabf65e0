import { randomBytes } from 'node:crypto';
import { constants, zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ZstdFrameWalker } from './zstd-frames.js';

/** A skippable frame (RFC 8878 §3.1.2): magic 0x184D2A5?, a 4-byte size, that many bytes. */
function skippable(data: Buffer, nibble = 0): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a50 + nibble, 0);
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data]);
}

/** Feeds `bytes` in pieces of `size` (the walker must not care how the body was cut). */
function walk(bytes: Buffer, size: number): void {
  const walker = new ZstdFrameWalker();
  for (let at = 0; at < bytes.length; at += size) walker.push(bytes.subarray(at, at + size));
  walker.end();
}

// Compressible and incompressible parts: compressed, raw and RLE blocks; several blocks per frame.
const text = Buffer.from('nix-archive-1 '.repeat(40_000));
const mixed = Buffer.concat([text, randomBytes(300_000), Buffer.alloc(200_000)]);
const withChecksum = zstdCompressSync(mixed, { params: { [constants.ZSTD_c_checksumFlag]: 1 } });
const plain = zstdCompressSync(text, { params: { [constants.ZSTD_c_contentSizeFlag]: 0 } });
const tiny = zstdCompressSync(Buffer.from('x'));

describe('ZstdFrameWalker', () => {
  it('accepts what zstd writes, one frame or several, however the stream is chunked', () => {
    for (const bytes of [withChecksum, plain, tiny, Buffer.concat([withChecksum, tiny, plain])])
      for (const size of [1, 3, 7, 4096, bytes.length]) expect(() => walk(bytes, size)).not.toThrow();
  });

  it('refuses a skippable frame before, between or after the frames', () => {
    const hidden = skippable(Buffer.from('not part of the NAR'), 7);
    for (const bytes of [
      Buffer.concat([hidden, withChecksum]),
      Buffer.concat([withChecksum, hidden, tiny]),
      Buffer.concat([withChecksum, hidden]),
      Buffer.concat([withChecksum, skippable(Buffer.alloc(0))]),
    ])
      for (const size of [1, 5, bytes.length]) expect(() => walk(bytes, size)).toThrow(/skippable frame/);
  });

  it('refuses a stream that stops mid-frame, holds no frame, or continues with other bytes', () => {
    expect(() => walk(withChecksum.subarray(0, withChecksum.length - 1), 1000)).toThrow(/middle of a frame/);
    expect(() => walk(withChecksum.subarray(0, 2), 1)).toThrow(/middle of a frame/);
    expect(() => walk(Buffer.alloc(0), 1)).toThrow(/middle of a frame/);
    expect(() => walk(Buffer.concat([tiny, Buffer.from('trailing')]), 3)).toThrow(/other than zstd frames/);
  });

  it('refuses a reserved block type', () => {
    // Frame header of `tiny` is magic + descriptor + fields; its first block header follows. Set type 3.
    const bytes = Buffer.from(tiny);
    const descriptor = bytes[4]!;
    const single = (descriptor >> 5) & 1;
    const fields = (single ? 0 : 1) + [0, 1, 2, 4][descriptor & 3]! + [single ? 1 : 0, 2, 4, 8][descriptor >> 6]!;
    bytes[5 + fields] = bytes[5 + fields]! | 0b110;
    expect(() => walk(bytes, bytes.length)).toThrow(/reserved block type/);
  });
});
