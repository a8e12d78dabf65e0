/**
 * LZ4 frame decoding (what `nix copy --to '…?compression=lz4'` sends: libarchive's lz4 filter, the
 * frame format of lz4's doc/lz4_Frame_format.md). No npm package decodes frames as a stream:
 * lz4-napi 2.10 (lz4_flex) decodes a whole frame from one buffer into one buffer, with no bound on
 * the output, so an upload would be held in memory and a few MB could expand into gigabytes first.
 * The format is small, so it is decoded here, one block at a time: a block decodes to at most the
 * frame's block size (≤ 4 MiB, checked while decoding), output follows the consumer (nothing more
 * is decoded while the readable side is full), the event loop gets a turn between slices, and a
 * destroyed decoder does no more work. Checksums (xxHash32) are not verified: the NAR hash is.
 */
import { Duplex } from 'node:stream';

const FRAME_MAGIC = 0x184d2204;
/** Skippable frames (0x184D2A50–0x184D2A5F) carry user data that decoders skip. */
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
/** Linked blocks may copy from the previous 64 KiB of output. */
const WINDOW = 64 << 10;
/** Output produced before letting the event loop run other work. */
const SLICE_OUTPUT_BYTES = 1 << 20;

export class Lz4FormatError extends Error {}

interface Frame {
  linked: boolean;
  blockChecksums: boolean;
  contentChecksum: boolean;
  blockMax: number;
}

type State = { at: 'magic' } | { at: 'block'; frame: Frame } | { at: 'skip'; left: number };

/** Decodes one LZ4 block into `dst` from `start`, with `dst[0, start)` as the window. Returns the end. */
export function decodeBlock(src: Uint8Array, dst: Uint8Array, start: number, limit: number): number {
  let i = 0;
  let o = start;
  const end = src.length;
  const byte = () => {
    if (i >= end) throw new Lz4FormatError('an LZ4 block ends in the middle of a sequence');
    return src[i++]!;
  };
  for (;;) {
    const token = byte();
    let literals = token >>> 4;
    if (literals === 15) {
      let b: number;
      do {
        b = byte();
        literals += b;
      } while (b === 255);
    }
    if (literals > end - i) throw new Lz4FormatError('an LZ4 block ends in the middle of its literals');
    if (literals > limit - o) throw new Lz4FormatError('an LZ4 block decodes to more than the frame allows');
    dst.set(src.subarray(i, i + literals), o);
    i += literals;
    o += literals;
    if (i === end) return o; // the last sequence has literals only
    const offset = byte() | (byte() << 8);
    if (offset === 0 || offset > o) throw new Lz4FormatError('an LZ4 match points before the start of the data');
    let length = token & 15;
    if (length === 15) {
      let b: number;
      do {
        b = byte();
        length += b;
      } while (b === 255);
    }
    length += 4;
    if (length > limit - o) throw new Lz4FormatError('an LZ4 block decodes to more than the frame allows');
    let from = o - offset;
    if (offset >= length) {
      dst.copyWithin(o, from, from + length);
      o += length;
    } else {
      // Overlapping: the match repeats the last `offset` bytes.
      for (const stop = o + length; o < stop; ) dst[o++] = dst[from++]!;
    }
  }
}

export class Lz4Decoder extends Duplex {
  private chunks: Buffer[] = [];
  private queued = 0;
  private inputDone: ((err?: Error | null) => void) | undefined;
  private state: State = { at: 'magic' };
  /** For linked blocks: how much of the previous output (≤ 64 KiB) sits at the start of `scratch`. */
  private windowLength = 0;
  private scratch: Buffer | undefined;
  private finished = false;
  /** False once push() said the readable side is full, until the consumer asks again (_read). */
  private wanted = true;
  private scheduled = false;
  private ended = false;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    this.queued += chunk.length;
    this.inputDone = cb;
    this.pump();
  }

  override _read(): void {
    this.wanted = true;
    this.pump();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.ended = true;
    this.inputDone = cb;
    this.pump();
  }

  /** The first `n` queued bytes as one buffer (undefined if fewer are queued); `consume` drops them. */
  private queuedBytes(n: number): Buffer | undefined {
    if (this.queued < n) return undefined;
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private consume(n: number): void {
    this.queued -= n;
    while (n > 0) {
      const head = this.chunks[0]!;
      if (head.length <= n) {
        this.chunks.shift();
        n -= head.length;
      } else {
        this.chunks[0] = head.subarray(n);
        n = 0;
      }
    }
  }

  private pump(): void {
    if (this.scheduled || this.destroyed || this.finished) return;
    let produced = 0;
    try {
      for (;;) {
        const step = this.step();
        if (step === 'need-input') break;
        if (step === 'full') return; // _read resumes
        produced += step;
        if (produced >= SLICE_OUTPUT_BYTES) {
          this.scheduled = true;
          setImmediate(() => {
            this.scheduled = false;
            this.pump();
          });
          return;
        }
      }
    } catch (err) {
      if (this.inputDone) this.release(err as Error);
      else this.destroy(err as Error);
      return;
    }
    if (this.ended) {
      if (this.queued > 0 || this.state.at !== 'magic') {
        this.release(new Lz4FormatError('the LZ4 stream ends in the middle of a frame'));
        return;
      }
      this.finished = true;
      this.push(null);
    }
    // What is queued is less than the next piece needs (at most a block): ask for more.
    this.release();
  }

  /** Hands the pending write (or final) callback back. */
  private release(err?: Error): void {
    const cb = this.inputDone;
    this.inputDone = undefined;
    cb?.(err ?? null);
  }

  /** One piece of work: bytes of output pushed, or why it stopped. */
  private step(): number | 'need-input' | 'full' {
    const s = this.state;
    if (s.at === 'skip') {
      const n = Math.min(s.left, this.queued);
      if (n === 0) return 'need-input';
      this.consume(n);
      this.state = s.left === n ? { at: 'magic' } : { at: 'skip', left: s.left - n };
      return 0;
    }
    if (s.at === 'magic') {
      const head = this.queuedBytes(4);
      if (!head) return 'need-input';
      const magic = head.readUInt32LE(0);
      if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
        const sized = this.queuedBytes(8);
        if (!sized) return 'need-input';
        this.consume(8);
        this.state = { at: 'skip', left: sized.readUInt32LE(4) };
        return 0;
      }
      if (magic !== FRAME_MAGIC) throw new Lz4FormatError('not an LZ4 frame (bad magic number)');
      const flg = this.queuedBytes(5)?.[4];
      if (flg === undefined) return 'need-input';
      const descriptorLength = 2 + (flg & 0x08 ? 8 : 0) + (flg & 0x01 ? 4 : 0) + 1;
      const d = this.queuedBytes(4 + descriptorLength);
      if (!d) return 'need-input';
      const bd = d[5]!;
      if (flg >>> 6 !== 1) throw new Lz4FormatError('unsupported LZ4 frame version');
      if (flg & 0x02 || bd & 0x8f) throw new Lz4FormatError('reserved bits are set in the LZ4 frame descriptor');
      if (flg & 0x01) throw new Lz4FormatError('LZ4 frames that need a dictionary are not supported');
      const sizeCode = (bd >>> 4) & 7;
      if (sizeCode < 4) throw new Lz4FormatError('invalid LZ4 block size');
      this.consume(4 + descriptorLength);
      this.windowLength = 0;
      this.scratch = undefined;
      this.state = {
        at: 'block',
        frame: {
          linked: (flg & 0x20) === 0,
          blockChecksums: (flg & 0x10) !== 0,
          contentChecksum: (flg & 0x04) !== 0,
          blockMax: 1 << (8 + 2 * sizeCode),
        },
      };
      return 0;
    }
    const { frame } = s;
    const sizeField = this.queuedBytes(4);
    if (!sizeField) return 'need-input';
    const word = sizeField.readUInt32LE(0);
    if (word === 0) {
      // EndMark, then the content checksum if the frame has one.
      const trailer = 4 + (frame.contentChecksum ? 4 : 0);
      if (this.queued < trailer) return 'need-input';
      this.consume(trailer);
      this.state = { at: 'magic' };
      return 0;
    }
    const stored = (word & 0x80000000) !== 0;
    const size = word & 0x7fffffff;
    if (size > frame.blockMax) throw new Lz4FormatError('an LZ4 block is larger than the frame allows');
    if (!this.wanted) return 'full';
    const total = 4 + size + (frame.blockChecksums ? 4 : 0);
    const block = this.queuedBytes(total);
    if (!block) return 'need-input';
    const src = block.subarray(4, 4 + size);
    // One scratch buffer per frame: [window | this block]; the output is copied out of it, so what
    // waits in the readable buffer is exactly its own size (a 1-byte block pins 1 byte, not 4 MiB).
    this.scratch ??= Buffer.allocUnsafe(WINDOW + frame.blockMax);
    const scratch = this.scratch;
    let end: number;
    if (stored) {
      src.copy(scratch, this.windowLength);
      end = this.windowLength + size;
    } else {
      end = decodeBlock(src, scratch, frame.linked ? this.windowLength : 0, this.windowLength + frame.blockMax);
    }
    const begin = stored || frame.linked ? this.windowLength : 0;
    const out = Buffer.from(scratch.subarray(begin, end));
    this.consume(total);
    if (frame.linked) {
      const keep = Math.min(WINDOW, end);
      scratch.copyWithin(0, end - keep, end);
      this.windowLength = keep;
    }
    if (out.length === 0) return 0;
    this.wanted = this.push(out);
    return out.length;
  }
}
