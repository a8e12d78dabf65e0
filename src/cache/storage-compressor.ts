/**
 * The zstd compressor every stored NAR (and build log) goes through: level 3, readable by Nix
 * >= 2.4. Most store paths are small, and a fresh streaming context costs far more than their
 * bytes do: it allocates level 3's tables for an unknown input size (a 2 MiB window and hash
 * chains), about 1.7 ms of CPU and as much garbage per path, which was most of the server's work in
 * a push of many small paths. So the input is held until it passes ONE_SHOT_BYTES: a NAR that ends
 * before is compressed in one call with the context this thread keeps (zstd sizes its tables to
 * the input it is given and reuses them: a few µs for a small NAR). A larger one switches to
 * streaming, on zstd's worker threads when it is known to be large.
 */
import { createRequire } from 'node:module';
import { Transform, type TransformCallback } from 'node:stream';

type ZstdBinding = typeof import('zstd-napi/binding.js');
type CompressionContext = InstanceType<ZstdBinding['CCtx']>;
type EndDirective = import('zstd-napi/binding.js').EndDirective;

// The package's low-level binding (documented, CommonJS around the native module).
const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as ZstdBinding;

const LEVEL = 3;
/** Inputs up to this size are compressed in one call; larger ones stream. */
export const ONE_SHOT_BYTES = 1 << 20;
/** Inputs declared at least this large stream on zstd's worker threads (off the calling thread). */
export const THREADED_COMPRESSION_BYTES = 8 << 20;
const OUT_BYTES = zstd.cStreamOutSize();
const NOTHING = Buffer.alloc(0);

/** This thread's one-shot context: each verifier thread has its own (modules are per thread). */
let shared: CompressionContext | undefined;

function context(workers = 0): CompressionContext {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.compressionLevel, LEVEL);
  if (workers > 0) cctx.setParameter(zstd.CParameter.nbWorkers, workers);
  return cctx;
}

/** `data` as one zstd frame, with this thread's reused context. */
export function compressWhole(data: Uint8Array): Buffer {
  shared ??= context();
  const out = Buffer.allocUnsafe(zstd.compressBound(data.length));
  return out.subarray(0, shared.compress2(out, data));
}

class StorageCompressor extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private stream: CompressionContext | undefined;
  private out = NOTHING;

  constructor(private readonly threaded: boolean) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      if (!this.stream && this.heldBytes + chunk.length <= ONE_SHOT_BYTES) {
        // A small view of a large buffer would keep all of it alive while held: such views are copied.
        const pinsMore = chunk.buffer.byteLength > 4 * chunk.length + 65_536;
        this.held.push(pinsMore ? Buffer.from(chunk) : chunk);
        this.heldBytes += chunk.length;
        done();
        return;
      }
      if (!this.stream) {
        this.stream = context(this.threaded ? 2 : 0);
        for (const h of this.held) this.compress(h, zstd.EndDirective.continue);
        this.held = [];
      }
      this.compress(chunk, zstd.EndDirective.continue);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.stream) this.compress(NOTHING, zstd.EndDirective.end);
      else this.push(compressWhole(this.held.length === 1 ? this.held[0]! : Buffer.concat(this.held)));
      this.held = [];
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  /** Feeds `chunk` to the streaming context and passes on what it produces (as zstd-napi's CompressStream does). */
  private compress(chunk: Buffer, end: EndDirective): void {
    const flushing = end !== zstd.EndDirective.continue;
    let rest = chunk;
    for (;;) {
      if (this.out.length === 0) this.out = Buffer.allocUnsafe(OUT_BYTES);
      const [left, produced, consumed] = this.stream!.compressStream2(this.out, rest, end);
      if (produced > 0) {
        // What was pushed stays someone else's: the next output goes to a new buffer.
        this.push(this.out.subarray(0, produced));
        this.out = NOTHING;
      }
      rest = rest.subarray(consumed);
      if (rest.length === 0 && (!flushing || left === 0)) return;
    }
  }
}

/**
 * A compressor for one stored NAR. `sizeHint`: what the upload declared, if anything (it only
 * decides whether a large NAR streams on zstd's threads; small ones never start them: creating
 * the thread pool costs more than compressing them).
 */
export function createStorageCompressor(sizeHint?: number): Transform {
  return new StorageCompressor(sizeHint !== undefined && sizeHint >= THREADED_COMPRESSION_BYTES);
}
