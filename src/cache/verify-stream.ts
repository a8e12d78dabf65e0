/**
 * The CPU work of a NAR upload: decompress (compression.ts), check the NAR's structure
 * (nix/nar.ts) and size, SHA-256 it (NarHash/NarSize), and write what is stored to the blob's
 * spool file, hashing that too (FileHash/FileSize; verify-spool.ts). What is stored is zstd: a
 * zstd upload is stored as sent (its decoded bytes are what was verified, and readers decode it
 * with the same library; skippable frames, which decoders ignore, are refused: zstd-frames.ts), in
 * one loop per chunk (verify-zstd.ts); anything else is decoded and recompressed through a chain
 * of streams. It runs on a verifier thread (verify-worker.ts) or,
 * where no thread can be started, in the calling thread (verify-pool.ts); either way the bytes
 * it is given flow with backpressure, and its output never goes back through the event loop.
 */
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { PassThrough, Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FloeError, InsufficientStorage, InvalidInput, TooLarge } from '../errors.js';
import { isStorageFull } from '../storage/failures.js';
import { NarValidator } from '../nix/nar.js';
import { type Compression, createDecompressor } from './compression.js';
import { compressWhole, createStorageCompressor } from './storage-compressor.js';
import { Spool } from './verify-spool.js';
import { ZstdAsSent } from './verify-zstd.js';

/**
 * When nobody declared the NAR's size (Nix's `PUT nar/…`), a NAR over UNDECLARED_NAR_FLOOR_BYTES
 * that is also more than MAX_EXPANSION_RATIO times the compressed bytes received so far is refused
 * as a bomb. Real NARs compress 2-20x; xz or zstd at 1000x means a file of zeros.
 */
export const UNDECLARED_NAR_FLOOR_BYTES = 64 << 20;
export const MAX_EXPANSION_RATIO = 1000;

export { EARLY_SYNC_BYTES } from './verify-spool.js';

/**
 * The most NAR bytes an upload may decode to, given what was received so far: the server's limit,
 * the size the client declared (batch uploads and upstream narinfos declare NarSize; Nix's
 * `PUT nar/` declares nothing, so there the expansion ratio bounds it). Returns why, if over.
 */
export function narSizeProblem(
  size: number,
  received: number,
  maxNarBytes: number,
  declaredNarSize: number | undefined,
): FloeError | undefined {
  if (size > maxNarBytes) return new TooLarge(`NAR is larger than the limit of ${maxNarBytes} bytes`);
  if (declaredNarSize !== undefined) {
    if (size <= declaredNarSize) return undefined;
    return new InvalidInput('narSize', `mismatch: the NAR is larger than the declared ${declaredNarSize} bytes`);
  }
  const allowed = Math.max(UNDECLARED_NAR_FLOOR_BYTES, MAX_EXPANSION_RATIO * received);
  if (size > allowed) {
    return new TooLarge(
      `NAR expands to more than ${MAX_EXPANSION_RATIO} times the ${received} compressed bytes received ` +
        `(and over ${UNDECLARED_NAR_FLOOR_BYTES} bytes): refused as a decompression bomb; ` +
        'upload with `floe push`, which declares the size',
    );
  }
  return undefined;
}

/** What a verification is told: all of it is known before the first byte is decoded. */
export interface VerifyParams {
  /** Sniffed from the body's first bytes by the caller. */
  compression: Compression;
  maxNarBytes: number;
  /** The NarSize the client or upstream declared: decoding stops as soon as the NAR passes it. */
  declaredNarSize?: number;
  /** The body's Content-Length, when no NarSize was declared (to pick the compressor). */
  bodyBytes?: number;
  /** The blob writer's spool file (BlobWriter.file): it exists and is written from its start. */
  file: string;
  /** BlobWriter.syncFile: fsync the file before the verification ends (it is linked into place as is). */
  syncFile: boolean;
}

export interface VerifyResult {
  narHash: Uint8Array;
  narSize: number;
  /** SHA-256 and size of the zstd bytes produced (what is stored and served). */
  fileHash: Uint8Array;
  fileSize: number;
}

class NarCheck extends Transform {
  readonly validator = new NarValidator();
  readonly sha = createHash('sha256');
  size = 0;
  constructor(
    private readonly problem: (size: number) => FloeError | undefined,
    private readonly inspect?: (chunk: Buffer) => void,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.size += chunk.length;
      // Checked before the bytes are used: the decoder is destroyed as soon as this fails.
      const problem = this.problem(this.size);
      if (problem) throw problem;
      this.inspect?.(chunk);
      this.validator.push(chunk);
      this.sha.update(chunk);
      cb(null, chunk);
    } catch (err) {
      cb(err as Error);
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.validator.end();
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }
}

/**
 * Writes the bytes that are stored to the spool file (which hashes and counts them), taking the
 * next chunk only once the file took this one.
 */
class Stored extends Transform {
  constructor(readonly spool: Spool) {
    super();
    // A failed write ends the verification (writes are not waited for one by one, see Spool).
    spool.onError((err) => this.destroy(err));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const written = this.spool.write(chunk);
    if (written) written.then(() => cb(), cb);
    else cb();
  }
  override _flush(cb: TransformCallback): void {
    // Ended only once closed: with `flush` the fsync runs as the file closes.
    this.spool.close().then(() => cb(), cb);
  }
}

/**
 * Uncompressed NARs up to this size, with their size declared, are verified by `verifyWhole` in
 * the calling thread. A small path's bytes cost nothing to check (a few µs of hashing, parsing and
 * one-call compression with the thread's reused context); what cost its upload most was the trip
 * through a verifier thread and its streams (≈ 1.2 ms of that thread's CPU and several messages,
 * timers and buffers on the event loop per path, in a push of many small paths). At this size the
 * work held on the event loop stays well under a millisecond.
 */
export const WHOLE_VERIFY_BYTES = 64 << 10;

/**
 * The verification of an uncompressed NAR held whole in memory: the same checks as NarVerification
 * (structure, size against the declared NarSize and the server's limit, SHA-256), then zstd in one
 * call, written to the spool file in one write (fsynced when `params.syncFile`).
 */
export async function verifyWhole(params: VerifyParams, nar: Buffer): Promise<VerifyResult> {
  if (params.compression !== 'none') throw new Error('verifyWhole takes uncompressed NARs only');
  const problem = narSizeProblem(nar.length, nar.length, params.maxNarBytes, params.declaredNarSize);
  if (problem) throw problem;
  const validator = new NarValidator();
  validator.push(nar);
  validator.end();
  const narHash = createHash('sha256').update(nar).digest();
  const stored = compressWhole(nar);
  const fileHash = createHash('sha256').update(stored).digest();
  try {
    // The writer made the file ('r+' never creates one: an aborted upload's file stays gone).
    await writeFile(params.file, stored, { flag: 'r+', flush: params.syncFile });
  } catch (err) {
    if (isStorageFull(err)) throw new InsufficientStorage({ cause: err });
    throw err;
  }
  return {
    narHash: new Uint8Array(narHash),
    narSize: nar.length,
    fileHash: new Uint8Array(fileHash),
    fileSize: stored.length,
  };
}

/** The end of the pipeline when nothing further is done with the bytes. */
function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, cb) => cb() });
}

/** The decoding and storing of one upload, fed chunk by chunk (ZstdAsSent, or StreamChain below). */
interface VerificationWork {
  readonly result: Promise<VerifyResult>;
  /** Resolves once the chunk was taken in; rejects once the work has failed. */
  write(chunk: Buffer): Promise<void>;
  end(): void;
  abort(reason: Error): void;
}

/** Any other compression: decoded, checked and recompressed through a chain of streams. */
class StreamChain implements VerificationWork {
  private readonly input = new PassThrough({ highWaterMark: 256 << 10 });
  readonly result: Promise<VerifyResult>;

  constructor(
    compression: Compression,
    sizeHint: number | undefined,
    spool: Spool,
    allowed: (size: number) => FloeError | undefined,
    inspect?: (chunk: Buffer) => void,
  ) {
    const check = new NarCheck(allowed, inspect);
    const compressor = createStorageCompressor(sizeHint);
    const stored = new Stored(spool);
    this.result = pipeline(this.input, createDecompressor(compression), check, compressor, stored, discard()).then(
      () => ({
        narHash: new Uint8Array(check.sha.digest()),
        narSize: check.size,
        fileHash: new Uint8Array(spool.sha.digest()),
        fileSize: spool.size,
      }),
    );
  }

  write(chunk: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => this.input.write(chunk, (err) => (err ? reject(err) : resolve())));
  }

  end(): void {
    this.input.end();
  }

  abort(reason: Error): void {
    this.input.destroy(reason);
  }
}

/**
 * One upload's verification. `write` resolves once the chunk has been taken in (so callers feed
 * no faster than decoding goes); `result` settles when the stream ends or fails. Errors are
 * FloeErrors with the message the client sees (decoder errors say what could not be decoded).
 */
export class NarVerification {
  private received = 0;
  private aborted: Error | undefined;
  private readonly work: VerificationWork;
  readonly result: Promise<VerifyResult>;

  constructor(params: VerifyParams, inspect?: (chunk: Buffer) => void) {
    const allowed = (size: number) => narSizeProblem(size, this.received, params.maxNarBytes, params.declaredNarSize);
    const spool = new Spool(params.file, params.syncFile);
    // zstd is stored as sent: one loop, no streams (verify-zstd.ts).
    this.work =
      params.compression === 'zstd'
        ? new ZstdAsSent(spool, allowed, inspect)
        : new StreamChain(params.compression, params.declaredNarSize ?? params.bodyBytes, spool, allowed, inspect);
    this.result = this.work.result.catch((err: unknown) => {
      spool.destroy();
      if (err instanceof FloeError) throw err;
      if (this.aborted) throw this.aborted;
      // Our side failed (the spool's disk is full, an I/O error): the server's fault, not
      // "could not decompress". System call errors carry `syscall`; decoders' do not.
      if (isStorageFull(err)) throw new InsufficientStorage({ cause: err });
      if (typeof (err as NodeJS.ErrnoException).syscall === 'string') throw err;
      // Decoder errors carry library-specific messages; say what failed in terms the client can act on.
      const why = (err as Error).message;
      throw new InvalidInput('NAR', `could not decompress the body as ${params.compression}: ${why}`);
    });
    // Failures are reported through `result` (and `write`), never as an unhandled rejection.
    this.result.catch(() => undefined);
  }

  /** Resolves when the chunk was taken in; rejects once the verification has failed (with its error). */
  write(chunk: Buffer): Promise<void> {
    this.received += chunk.length;
    return this.work.write(chunk).catch((err: unknown) =>
      this.result.then(() => {
        throw err;
      }),
    );
  }

  end(): Promise<VerifyResult> {
    this.work.end();
    return this.result;
  }

  /** Stops the work (the upload failed elsewhere, or its client went away). */
  abort(reason: Error): void {
    this.aborted ??= reason;
    this.work.abort(reason);
  }
}
