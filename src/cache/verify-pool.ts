/**
 * Where NAR verification runs: a pool of verifier threads (verify-worker.ts), FLOE_VERIFY_THREADS
 * of them (default: one per core), so decoding, NAR parsing, hashing and recompression of uploads
 * proceed in parallel and never hold the event loop that answers narinfo requests. Each upload is
 * one job on the least busy thread; its bytes go there as transferred buffers (the request's own,
 * not copies: copying made the event loop allocate, and collect, as much again as the upload),
 * at most IN_FLIGHT_BYTES ahead of what the thread has taken in. The thread writes what is stored
 * to the blob's spool file itself, so no output comes back. A job that fails fails its upload
 * only. A thread that dies (a crash in a native decoder, out of memory) fails the uploads it was
 * verifying with a 503 and is replaced by the next upload; the process carries on.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { FloeError, InvalidInput } from '../errors.js';
import { IN_FLIGHT_BYTES, type FromVerifier, type ToVerifier } from './verify-protocol.js';
import { NarVerification, type VerifyParams, type VerifyResult } from './verify-stream.js';

type Source = AsyncIterable<Buffer>;
type Send = (m: ToVerifier, transfer?: ArrayBuffer[]) => void;

export interface Verifier {
  /**
   * Verifies `source` (the body after its first bytes were sniffed) and writes what is stored to
   * `params.file` (the caller commits it). Rejects with the upload's error; the source is not read
   * further after a failure. Takes the source's chunks over: a chunk that is the only view of its
   * memory is moved to the thread, so the caller must not use a chunk after yielding it.
   */
  verify(params: VerifyParams, source: Source, signal?: AbortSignal): Promise<VerifyResult>;
  close(): Promise<void>;
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError' });
}

/**
 * One job's state on the calling side. Settles once: with the thread's result, or with the first
 * failure from the thread, the source or the signal.
 */
class Job {
  private settle!: { resolve: (r: VerifyResult) => void; reject: (e: unknown) => void };
  readonly result = new Promise<VerifyResult>((resolve, reject) => (this.settle = { resolve, reject }));
  settled = false;
  inFlight = 0;
  private resumeInput: (() => void) | undefined;

  constructor(
    readonly id: number,
    private readonly send: Send,
  ) {
    this.result.catch(() => undefined);
  }

  fail(err: unknown, tellThread = true): void {
    if (this.settled) return;
    this.settled = true;
    if (tellThread) this.send({ kind: 'abort', job: this.id, message: String((err as Error)?.message ?? err) });
    this.wake();
    this.settle.reject(err);
  }

  wake(): void {
    const resume = this.resumeInput;
    this.resumeInput = undefined;
    resume?.();
  }

  /** Waits while too much input is with the thread and not yet taken in. */
  async room(): Promise<void> {
    while (!this.settled && this.inFlight > IN_FLIGHT_BYTES) await new Promise<void>((r) => (this.resumeInput = r));
  }

  onMessage(m: FromVerifier): void {
    if (this.settled) return;
    switch (m.kind) {
      case 'consumed':
        this.inFlight -= m.bytes;
        if (this.inFlight <= IN_FLIGHT_BYTES) this.wake();
        return;
      case 'done':
        this.settled = true;
        this.wake();
        this.settle.resolve(m.result);
        return;
      case 'failed':
        this.fail(new FloeError(m.error.code, m.error.message), false);
        return;
    }
  }
}

/**
 * The bytes of `chunk` as a buffer that can be transferred: its own when it is the only view of
 * all of it (a socket read, as the request hands it on), else a copy of just these bytes (a view
 * into a larger or pooled buffer shares it with other data).
 */
export function transferable(chunk: Buffer): Uint8Array<ArrayBuffer> {
  const whole =
    chunk.buffer instanceof ArrayBuffer && chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength;
  return whole ? new Uint8Array(chunk.buffer) : new Uint8Array(chunk);
}

/** Feeds the source to a job until it ends, the job settles, or the signal fires. */
async function feed(job: Job, source: Source, send: Send, signal?: AbortSignal): Promise<void> {
  const onAbort = () => job.fail(abortError(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal?.aborted) return onAbort();
    for await (const chunk of source) {
      if (job.settled) return;
      const data = transferable(chunk);
      job.inFlight += data.byteLength;
      send({ kind: 'data', job: job.id, data }, [data.buffer]);
      await job.room();
      if (job.settled) return;
    }
    if (!job.settled) send({ kind: 'end', job: job.id });
  } catch (err) {
    job.fail(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

interface Thread {
  worker: Worker;
  jobs: Map<number, Job>;
}

const WORKER_URL = new URL('./verify-worker.js', import.meta.url);

/** Verifier threads, started on demand up to `size`, each verifying any number of uploads. */
export class ThreadVerifier implements Verifier {
  private readonly threads: Thread[] = [];
  private nextJob = 1;
  private closed = false;

  constructor(readonly size: number) {
    if (size < 1) throw new RangeError('a verifier pool needs at least one thread');
  }

  private spawn(): Thread {
    const worker = new Worker(WORKER_URL, {
      // A NAR stream needs little heap (buffers live outside it); far beyond this is a bug or an attack.
      resourceLimits: { maxOldGenerationSizeMb: 512 },
    });
    // Idle threads must not keep a CLI process alive; running jobs are held by their requests.
    worker.unref();
    const thread: Thread = { worker, jobs: new Map() };
    let why = '';
    worker.on('message', (m: FromVerifier) => thread.jobs.get(m.job)?.onMessage(m));
    worker.on('error', (err) => (why = `: ${err.message}`));
    worker.on('exit', (code) => {
      const i = this.threads.indexOf(thread);
      if (i >= 0) this.threads.splice(i, 1);
      if (this.closed) return;
      const err = new FloeError(
        'unavailable',
        `the NAR verifier thread stopped (exit code ${code}${why}) while verifying this upload; ` +
          'nothing was stored, try again',
      );
      for (const job of thread.jobs.values()) job.fail(err, false);
      thread.jobs.clear();
    });
    this.threads.push(thread);
    return thread;
  }

  /** The least busy thread, starting another while fewer than `size` run. */
  private pick(): Thread {
    let best: Thread | undefined;
    for (const t of this.threads) if (!best || t.jobs.size < best.jobs.size) best = t;
    if (best && (best.jobs.size === 0 || this.threads.length >= this.size)) return best;
    return this.spawn();
  }

  async verify(params: VerifyParams, source: Source, signal?: AbortSignal): Promise<VerifyResult> {
    if (this.closed) throw new Error('the verifier pool is closed');
    const thread = this.pick();
    const send: Send = (m, transfer) => thread.worker.postMessage(m, transfer);
    const job = new Job(this.nextJob++, send);
    thread.jobs.set(job.id, job);
    try {
      send({ kind: 'start', job: job.id, params });
      // Not awaited: a failure answers at once, even while the client is between two chunks.
      void feed(job, source, send, signal);
      return await job.result;
    } finally {
      thread.jobs.delete(job.id);
    }
  }

  /** Threads running now (for tests and metrics). */
  running(): number {
    return this.threads.length;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t.worker.terminate()));
  }
}

/** Verification in the calling thread: FLOE_VERIFY_THREADS=0, or code run from its TypeScript source. */
export class InThreadVerifier implements Verifier {
  async verify(params: VerifyParams, source: Source, signal?: AbortSignal): Promise<VerifyResult> {
    const verification = new NarVerification(params);
    let failed = false;
    verification.result.catch(() => (failed = true));
    const onAbort = () => verification.abort(abortError(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    // Fed in the background, as on a thread: a failure answers at once, even between two chunks.
    void (async () => {
      for await (const chunk of source) {
        if (failed) return;
        await verification.write(chunk);
      }
      await verification.end();
    })().catch((err: unknown) => verification.abort(err as Error));
    try {
      return await verification.result;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {}
}

/** FLOE_VERIFY_THREADS (or the config file's `verify_threads`), else one thread per core. */
export function verifyThreadsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  return parseVerifyThreads(env.FLOE_VERIFY_THREADS);
}

export function parseVerifyThreads(raw: string | undefined): number {
  if (raw === undefined || raw === '') return os.availableParallelism();
  const n = Number(raw);
  if (!/^\d{1,3}$/.test(raw.trim()) || n > 256) {
    throw new InvalidInput('FLOE_VERIFY_THREADS', `expected a whole number from 0 to 256, got ${JSON.stringify(raw)}`);
  }
  return n;
}

let shared: Verifier | undefined;

function verifierWith(threads: number): Verifier {
  // Run from TypeScript sources (unit tests), there is no compiled worker next to this module.
  const compiled = existsSync(fileURLToPath(WORKER_URL));
  return threads > 0 && compiled ? new ThreadVerifier(threads) : new InThreadVerifier();
}

/** Sets the process's verifier (`floe serve`, from its config) before the first upload. */
export function configureSharedVerifier(threads: number): void {
  void shared?.close();
  shared = verifierWith(threads);
}

/** The process's verifier, made on first use (from FLOE_VERIFY_THREADS unless configured). */
export function sharedVerifier(): Verifier {
  return (shared ??= verifierWith(verifyThreadsFromEnv()));
}
