/**
 * The verification of a zstd upload, which is stored as sent: one loop per received chunk (walk
 * its frames, hash it and write it to the spool file; decode it into one reused buffer; check the
 * NAR's size, structure and hash on each decoded piece) instead of a chain of streams. The chain
 * cost more than the work: a 64 MiB upload spent ≈ 2x the CPU of its hashing, decoding and
 * parsing in stream machinery, and that thread's speed is what a single large upload runs at.
 * Same checks, same order and same bounds as the stream version (verify-stream.ts): decoded bytes
 * are checked against the allowed size before they are used, and after every SLICE_OUTPUT_BYTES
 * of output the loop yields, so an abort (or another upload on the same thread) is heard.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { FloeError } from '../errors.js';
import { NarValidator } from '../nix/nar.js';
import type { Spool } from './verify-spool.js';
import type { VerifyResult } from './verify-stream.js';
import { ZstdFrameWalker } from './zstd-frames.js';

const zstd = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

/** Output decoded before yielding to the event loop (as the stream decoders do). */
const SLICE_OUTPUT_BYTES = 1 << 20;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class ZstdAsSent {
  private readonly frames = new ZstdFrameWalker();
  private readonly validator = new NarValidator();
  private readonly narSha = createHash('sha256');
  private readonly dctx = new zstd.DCtx();
  /** Decoded bytes go here, one piece at a time: each is checked, parsed and hashed, then overwritten. */
  private readonly out = Buffer.allocUnsafe(zstd.dStreamOutSize());
  private narSize = 0;
  /** Whether the input so far ends inside a frame (the decoder wants more). */
  private inFrame = false;
  /** Chunks are taken in order, one at a time (callers may write the next before the last settled). */
  private queue: Promise<void> = Promise.resolve();
  private failure: unknown;
  private settle!: { resolve: (r: VerifyResult) => void; reject: (e: unknown) => void };
  /** Settles once: with the result after `end`, or with the first failure, at once. */
  readonly result = new Promise<VerifyResult>((resolve, reject) => (this.settle = { resolve, reject }));

  constructor(
    private readonly spool: Spool,
    /** Why a NAR of this many bytes is refused, if it is (narSizeProblem with what was received). */
    private readonly problem: (narSize: number) => FloeError | undefined,
    private readonly inspect?: (chunk: Buffer) => void,
  ) {
    this.result.catch(() => undefined);
    spool.onError((err) => this.fail(err));
  }

  /** Resolves once the chunk was verified and handed to the file; rejects once the verification failed. */
  write(chunk: Buffer): Promise<void> {
    return this.step(() => this.take(chunk));
  }

  /** No more input: `result` settles once the last chunk is taken in and the file is closed. */
  end(): void {
    void this.step(() => this.finish()).catch(() => undefined);
  }

  /** Stops the work: the chunk in hand stops at its next slice, and nothing more is taken. */
  abort(reason: Error): void {
    this.fail(reason);
  }

  private step(work: () => Promise<void>): Promise<void> {
    const run = this.queue.then(() => {
      if (this.failure !== undefined) throw this.failure;
      return work();
    });
    this.queue = run.catch((err: unknown) => this.fail(err));
    return run;
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.spool.destroy();
    this.settle.reject(err);
  }

  private async take(chunk: Buffer): Promise<void> {
    // Only standard frames may be kept as sent (skippable ones would be served unverified).
    this.frames.push(chunk);
    const written = this.spool.write(chunk);
    written?.catch(() => undefined); // awaited below, unless this chunk fails first
    let input = chunk;
    let produced = 0;
    for (;;) {
      const [ret, n, consumed] = this.dctx.decompressStream(this.out, input);
      input = input.subarray(consumed);
      if (n > 0) {
        this.narSize += n;
        // Checked before the bytes are used: decoding stops at the first piece past the bound.
        const problem = this.problem(this.narSize);
        if (problem) throw problem;
        const piece = this.out.subarray(0, n);
        this.inspect?.(piece);
        this.validator.push(piece);
        this.narSha.update(piece);
        produced += n;
      }
      if (input.length === 0 && (n < this.out.length || ret === 0)) {
        this.inFrame = ret !== 0;
        break;
      }
      if (produced >= SLICE_OUTPUT_BYTES) {
        produced = 0;
        await nextTurn();
        if (this.failure !== undefined) throw this.failure;
      }
    }
    await written;
  }

  private async finish(): Promise<void> {
    this.frames.end();
    if (this.inFrame) throw new Error('the zstd stream ends in the middle of a frame');
    this.validator.end();
    await this.spool.close();
    this.settle.resolve({
      narHash: new Uint8Array(this.narSha.digest()),
      narSize: this.narSize,
      fileHash: new Uint8Array(this.spool.sha.digest()),
      fileSize: this.spool.size,
    });
  }
}
