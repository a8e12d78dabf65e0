/**
 * Shared settings of the fuzz suite (test/fuzz/*.fuzz.test.ts): property-based fuzzing with
 * fast-check, a few hundred cases per property in `npm test`, many more with `npm run fuzz`.
 *
 *   FLOE_FUZZ_RUNS  cases per property (default 200; `npm run fuzz` sets 20000)
 *   FLOE_FUZZ_SEED  replay a run: fast-check prints the seed (and path) of every failure
 *
 * Every file also replays its corpus (test/fuzz/corpus/<parser>/): valid examples the fuzzer
 * mutates, and every counterexample found so far, kept as a regression case.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { expect } from 'vitest';
import { FloeError } from '../../src/errors.js';

const DEFAULT_RUNS = 200;

export const FUZZ_RUNS = (() => {
  const n = Number(process.env.FLOE_FUZZ_RUNS ?? DEFAULT_RUNS);
  return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_RUNS;
})();

const SEED =
  process.env.FLOE_FUZZ_SEED === undefined || process.env.FLOE_FUZZ_SEED === ''
    ? undefined
    : Number(process.env.FLOE_FUZZ_SEED);

/**
 * fast-check parameters for one property. `cost` divides the runs for properties whose single case
 * is expensive (a server request, a decompression, a Cedar validation), so the default suite stays
 * within a few seconds per file on two cores.
 */
export function fuzzParams<T>(cost = 1, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  return {
    numRuns: Math.max(10, Math.floor(FUZZ_RUNS / cost)),
    ...(SEED !== undefined && Number.isFinite(SEED) ? { seed: SEED } : {}),
    ...extra,
  };
}

/** Vitest timeout for a property: generous, and growing with the number of runs. */
export function fuzzTimeout(msPerRun = 5): number {
  return 60_000 + FUZZ_RUNS * msPerRun;
}

const CORPUS_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'corpus');

export interface CorpusEntry {
  name: string;
  bytes: Buffer;
}

/** The files of test/fuzz/corpus/<parser>/, sorted by name (README.md excluded). */
export function corpus(parser: string): CorpusEntry[] {
  const dir = path.join(CORPUS_ROOT, parser);
  return readdirSync(dir)
    .filter((f) => f !== 'README.md')
    .sort()
    .map((name) => ({ name, bytes: readFileSync(path.join(dir, name)) }));
}

/** Asserts that `err` is a FloeError (optionally of one code): a client error, not a crash. */
export function expectFloeError(err: unknown, code?: string): void {
  if (!(err instanceof FloeError))
    throw new Error(
      `expected a FloeError, got ${err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err)}`,
    );
  if (code !== undefined) expect(err.code, err.message).toBe(code);
}

/** Runs `fn`; returns its result, or the FloeError it threw (anything else fails the case). */
export function outcome<T>(fn: () => T, code?: string): { ok: true; value: T } | { ok: false; error: FloeError } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    expectFloeError(err, code);
    return { ok: false, error: err as FloeError };
  }
}

export async function outcomeAsync<T>(
  fn: () => Promise<T>,
  code?: string | string[],
): Promise<{ ok: true; value: T } | { ok: false; error: FloeError }> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    expectFloeError(err);
    if (code !== undefined)
      expect(Array.isArray(code) ? code : [code], (err as Error).message).toContain((err as FloeError).code);
    return { ok: false, error: err as FloeError };
  }
}

/** Fails if `work` has not settled within `ms`: "did not hang", with a bound far above normal. */
export async function withinMs<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Byte-level mutations of a valid input: bit flips, overwrites, truncation, splices, duplication. */
export function mutated(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 16 }) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      data: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 64 }) }),
  );
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([input, edits]) => {
    let b = Buffer.from(input);
    for (const e of edits) {
      const at = b.length === 0 ? 0 : e.at % b.length;
      switch (e.kind) {
        case 'flip':
          if (b.length) b[at]! ^= 1 << e.bit;
          break;
        case 'set':
          if (b.length) b[at] = e.byte;
          break;
        case 'truncate':
          b = b.subarray(0, at);
          break;
        case 'delete':
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.n)]);
          break;
        case 'insert':
          b = Buffer.concat([b.subarray(0, at), Buffer.from(e.data), b.subarray(at)]);
          break;
        case 'duplicate':
          b = Buffer.concat([b.subarray(0, at + e.n), b.subarray(at)]);
          break;
      }
    }
    return Buffer.from(b);
  });
}

/** Splits `input` into chunks at the given cut points (as a network body arrives). */
export function chunksOf(input: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => (input.length === 0 ? 0 : c % (input.length + 1))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, input.length]) {
    if (p > prev) out.push(Buffer.from(input.subarray(prev, p)));
    prev = Math.max(prev, p);
  }
  return out;
}

export { fc };
