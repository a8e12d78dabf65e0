/**
 * One object read as several ranged GETs in flight at once. An object store serves each
 * connection at a bounded rate (S3: about 90 MB/s per connection, AWS's own guidance is parallel
 * ranged GETs), so a large NAR streamed through one GetObject arrives far slower than the disk or
 * the network allows. Here the span is cut into parts; while the client receives one part, the
 * next `depth - 1` are already being fetched into memory. Bytes buffered ahead count against one
 * budget per process: when it is spent, a download fetches one part at a time (never waits for
 * budget, never fails for it). The parts come back in order, each checked to be exactly as long
 * as its range; a failed part ends the stream with that error (the response is cut, and Nix,
 * which checks NarHash anyway, retries).
 */
import { Readable } from 'node:stream';

/** 8 MiB parts, 4 in flight: about what AWS suggests per download, 24 MiB held ahead at most. */
export const READ_PART_BYTES = 8 << 20;
export const READ_DEPTH = 4;
/** 256 MiB across every download of this process; past it downloads fetch one part at a time. */
export const READ_BUDGET_BYTES = 256 << 20;

/** An inclusive byte range, as in `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** PURE: `[start, end]` cut into consecutive parts of at most `partBytes` (the last may be shorter). */
export function planParts(span: ByteRange, partBytes: number): ByteRange[] {
  if (!Number.isInteger(partBytes) || partBytes < 1) throw new Error(`part size must be a positive integer`);
  const parts: ByteRange[] = [];
  for (let s = span.start; s <= span.end; s += partBytes)
    parts.push({ start: s, end: Math.min(span.end, s + partBytes - 1) });
  return parts;
}

const lengthOf = (r: ByteRange) => r.end - r.start + 1;

/** Bytes all downloads of this process may hold ahead of their clients. Taken without waiting. */
export class PrefetchBudget {
  constructor(private available: number) {}

  tryTake(bytes: number): boolean {
    if (bytes > this.available) return false;
    this.available -= bytes;
    return true;
  }

  give(bytes: number): void {
    this.available += bytes;
  }

  /** For tests and metrics: what is left. */
  get left(): number {
    return this.available;
  }
}

/** Fetches the body of one range of the object (the store's GetObject with `Range`). */
export type FetchRange = (
  range: ByteRange,
  signal: AbortSignal,
) => Promise<AsyncIterable<Buffer> & { destroy?(): void }>;

/** What a part fetched without budget (the one being sent) may hold before it waits for its client. */
const UNBUDGETED_BUFFER_BYTES = 1 << 20;

/**
 * One part's bytes as they arrive, for one consumer; `charged` is what it took from the budget.
 * A part charged nothing reads only as fast as its client takes the bytes (a slow client holds
 * at most UNBUDGETED_BUFFER_BYTES here, as a plain stream would hold its high-water mark).
 */
class PartBuffer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private received = 0;
  private done = false;
  private error: unknown;
  private wake: (() => void) | undefined;
  private resume: (() => void) | undefined;

  constructor(
    readonly range: ByteRange,
    readonly charged: number,
  ) {}

  /** Reads `body` to the end (or failure) into this buffer; never rejects. */
  async fill(body: Promise<AsyncIterable<Buffer> & { destroy?(): void }>, signal: AbortSignal): Promise<void> {
    try {
      const stream = await body;
      const stop = () => {
        stream.destroy?.();
        this.resume?.();
      };
      signal.addEventListener('abort', stop, { once: true });
      try {
        const want = lengthOf(this.range);
        for await (const chunk of stream) {
          this.received += chunk.length;
          if (this.received > want) throw new Error(this.wrongLength('more than'));
          this.chunks.push(chunk);
          this.buffered += chunk.length;
          this.notify();
          if (this.charged === 0 && this.buffered >= UNBUDGETED_BUFFER_BYTES && !signal.aborted) {
            await new Promise<void>((resolve) => (this.resume = resolve));
          }
        }
        if (this.received !== want) throw new Error(this.wrongLength('only'));
      } finally {
        signal.removeEventListener('abort', stop);
      }
      this.done = true;
    } catch (err) {
      this.error = err;
    }
    this.notify();
  }

  async *drain(): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.chunks.length > 0) {
        const ready = this.chunks;
        this.chunks = [];
        this.buffered = 0;
        const resume = this.resume;
        this.resume = undefined;
        resume?.();
        yield* ready;
        continue;
      }
      if (this.error !== undefined) throw this.error;
      if (this.done) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private wrongLength(how: string): string {
    const { start, end } = this.range;
    return `the object store sent ${how} ${lengthOf(this.range)} bytes for bytes ${start}-${end} (${this.received} so far)`;
  }
}

export interface RangedReadOptions {
  /** Parts in flight per download, the one being sent included (1 = one part at a time). */
  depth: number;
  budget: PrefetchBudget;
}

/**
 * The bytes of `parts` in order, as one stream. `first` is the body of `parts[0]`, already
 * requested (its response told the object's size); the rest are fetched with `fetchRange`.
 * Destroying the stream (the client went away) aborts every request in flight.
 */
export function rangedBody(
  first: AsyncIterable<Buffer> & { destroy?(): void },
  parts: readonly ByteRange[],
  fetchRange: FetchRange,
  opts: RangedReadOptions,
): Readable {
  const depth = Math.max(1, Math.floor(opts.depth));
  const controller = new AbortController();
  async function* assemble(): AsyncGenerator<Buffer> {
    const started: PartBuffer[] = [];
    const begin = (index: number, charged: number, body?: Promise<AsyncIterable<Buffer> & { destroy?(): void }>) => {
      const part = new PartBuffer(parts[index]!, charged);
      void part.fill(body ?? fetchRange(parts[index]!, controller.signal), controller.signal);
      started.push(part);
    };
    let next = 1;
    try {
      begin(0, 0, Promise.resolve(first));
      for (let i = 0; i < parts.length; i++) {
        // The part about to be sent is always fetched; those ahead of it only with budget.
        while (next < parts.length && next < i + depth) {
          const ahead = next > i;
          const size = ahead ? lengthOf(parts[next]!) : 0;
          if (ahead && !opts.budget.tryTake(size)) break;
          begin(next++, size);
        }
        const part = started.shift()!;
        try {
          yield* part.drain();
        } finally {
          opts.budget.give(part.charged);
        }
      }
    } finally {
      controller.abort();
      first.destroy?.();
      for (const part of started) opts.budget.give(part.charged);
    }
  }
  const stream = Readable.from(assemble(), { objectMode: false, highWaterMark: 1 << 20 });
  // At once, not when the generator next resumes: a part waiting on a stalled request would
  // otherwise keep every request (and the budget) until the store answered.
  stream.once('close', () => controller.abort());
  return stream;
}
