/**
 * Walks the frame and block headers of a zstd stream (RFC 8878 §3.1) without decoding it. A
 * zstd upload is stored and served as sent (verify-stream.ts), so what the decoder ignores must be
 * refused here: skippable frames (§3.1.2) decode to nothing, yet would be kept in the blob every
 * reader of that NAR hash downloads: later uploaders' copies, other orgs' readers and all.
 * Only standard frames, back to back, are accepted. Pure and incremental: `push` any chunking.
 */
import { InvalidInput } from '../errors.js';

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const BLOCK_TYPE_RLE = 1;
const BLOCK_TYPE_RESERVED = 3;

type State =
  | { kind: 'magic' }
  | { kind: 'descriptor' }
  | { kind: 'block-header' }
  /** Bytes to pass over, then `next`. */
  | { kind: 'skip'; left: number; next: 'block-header' | 'magic' };

const HEADER_BYTES: Record<State['kind'], number> = { magic: 4, descriptor: 1, 'block-header': 3, skip: 0 };

export class ZstdFrameWalker {
  private state: State = { kind: 'magic' };
  private readonly header = Buffer.alloc(4);
  private have = 0;
  private frames = 0;
  /** After the last block of the current frame: its checksum (if any), then the next frame. */
  private checksumBytes = 0;

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      const state = this.state;
      if (state.kind === 'skip') {
        const n = Math.min(state.left, chunk.length - at);
        at += n;
        state.left -= n;
        if (state.left === 0) this.state = { kind: state.next };
        continue;
      }
      const need = HEADER_BYTES[state.kind];
      const n = Math.min(need - this.have, chunk.length - at);
      chunk.copy(this.header, this.have, at, at + n);
      this.have += n;
      at += n;
      if (this.have < need) return;
      this.have = 0;
      this.onHeader(state.kind);
    }
  }

  /** The stream ended: it must end between frames, after at least one. */
  end(): void {
    const between = this.state.kind === 'magic' && this.have === 0;
    if (!between || this.frames === 0)
      throw new InvalidInput('NAR', 'the zstd stream ends in the middle of a frame (truncated upload?)');
  }

  private onHeader(kind: 'magic' | 'descriptor' | 'block-header'): void {
    const h = this.header;
    if (kind === 'magic') {
      const magic = h.readUInt32LE(0);
      if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC)
        throw new InvalidInput(
          'NAR',
          'the zstd stream holds a skippable frame (data no decoder returns); upload plain zstd frames only',
        );
      if (magic !== ZSTD_MAGIC)
        throw new InvalidInput('NAR', `the zstd stream holds something other than zstd frames after ${this.frames}`);
      this.frames++;
      this.state = { kind: 'descriptor' };
      return;
    }
    if (kind === 'descriptor') {
      const d = h[0]!;
      const contentSizeFlag = d >> 6;
      const singleSegment = (d >> 5) & 1;
      if ((d >> 3) & 1) throw new InvalidInput('NAR', 'a zstd frame header sets its reserved bit');
      this.checksumBytes = (d >> 2) & 1 ? 4 : 0;
      const dictionaryIdBytes = [0, 1, 2, 4][d & 3]!;
      const windowBytes = singleSegment ? 0 : 1;
      const contentSizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
      const rest = windowBytes + dictionaryIdBytes + contentSizeBytes;
      this.state = rest > 0 ? { kind: 'skip', left: rest, next: 'block-header' } : { kind: 'block-header' };
      return;
    }
    const header = h[0]! | (h[1]! << 8) | (h[2]! << 16);
    const last = header & 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === BLOCK_TYPE_RESERVED) throw new InvalidInput('NAR', 'a zstd block has the reserved block type');
    const content = type === BLOCK_TYPE_RLE ? 1 : size;
    const after = last ? content + this.checksumBytes : content;
    const next = last ? 'magic' : 'block-header';
    this.state = after > 0 ? { kind: 'skip', left: after, next } : { kind: next };
  }
}
