/**
 * Decompression of uploaded NARs. Nix 2.8 decodes anything but `none`/`br` by sniffing the content
 * (libarchive), so we sniff magic bytes too and only trust the declared name for brotli (no magic).
 */
import { type Duplex, PassThrough } from 'node:stream';
import zlib from 'node:zlib';
import lzma from 'lzma-native';
import { InvalidInput } from '../errors.js';
import { Bzip2Decoder } from './bzip2-decoder.js';
import { SlicedDecoder, ZstdDecoder } from './decoders.js';
import { Lz4Decoder } from './lz4-decoder.js';

export type Compression = 'none' | 'xz' | 'zstd' | 'bzip2' | 'gzip' | 'lz4' | 'br';

/** Maps a narinfo `Compression` value or a file extension to a codec. */
export function compressionFromName(name: string): Compression | undefined {
  switch (name) {
    case 'none':
    case '':
    case 'nar':
      return 'none';
    case 'xz':
    case 'lzma':
      return 'xz';
    case 'zstd':
    case 'zst':
      return 'zstd';
    case 'bzip2':
    case 'bz2':
      return 'bzip2';
    case 'gzip':
    case 'gz':
      return 'gzip';
    case 'lz4':
      return 'lz4';
    case 'br':
      return 'br';
    default:
      return undefined;
  }
}

const NAR_MAGIC_PREFIX = Buffer.from([13, 0, 0, 0, 0, 0, 0, 0, ...Buffer.from('nix-archive-1')]);

/** Decides the codec from the first bytes of the body (at least 21 when the body is that long). */
export function sniffCompression(head: Buffer, declared: Compression | undefined): Compression {
  if (head.subarray(0, NAR_MAGIC_PREFIX.length).equals(NAR_MAGIC_PREFIX)) return 'none';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  // An LZ4 frame, or a skippable frame (0x184D2A5x) before one.
  if (head.length >= 4 && (head.readUInt32LE(0) === 0x184d2204 || head.readUInt32LE(0) >>> 4 === 0x184d2a5))
    return 'lz4';
  if (declared === 'br') return 'br';
  if (head.subarray(0, 4).toString('latin1') === 'LZIP')
    throw new InvalidInput(
      'NAR',
      'lzip is not supported (no maintained lzip decoder for Node): upload with xz, zstd, bzip2, gzip, lz4, brotli or none',
    );
  throw new InvalidInput('NAR', 'body is neither a NAR nor compressed with xz, zstd, bzip2, gzip, lz4 or brotli');
}

/**
 * A decoder whose work follows its consumer: output is produced only as it is read, the event loop
 * is never held for more than a slice, and destroying it stops the work (see decoders.ts). That is
 * what lets a consumer refuse a decompression bomb by its output size before it has expanded.
 */
export function createDecompressor(kind: Compression): Duplex {
  switch (kind) {
    case 'none':
      return new PassThrough();
    case 'xz':
      // Nix compresses with xz preset 6 (8 MiB dictionary; -9 is 64 MiB): a stream asking for more
      // decoder memory than this is not one of Nix's.
      return new SlicedDecoder(lzma.createDecompressor({ memlimit: 128 << 20 }));
    case 'zstd':
      return new ZstdDecoder();
    case 'bzip2':
      return new Bzip2Decoder();
    case 'gzip':
      // zlib works on the threadpool and honours backpressure (and stops when destroyed).
      return zlib.createGunzip();
    case 'lz4':
      return new Lz4Decoder();
    case 'br':
      return zlib.createBrotliDecompress();
  }
}
