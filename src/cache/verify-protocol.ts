/** Messages between the verifier pool (verify-pool.ts) and its threads (verify-worker.ts). */
import type { ErrorCode } from '../errors.js';
import type { VerifyParams, VerifyResult } from './verify-stream.js';

export type ToVerifier =
  | { kind: 'start'; job: number; params: VerifyParams }
  /** Compressed upload bytes; the buffer is transferred, not copied. */
  | { kind: 'data'; job: number; data: Uint8Array }
  | { kind: 'end'; job: number }
  | { kind: 'abort'; job: number; message: string };

export type FromVerifier =
  /** The thread took `bytes` of input in: the caller may send that much more. */
  | { kind: 'consumed'; job: number; bytes: number }
  | { kind: 'done'; job: number; result: VerifyResult }
  | { kind: 'failed'; job: number; error: { code: ErrorCode; message: string } };

/** Input sent to a thread and not yet taken in, per upload (the thread writes its output itself). */
export const IN_FLIGHT_BYTES = 2 << 20;
