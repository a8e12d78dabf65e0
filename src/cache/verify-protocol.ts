/** Messages between the verifier pool (verify-pool.ts) and its threads (verify-worker.ts). */
import type { MessagePort } from 'node:worker_threads';
import type { ErrorCode } from '../errors.js';
import type { VerifyParams, VerifyPart, VerifyResult } from './verify-stream.js';

export type ToVerifier =
  | {
      kind: 'start';
      job: number;
      params: VerifyParams;
      /** A whole verification, or one half of a split one (verify-stream.ts, VerifyPart). */
      part: VerifyPart;
      /**
       * Of a split job, the channel between its halves: the first half sends the upload's bytes
       * there once done with them (and `end`), the second takes its input from it.
       */
      port?: MessagePort;
      /** The job's input window (bytes sent and not yet taken in): `consumed` is told in steps of an eighth. */
      window: number;
    }
  /** Compressed upload bytes; the buffer is transferred, not copied. */
  | { kind: 'data'; job: number; data: Uint8Array }
  | { kind: 'end'; job: number }
  | { kind: 'abort'; job: number; message: string };

export type FromVerifier =
  /**
   * The thread took `bytes` of input in: the caller may send that much more. Of a split job, the
   * second half tells it (what it took in, the first half is done with).
   */
  | { kind: 'consumed'; job: number; bytes: number }
  /** Of a split job, each half's result holds what it measured (the rest is empty). */
  | { kind: 'done'; job: number; result: VerifyResult }
  | { kind: 'failed'; job: number; error: { code: ErrorCode; message: string } };

/** Input sent to a thread and not yet taken in, per upload (the thread writes its output itself). */
export const IN_FLIGHT_BYTES = 2 << 20;

/**
 * The same for an upload split over two threads: the bytes are with one half or the other, and a
 * larger window lets the first half run ahead while the second catches up.
 */
export const SPLIT_IN_FLIGHT_BYTES = 8 << 20;

/** Uploads at least this large (declared NarSize, else Content-Length) are split over two threads. */
export const SPLIT_BYTES = 8 << 20;
