/**
 * bzip2 decoding on a worker thread. The only bzip2 decoder at hand is pure JavaScript
 * (unbzip2-stream's bzip2.js) and it decodes a whole block in one synchronous call: up to ~45 MiB
 * of output for a block of zeros, so a 79-byte body held the event loop for seconds. On a worker
 * the decoding blocks nobody; the worker writes into 64 KiB buffers, and stops (Atomics.wait) while
 * more than OUTSTANDING_BYTES of its output have not been consumed, so a bomb can only get as far as
 * the consumer lets it. Destroying the stream terminates the worker at once.
 */
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';

const OUTSTANDING_BYTES = 4 << 20;
/** Compressed bytes handed to the worker and not decoded yet; a block is at most ~1 MB compressed. */
const INPUT_AHEAD_BYTES = 4 << 20;

const resolve = createRequire(import.meta.url).resolve;
const LIBS = {
  bzip2: resolve('unbzip2-stream/lib/bzip2.js'),
  bitIterator: resolve('unbzip2-stream/lib/bit_iterator.js'),
};

type FromWorker = { out: Uint8Array } | { consumed: number } | { done: true } | { error: string };
type ToWorker = { data: Uint8Array } | { end: true };

/**
 * The worker's program. Its source text is what runs (eval), so it may use nothing from this
 * module's scope: everything comes in through `req` and workerData.
 */
function bzip2Worker(req: NodeJS.Require): void {
  const { parentPort, workerData } = req('node:worker_threads') as typeof import('node:worker_threads');
  const { libs, control, outstandingBytes } = workerData as {
    libs: { bzip2: string; bitIterator: string };
    control: SharedArrayBuffer;
    outstandingBytes: number;
  };
  const bz2 = req(libs.bzip2) as {
    header(bits: unknown): number;
    decompress(
      bits: unknown,
      out: (b: number) => void,
      buf: Int32Array,
      size: number,
      crc: number | null,
    ): number | null;
  };
  const bitIterator = req(libs.bitIterator) as (
    next: () => Buffer | undefined,
  ) => ((n: number | null) => number) & { bytesRead: number };
  const counters = new Int32Array(control); // [0] = output not yet consumed, [1] = stop
  const port = parentPort!;
  const queue: Buffer[] = [];
  let received = 0;
  let reader: ReturnType<typeof bitIterator> | undefined;
  let blockSize = 0;
  let blockBuffer: Int32Array | undefined;
  let streamCrc: number | null = null;
  let out = Buffer.allocUnsafe(64 << 10);
  let outLength = 0;

  const flush = () => {
    if (outLength === 0) return;
    const chunk = out.subarray(0, outLength);
    port.postMessage({ out: chunk }, [chunk.buffer as ArrayBuffer]);
    Atomics.add(counters, 0, outLength);
    out = Buffer.allocUnsafe(64 << 10);
    outLength = 0;
    for (;;) {
      if (Atomics.load(counters, 1) !== 0) throw new Error('stopped');
      const pending = Atomics.load(counters, 0);
      if (pending <= outstandingBytes) break;
      Atomics.wait(counters, 0, pending, 1000);
    }
  };
  const emit = (byte: number) => {
    out[outLength++] = byte;
    if (outLength === out.length) flush();
  };
  const decodeBlock = () => {
    if (!blockSize) {
      blockSize = bz2.header(reader);
      streamCrc = 0;
      return;
    }
    const size = 100_000 * blockSize;
    if (blockBuffer?.length !== size) blockBuffer = new Int32Array(size);
    streamCrc = bz2.decompress(reader, emit, blockBuffer, size, streamCrc);
    if (streamCrc === null) blockSize = 0; // end of a stream; another may follow
    flush();
    port.postMessage({ consumed: reader!.bytesRead });
  };
  port.on('message', (m: ToWorker) => {
    try {
      if ('data' in m) {
        queue.push(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength));
        received += m.data.byteLength;
        reader ??= bitIterator(() => queue.shift());
        // As unbzip2-stream does: decode a block only once surely all of it has arrived.
        while (received - reader.bytesRead + 1 >= (25_000 + 100_000 * blockSize || 4)) decodeBlock();
      } else {
        while (reader && received > reader.bytesRead) decodeBlock();
        if (!reader || streamCrc !== null) throw new Error('the bzip2 stream ends prematurely');
        flush();
        port.postMessage({ done: true });
      }
    } catch (err) {
      port.postMessage({ error: err instanceof Error ? err.message : String(err) });
    }
  });
}

export class Bzip2Decoder extends Duplex {
  private readonly control = new SharedArrayBuffer(8);
  private readonly counters = new Int32Array(this.control);
  private readonly worker: Worker;
  private sent = 0;
  private consumed = 0;
  private owed = 0;
  private writeWaiting: (() => void) | undefined;
  private finalWaiting: ((err?: Error | null) => void) | undefined;

  constructor() {
    super();
    this.worker = new Worker(`(${bzip2Worker.toString()})(require)`, {
      eval: true,
      workerData: { libs: LIBS, control: this.control, outstandingBytes: OUTSTANDING_BYTES },
      // The decoder needs ~4 MB per block; anything far beyond that is a bug or an attack.
      resourceLimits: { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 16 },
    });
    this.worker.on('message', (m: FromWorker) => this.onMessage(m));
    this.worker.on('error', (err) => this.destroy(err));
    this.worker.on('exit', (code) => {
      if (!this.destroyed && this.finalWaiting)
        this.destroy(new Error(`the bzip2 decoder stopped (exit code ${code})`));
    });
  }

  private onMessage(m: FromWorker): void {
    if (this.destroyed) return;
    if ('out' in m) {
      const chunk = Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength);
      this.owed += chunk.length;
      if (this.push(chunk)) this.release();
    } else if ('consumed' in m) {
      this.consumed = m.consumed;
      if (this.sent - this.consumed <= INPUT_AHEAD_BYTES) {
        const resume = this.writeWaiting;
        this.writeWaiting = undefined;
        resume?.();
      }
    } else if ('done' in m) {
      void this.worker.terminate().catch(() => undefined);
      this.push(null);
      const cb = this.finalWaiting;
      this.finalWaiting = undefined;
      cb?.();
    } else {
      this.destroy(new Error(m.error));
    }
  }

  /** Tells the worker that what it sent so far has been taken. */
  private release(): void {
    if (this.owed === 0) return;
    Atomics.sub(this.counters, 0, this.owed);
    this.owed = 0;
    Atomics.notify(this.counters, 0);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // A copy of just these bytes: posting a view would clone the whole buffer behind it.
    const data = new Uint8Array(chunk);
    this.worker.postMessage({ data } satisfies ToWorker, [data.buffer]);
    this.sent += chunk.length;
    if (this.sent - this.consumed <= INPUT_AHEAD_BYTES) {
      cb();
      return;
    }
    this.writeWaiting = () => cb();
  }

  override _read(): void {
    this.release();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.finalWaiting = cb;
    this.worker.postMessage({ end: true } satisfies ToWorker);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    Atomics.store(this.counters, 1, 1);
    Atomics.notify(this.counters, 0);
    void this.worker.terminate().catch(() => undefined);
    cb(err);
  }
}
