/**
 * Decoders that do bounded work per step, for bodies whose decoded size nobody vouches for. A
 * decompression bomb expands a few kilobytes into gigabytes: a decoder that turns a whole input
 * chunk into output in one go (zstd-napi's DecompressStream, lzma-native) blocks the event loop or
 * fills memory before anyone downstream can say "too large", and keeps working after it did. These
 * produce output only as fast as it is consumed, yield to the event loop between slices, and stop
 * (no further work is started) as soon as they are destroyed.
 */
import { createRequire } from 'node:module';
import { Duplex, type Transform } from 'node:stream';

const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

/** Output produced before letting the event loop run other work. */
const SLICE_OUTPUT_BYTES = 1 << 20;

/**
 * zstd, one `ZSTD_decompressStream` call (at most ~128 KiB of output) at a time. Stops when the
 * readable side is full (resumes on read) and yields with setImmediate after every slice.
 */
export class ZstdDecoder extends Duplex {
  private readonly dctx = new zstd.DCtx();
  private readonly outSize = zstd.dStreamOutSize();
  private input: Buffer | undefined;
  private inputDone: ((err?: Error | null) => void) | undefined;
  private inFrame = false;
  private scheduled = false;
  private out: Buffer | undefined;

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.input = chunk;
    this.inputDone = cb;
    this.pump();
  }

  override _read(): void {
    this.pump();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.inFrame) {
      cb(new Error('the zstd stream ends in the middle of a frame'));
      return;
    }
    this.push(null);
    cb();
  }

  private pump(): void {
    if (this.scheduled || this.destroyed) return;
    let produced = 0;
    while (this.input) {
      // A buffer is handed on with what it holds, so a new one is needed only after a push.
      const out = (this.out ??= Buffer.allocUnsafe(this.outSize));
      let ret: number, written: number, consumed: number;
      try {
        [ret, written, consumed] = this.dctx.decompressStream(out, this.input);
      } catch (err) {
        this.finishInput(err as Error);
        return;
      }
      this.input = this.input.subarray(consumed);
      let more = true;
      if (written > 0) {
        this.out = undefined;
        more = this.push(out.subarray(0, written));
      }
      if (this.input.length === 0 && (written < out.length || ret === 0)) {
        this.inFrame = ret !== 0;
        this.finishInput();
        return;
      }
      if (!more) return; // _read resumes
      produced += written;
      if (produced >= SLICE_OUTPUT_BYTES) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
        return;
      }
    }
  }

  private finishInput(err?: Error): void {
    const cb = this.inputDone!;
    this.input = undefined;
    this.inputDone = undefined;
    cb(err ?? null);
  }
}

/**
 * Wraps a decoder that works off the event loop but ignores backpressure (lzma-native decodes each
 * written chunk to the end on the threadpool, however much it expands, and carries on after a
 * destroy). Input is fed in slices sized so one slice yields about SLICE_OUTPUT_BYTES at the ratio
 * seen so far; the next slice is fed only once the output of the last one has been taken.
 */
export class SlicedDecoder extends Duplex {
  private sliceBytes = 4096;
  private inBytes = 0;
  private outBytes = 0;
  private waitingForRead: (() => void) | undefined;
  private sliceInFlight = false;

  constructor(private readonly inner: Transform) {
    super();
    inner.on('data', (d: Buffer) => {
      this.outBytes += d.length;
      this.push(d);
    });
    inner.on('error', (err) => this.destroy(err));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const feed = (rest: Buffer): void => {
      if (this.destroyed) {
        cb();
        return;
      }
      if (rest.length === 0) {
        cb();
        return;
      }
      if (this.readableLength >= this.readableHighWaterMark) {
        this.waitingForRead = () => feed(rest);
        return;
      }
      const slice = rest.subarray(0, this.sliceBytes);
      this.inBytes += slice.length;
      this.sliceInFlight = true;
      this.inner.write(slice, () => {
        this.sliceInFlight = false;
        if (this.destroyed) {
          this.inner.destroy();
          return cb();
        }
        // The next slice aims at SLICE_OUTPUT_BYTES of output at the ratio observed so far.
        const ratio = Math.max(1, this.outBytes / this.inBytes);
        this.sliceBytes = Math.max(256, Math.min(256 << 10, Math.floor(SLICE_OUTPUT_BYTES / ratio)));
        setImmediate(() => feed(rest.subarray(slice.length)));
      });
    };
    feed(chunk);
  }

  override _read(): void {
    const resume = this.waitingForRead;
    this.waitingForRead = undefined;
    resume?.();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.once('end', () => {
      this.push(null);
      cb();
    });
    this.inner.end();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A slice still being decoded finishes on the threadpool (its write callback destroys the
    // inner decoder then); nothing more is fed after it.
    if (!this.sliceInFlight) this.inner.destroy();
    cb(err);
  }
}
