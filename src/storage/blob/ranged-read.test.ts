import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { type ByteRange, type FetchRange, PrefetchBudget, planParts, rangedBody } from './ranged-read.js';

describe('planParts', () => {
  it('cuts a span into consecutive parts, the last one shorter', () => {
    expect(planParts({ start: 0, end: 9 }, 4)).toEqual([
      { start: 0, end: 3 },
      { start: 4, end: 7 },
      { start: 8, end: 9 },
    ]);
    expect(planParts({ start: 5, end: 5 }, 4)).toEqual([{ start: 5, end: 5 }]);
    expect(planParts({ start: 3, end: 10 }, 4)).toEqual([
      { start: 3, end: 6 },
      { start: 7, end: 10 },
    ]);
  });

  it('refuses a part size that is not a positive integer', () => {
    expect(() => planParts({ start: 0, end: 9 }, 0)).toThrow(/positive integer/);
    expect(() => planParts({ start: 0, end: 9 }, 1.5)).toThrow(/positive integer/);
  });
});

/** An object in memory served by range in small chunks, slowly, counting requests in flight. */
function objectServer(data: Buffer, opts: { chunk?: number; lie?: (r: ByteRange) => Buffer | undefined } = {}) {
  const state = { inFlight: 0, maxInFlight: 0, requests: [] as ByteRange[], aborted: 0, served: 0 };
  const serve = (r: ByteRange, signal?: AbortSignal) => {
    state.requests.push(r);
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    const bytes = opts.lie?.(r) ?? data.subarray(r.start, r.end + 1);
    const size = opts.chunk ?? 1000;
    async function* gen() {
      try {
        for (let i = 0; i < bytes.length; i += size) {
          await new Promise((resolve) => setImmediate(resolve));
          if (signal?.aborted) {
            state.aborted++;
            throw new Error('aborted');
          }
          state.served += Math.min(size, bytes.length - i);
          yield bytes.subarray(i, i + size);
        }
      } finally {
        state.inFlight--;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  };
  const fetchRange: FetchRange = async (r, signal) => serve(r, signal);
  return { state, serve, fetchRange };
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('rangedBody', () => {
  const data = randomBytes(50_000);

  it('returns the parts in order, with at most `depth` requests in flight', async () => {
    const server = objectServer(data);
    const parts = planParts({ start: 0, end: data.length - 1 }, 4096);
    const budget = new PrefetchBudget(1 << 20);
    const out = await collect(rangedBody(server.serve(parts[0]!), parts, server.fetchRange, { depth: 3, budget }));
    expect(out.equals(data)).toBe(true);
    expect(server.state.requests).toEqual(parts);
    expect(server.state.maxInFlight).toBe(3);
    expect(budget.left).toBe(1 << 20);
  });

  it('reads a range in the middle of the object', async () => {
    const server = objectServer(data);
    const parts = planParts({ start: 1234, end: 40_000 }, 5000);
    const budget = new PrefetchBudget(1 << 20);
    const out = await collect(rangedBody(server.serve(parts[0]!), parts, server.fetchRange, { depth: 4, budget }));
    expect(out.equals(data.subarray(1234, 40_001))).toBe(true);
  });

  it('fetches one part at a time when the budget is spent, and still delivers every byte', async () => {
    const server = objectServer(data);
    const parts = planParts({ start: 0, end: data.length - 1 }, 4096);
    const budget = new PrefetchBudget(100); // less than any part
    const out = await collect(rangedBody(server.serve(parts[0]!), parts, server.fetchRange, { depth: 4, budget }));
    expect(out.equals(data)).toBe(true);
    expect(server.state.maxInFlight).toBe(1);
    expect(budget.left).toBe(100);
  });

  it('a part shorter or longer than its range fails the stream', async () => {
    for (const lie of [
      (r: ByteRange) => data.subarray(r.start, r.end),
      (r: ByteRange) => data.subarray(r.start, r.end + 2),
    ]) {
      const server = objectServer(data, { lie: (r) => (r.start === 8192 ? lie(r) : undefined) });
      const parts = planParts({ start: 0, end: data.length - 1 }, 4096);
      const budget = new PrefetchBudget(1 << 20);
      const stream = rangedBody(server.serve(parts[0]!), parts, server.fetchRange, { depth: 2, budget });
      await expect(collect(stream)).rejects.toThrow(/bytes 8192-12287/);
      expect(budget.left).toBe(1 << 20);
    }
  });

  it('a failed request fails the stream with its error', async () => {
    const server = objectServer(data);
    const parts = planParts({ start: 0, end: data.length - 1 }, 4096);
    const failing: FetchRange = async (r, signal) => {
      if (r.start === 4096 * 3) throw new Error('503 Slow Down');
      return server.fetchRange(r, signal);
    };
    const budget = new PrefetchBudget(1 << 20);
    const stream = rangedBody(server.serve(parts[0]!), parts, failing, { depth: 2, budget });
    await expect(collect(stream)).rejects.toThrow('503 Slow Down');
    expect(budget.left).toBe(1 << 20);
  });

  it('destroying the stream aborts the requests in flight and gives the budget back', async () => {
    const big = randomBytes(400_000);
    const server = objectServer(big, { chunk: 100 });
    const parts = planParts({ start: 0, end: big.length - 1 }, 50_000);
    const budget = new PrefetchBudget(1 << 20);
    const stream = rangedBody(server.serve(parts[0]!), parts, server.fetchRange, { depth: 4, budget });
    let seen = 0;
    for await (const c of stream) {
      seen += (c as Buffer).length;
      if (seen > 1000) break; // for-await's break destroys the stream
    }
    for (let i = 0; i < 100 && server.state.inFlight > 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(server.state.inFlight).toBe(0);
    expect(server.state.aborted).toBeGreaterThan(0);
    expect(server.state.requests.length).toBeLessThanOrEqual(4);
    expect(budget.left).toBe(1 << 20);
  });

  it('a slow client holds about a megabyte of the part being sent, not the whole part', async () => {
    const big = randomBytes(6 << 20);
    const server = objectServer(big, { chunk: 64 << 10 });
    const parts = planParts({ start: 0, end: big.length - 1 }, 3 << 20);
    const budget = new PrefetchBudget(0); // nothing ahead: only the unbudgeted part
    const stream = rangedBody(server.serve(parts[0]!), parts, server.fetchRange, { depth: 2, budget });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    // Let the source run as far as it is allowed while the client takes nothing.
    for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
    expect(server.state.requests.length).toBe(1);
    // The readable's own buffer (1 MiB) plus the part's (1 MiB) plus a chunk or two: not the 3 MiB part.
    expect(server.state.served).toBeGreaterThan(1 << 20);
    expect(server.state.served).toBeLessThanOrEqual((2 << 20) + (128 << 10));
    stream.destroy();
  });
});
