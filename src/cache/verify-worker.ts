/**
 * A verifier thread: runs NarVerification (verify-stream.ts) for any number of uploads at once,
 * each driven by messages from verify-pool.ts. A failing upload answers `failed` and leaves the
 * others running; the thread itself ends only if it is terminated or crashes (the pool then fails
 * the uploads it held and starts another).
 */
import os from 'node:os';
import { parentPort } from 'node:worker_threads';
import { FloeError } from '../errors.js';
import { IN_FLIGHT_BYTES, type FromVerifier, type ToVerifier } from './verify-protocol.js';
import { NarVerification } from './verify-stream.js';

/** How much lower than the event loop's the verifier threads' scheduling priority is. */
const VERIFIER_NICE = 10;

const port = parentPort!;

// Verification is background work next to the main thread's requests: on a saturated machine the
// scheduler must run the event loop first. On Linux the nice value is per thread (this call sets
// this thread's, and the zstd threads it starts inherit it); elsewhere it may set the process's,
// so it is applied only here.
if (process.platform === 'linux') {
  try {
    os.setPriority(VERIFIER_NICE);
  } catch {
    // not permitted (a container without CAP_SYS_NICE may refuse even lowering): run as is
  }
}
interface Job {
  verification: NarVerification;
  /** Input taken in and not yet reported as consumed. */
  unacked: number;
}

const ACK_BYTES = IN_FLIGHT_BYTES / 8;
const jobs = new Map<number, Job>();
const post = (m: FromVerifier, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

/**
 * Tests only: a thread that decodes a NAR containing these bytes exits at once, as a crashing
 * native decoder would. Read once from the environment the test gave `floe serve`.
 */
const crashMarkerText = process.env.FLOE_TEST_VERIFIER_CRASH_MARKER;
const crashMarker = crashMarkerText ? Buffer.from(crashMarkerText) : undefined;
const inspect = crashMarker
  ? (chunk: Buffer) => {
      if (chunk.includes(crashMarker)) process.exit(70);
    }
  : undefined;

function fail(job: number, err: unknown): void {
  jobs.delete(job);
  const error =
    err instanceof FloeError
      ? { code: err.code, message: err.message }
      : { code: 'internal' as const, message: String((err as Error)?.message ?? err) };
  post({ kind: 'failed', job, error });
}

function start(job: number, m: Extract<ToVerifier, { kind: 'start' }>): void {
  const verification = new NarVerification(m.params, inspect);
  jobs.set(job, { verification, unacked: 0 });
  verification.result.then(
    (result) => {
      jobs.delete(job);
      const transfer = [result.narHash.buffer as ArrayBuffer, result.fileHash.buffer as ArrayBuffer];
      post({ kind: 'done', job, result }, transfer);
    },
    (err: unknown) => fail(job, err),
  );
}

port.on('message', (m: ToVerifier) => {
  // A throw here would end the thread and every upload on it: it fails this upload only.
  try {
    handle(m);
  } catch (err) {
    jobs.get(m.job)?.verification.abort(err as Error);
    fail(m.job, err);
  }
});

function handle(m: ToVerifier): void {
  if (m.kind === 'start') {
    start(m.job, m);
    return;
  }
  const job = jobs.get(m.job);
  if (!job) return; // finished or failed already
  switch (m.kind) {
    case 'data': {
      const bytes = m.data.byteLength;
      job.verification.write(Buffer.from(m.data.buffer, m.data.byteOffset, bytes)).then(
        () => {
          // Told in batches (a message per socket read was much of this thread's time); a batch
          // far below IN_FLIGHT_BYTES, so the caller never waits for bytes taken in and not told.
          job.unacked += bytes;
          if (job.unacked < ACK_BYTES) return;
          post({ kind: 'consumed', job: m.job, bytes: job.unacked });
          job.unacked = 0;
        },
        () => undefined, // reported through `result`
      );
      return;
    }
    case 'end':
      void job.verification.end().catch(() => undefined);
      return;
    case 'abort':
      jobs.delete(m.job);
      job.verification.abort(new Error(m.message));
      return;
  }
}
