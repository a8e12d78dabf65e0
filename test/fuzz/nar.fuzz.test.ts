/**
 * The streaming NAR validator (src/nix/nar.ts) on outside bytes: every NAR upload and every NAR
 * fetched from an upstream goes through it. Arbitrary and mutated archives are accepted or refused
 * with InvalidInput, never another exception; the verdict does not depend on how the bytes were
 * chunked; its buffer stays bounded; and what it accepts is exactly what an independent,
 * non-streaming reader of the format accepts (so a mutation never slips through).
 */
import { describe, expect, it } from 'vitest';
import { NAR_MAGIC, type NarTree, NarValidator, serializeNar } from '../../src/nix/nar.js';
import { arbNarTree } from './arbitraries.js';
import { chunksOf, corpus, fc, fuzzParams, fuzzTimeout, mutated, outcome } from './fuzz.js';

/** The longest token the validator ever has to hold (a symlink target, rounded to its padding). */
const MAX_HELD_BYTES = 4096;

type Verdict = { ok: true; size: number; files: number; directories: number; symlinks: number } | { ok: false };

function validate(chunks: Buffer[]): Verdict {
  const v = new NarValidator();
  const r = outcome(() => {
    for (const c of chunks) {
      v.push(c);
      expect((v as unknown as { buffer: Buffer }).buffer.length).toBeLessThanOrEqual(MAX_HELD_BYTES);
    }
    return v.end();
  }, 'invalid_input');
  return r.ok ? { ok: true, size: v.size, ...r.value } : { ok: false };
}

/**
 * The reference: a plain recursive reader of the NAR grammar (Nix's archive.cc rules), written
 * apart from the validator. Returns the tree, or undefined if Nix would refuse the archive.
 */
function referenceParse(b: Buffer): NarTree | undefined {
  let pos = 0;
  class Refused extends Error {}
  const fail = (): never => {
    throw new Refused();
  };
  const int = (): number => {
    if (pos + 8 > b.length) fail();
    const v = b.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail();
    return Number(v);
  };
  const bytes = (max: number): Buffer => {
    const n = int();
    if (n > max || pos + n > b.length) fail();
    const out = b.subarray(pos, pos + n);
    pos += n;
    const pad = (8 - (n % 8)) % 8;
    if (pos + pad > b.length) fail();
    for (let i = 0; i < pad; i++) if (b[pos + i] !== 0) fail();
    pos += pad;
    return out;
  };
  const str = () => bytes(64).toString('latin1');
  const want = (s: string) => {
    if (str() !== s) fail();
  };
  const node = (depth: number): NarTree => {
    if (depth > 256) fail();
    want('(');
    want('type');
    const type = str();
    if (type === 'regular') {
      let tag = str();
      let executable = false;
      if (tag === 'executable') {
        want('');
        executable = true;
        tag = str();
      }
      if (tag !== 'contents') fail();
      const contents = Buffer.from(bytes(Number.MAX_SAFE_INTEGER));
      want(')');
      return { type: 'regular', contents, executable };
    }
    if (type === 'symlink') {
      want('target');
      const target = bytes(4095);
      if (target.length === 0 || target.includes(0)) fail();
      want(')');
      return { type: 'symlink', target: target.toString('latin1') };
    }
    if (type !== 'directory') fail();
    const entries: Record<string, NarTree> = Object.create(null);
    let previous: Buffer | undefined;
    for (;;) {
      const tag = str();
      if (tag === ')') return { type: 'directory', entries };
      if (tag !== 'entry') fail();
      want('(');
      want('name');
      const name = bytes(255);
      if (
        name.length === 0 ||
        name.includes(0x2f) ||
        name.includes(0) ||
        name.toString('latin1') === '.' ||
        name.toString('latin1') === '..'
      )
        fail();
      if (previous && Buffer.compare(previous, name) >= 0) fail();
      previous = Buffer.from(name);
      want('node');
      entries[name.toString('latin1')] = node(depth + 1);
      want(')');
    }
  };
  try {
    if (bytes(64).toString('latin1') !== NAR_MAGIC) fail();
    const tree = node(0);
    if (pos !== b.length) fail();
    return tree;
  } catch (err) {
    if (err instanceof Refused) return undefined;
    throw err;
  }
}

function counts(t: NarTree): { files: number; directories: number; symlinks: number } {
  if (t.type === 'regular') return { files: 1, directories: 0, symlinks: 0 };
  if (t.type === 'symlink') return { files: 0, directories: 0, symlinks: 1 };
  const c = { files: 0, directories: 1, symlinks: 0 };
  for (const e of Object.values(t.entries)) {
    const s = counts(e);
    c.files += s.files;
    c.directories += s.directories;
    c.symlinks += s.symlinks;
  }
  return c;
}

/** The contract on one input: same verdict in one piece, byte by byte and cut anywhere, and the reference's. */
function checkBytes(input: Buffer, cuts: number[]): Verdict {
  const whole = validate([input]);
  expect(validate(chunksOf(input, cuts))).toEqual(whole);
  if (input.length <= 512) expect(validate([...input].map((x) => Buffer.from([x])))).toEqual(whole);
  const ref = referenceParse(input);
  expect(
    whole.ok,
    `validator ${whole.ok ? 'accepted' : 'refused'} what the reference reader ${ref ? 'accepts' : 'refuses'}`,
  ).toBe(ref !== undefined);
  if (whole.ok) {
    expect(whole.size).toBe(input.length);
    expect({ files: whole.files, directories: whole.directories, symlinks: whole.symlinks }).toEqual(counts(ref!));
  }
  return whole;
}

const arbCuts = fc.array(fc.nat(), { maxLength: 8 });
const arbValidNar = arbNarTree.map((t) => serializeNar(t));

describe('NAR validator fuzz', () => {
  it.each(corpus('nar').map((e) => [e.name, e.bytes] as const))('corpus %s', (name, bytes) => {
    const verdict = checkBytes(bytes, [1, 7, 8, 9, 100, 1000]);
    if (name.startsWith('valid-')) expect(verdict.ok).toBe(true);
    if (name.startsWith('refused-')) expect(verdict.ok).toBe(false);
  });

  it(
    'serializeNar of any generated tree is accepted, however it is chunked, with its size and counts',
    () => {
      fc.assert(
        fc.property(arbNarTree, arbCuts, (tree, cuts) => {
          const nar = serializeNar(tree);
          const v = checkBytes(nar, cuts);
          expect(v).toEqual({ ok: true, size: nar.length, ...counts(tree) });
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(40),
  );

  it(
    'mutated NARs (bit flips, truncation, splices): the verdict is the reference reader’s, whatever the chunking',
    () => {
      fc.assert(
        fc.property(mutated(arbValidNar), arbCuts, (nar, cuts) => void checkBytes(nar, cuts)),
        fuzzParams(),
      );
    },
    fuzzTimeout(40),
  );

  it(
    'arbitrary bytes, and arbitrary bytes behind a valid magic, are refused with InvalidInput',
    () => {
      const magic = serializeNar({ type: 'regular', contents: '' }).subarray(0, 24);
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), arbCuts, (bytes, withMagic, cuts) => {
          const input = withMagic ? Buffer.concat([magic, bytes]) : Buffer.from(bytes);
          void checkBytes(input, cuts);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(40),
  );

  it(
    'splices of two valid NARs are judged as the reference reader judges them',
    () => {
      fc.assert(
        fc.property(arbValidNar, arbValidNar, fc.nat(), fc.nat(), arbCuts, (a, b, i, j, cuts) => {
          void checkBytes(Buffer.concat([a.subarray(0, i % (a.length + 1)), b.subarray(j % (b.length + 1))]), cuts);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(40),
  );
});
