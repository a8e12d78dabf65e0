/**
 * Flake source tarballs (src/registry/tarball.ts verifyFlakeTarball) as a publisher could craft
 * them with tar-stream: random entry types, names (`..`, absolute, long, `./` prefixes, names of
 * Object.prototype's properties), symlink targets and duplicates. Every archive resolves or rejects
 * with InvalidInput/TooLarge; and whatever is accepted, once unpacked for real by GNU tar, holds no
 * symlink that resolves (by the kernel's rules or lexically) outside the top-level directory.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { type TarballLimits, verifyFlakeTarball } from '../../src/registry/tarball.js';
import { corpus, fc, fuzzParams, fuzzTimeout, mutated, outcomeAsync, withinMs } from './fuzz.js';

const LIMITS: TarballLimits = { maxCompressedBytes: 1 << 20, maxUnpackedBytes: 1 << 20, maxEntries: 200 };
const FLAKE = '{ outputs = _: { }; }\n';

interface Entry {
  name: string;
  type: tar.Header['type'];
  content?: string;
  linkname?: string;
  mode?: number;
}

async function pack(entries: Entry[]): Promise<Buffer> {
  const p = tar.pack();
  for (const e of entries) {
    const header = {
      name: e.name,
      type: e.type,
      mtime: new Date(1_700_000_000_000),
      ...(e.mode !== undefined ? { mode: e.mode } : {}),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
    };
    if (e.type === 'file' || e.type === 'contiguous-file') p.entry(header, e.content ?? '');
    else p.entry(header);
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return zlib.gzipSync(Buffer.concat(chunks));
}

const PARTS = [
  'src',
  'a',
  'b',
  'd',
  'flake.nix',
  '..',
  '.',
  '',
  'constructor',
  '__proto__',
  'toString',
  'hasOwnProperty',
  'x'.repeat(120),
  'é',
  'a b',
];
const arbPart = fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...PARTS) },
  { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 8 }) },
);
const arbRelative = fc.array(arbPart, { minLength: 1, maxLength: 4 }).map((p) => p.join('/'));
const arbName = fc
  .tuple(
    fc.constantFrom('', '', '', './', '/', '././'),
    fc.constantFrom('src/', 'src/', 'src/', 'other/', ''),
    arbRelative,
    fc.constantFrom('', '', '/', '//'),
  )
  .map(([prefix, top, rel, suffix]) => `${prefix}${top}${rel}${suffix}`);
const arbTarget = fc.oneof(
  fc
    .tuple(
      fc.constantFrom('', '', '/', './'),
      fc.array(fc.constantFrom('..', '.', 'a', 'b', 'd', 'flake.nix', 'l', 'm', '', 'src', 'constructor'), {
        minLength: 1,
        maxLength: 5,
      }),
    )
    .map(([p, parts]) => p + parts.join('/')),
  fc.string({ maxLength: 12 }),
);
const arbEntry: fc.Arbitrary<Entry> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      name: arbName,
      type: fc.constant('file' as const),
      content: fc.string({ maxLength: 20 }),
      mode: fc.constantFrom(0o644, 0o755),
    }),
  },
  { weight: 3, arbitrary: fc.record({ name: arbName, type: fc.constant('directory' as const) }) },
  { weight: 4, arbitrary: fc.record({ name: arbName, type: fc.constant('symlink' as const), linkname: arbTarget }) },
  {
    weight: 1,
    arbitrary: fc.record({
      name: arbName,
      type: fc.constantFrom(
        'link' as const,
        'character-device' as const,
        'block-device' as const,
        'fifo' as const,
        'contiguous-file' as const,
      ),
      linkname: arbTarget,
    }),
  },
);
/** Mostly archives that start like a flake, so that acceptance is reached and tested. */
const arbEntries = fc
  .tuple(fc.boolean(), fc.array(arbEntry, { maxLength: 10 }))
  .map(([withFlake, rest]) =>
    withFlake ? [{ name: 'src/flake.nix', type: 'file' as const, content: FLAKE }, ...rest] : rest,
  );

/**
 * Resolves `target` from `dir` as the kernel would, on the unpacked tree, noting whether any step
 * is outside `top`. Missing names end the walk (nothing more can be resolved through them).
 */
function escapesByResolution(top: string, dir: string, target: string, budget = { links: 40 }): boolean {
  if (target.startsWith('/')) return true;
  let cur = dir;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (cur === top) return true;
      cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, part);
    let st;
    try {
      st = lstatSync(next);
    } catch {
      return false;
    }
    if (st.isSymbolicLink()) {
      if (--budget.links < 0) return false;
      if (escapesByResolution(top, cur, readlinkSync(next), budget)) return true;
      return false; // conservatively stop: what follows is resolved through the link's own checks
    }
    if (!st.isDirectory()) return false;
    cur = next;
  }
  return false;
}

function symlinksIn(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSymbolicLink()) out.push(p);
    else if (e.isDirectory()) out.push(...symlinksIn(p));
  }
  return out;
}

function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isFile()) n++;
    else if (e.isDirectory() && !e.isSymbolicLink()) n += countFiles(path.join(dir, e.name));
  }
  return n;
}

/** Unpacks an accepted tarball with GNU tar and checks that nothing in it points outside. */
function checkUnpacked(bytes: Buffer, topDir: string, files: number): void {
  const root = mkdtempSync(path.join(os.tmpdir(), 'floe-fuzz-tar-'));
  try {
    const out = path.join(root, 'out');
    mkdirSync(out);
    // Decompressed here, as the verifier does (the gzip tool calls bytes after the stream an error;
    // they are not part of the tree either way).
    const r = spawnSync('tar', ['-xf', '-', '-C', out], { input: zlib.gunzipSync(bytes), encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(out)).toEqual([topDir]);
    const top = path.join(out, topDir);
    expect(countFiles(top)).toBe(files);
    for (const link of symlinksIn(top)) {
      const target = readlinkSync(link);
      const lexical = path.posix.normalize(path.posix.join(path.relative(top, path.dirname(link)), target));
      expect(
        lexical === '..' || lexical.startsWith('../') || lexical.startsWith('/'),
        `${link} -> ${target} leaves the tree lexically`,
      ).toBe(false);
      expect(
        escapesByResolution(top, path.dirname(link), target),
        `${link} -> ${target} resolves outside the tree`,
      ).toBe(false);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function check(bytes: Buffer): Promise<boolean> {
  const r = await withinMs(
    15_000,
    'verifyFlakeTarball',
    outcomeAsync(() => verifyFlakeTarball(bytes, LIMITS), ['invalid_input', 'too_large']),
  );
  if (r.ok) checkUnpacked(bytes, r.value.topDir, r.value.files);
  return r.ok;
}

describe('flake tarball fuzz', () => {
  it.each(corpus('tarball').map((e) => [e.name, e.bytes] as const))('corpus %s', async (name, bytes) => {
    const ok = await check(bytes);
    if (name.startsWith('valid-')) expect(ok).toBe(true);
    if (name.startsWith('refused-')) expect(ok).toBe(false);
  });

  it(
    'generated archives resolve or reject with a client error, and nothing accepted escapes',
    async () => {
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(arbEntries, async (entries) => {
          if (await check(await pack(entries))) accepted++;
        }),
        fuzzParams(2),
      );
      // The generator must reach acceptance often enough for the escape check to mean something.
      expect(accepted).toBeGreaterThan(0);
    },
    fuzzTimeout(60),
  );

  it(
    'mutated archives of the corpus (gzip bytes, or the tar inside) resolve or reject with a client error',
    async () => {
      const gz = corpus('tarball')
        .map((e) => new Uint8Array(e.bytes))
        .filter((b) => b[0] === 0x1f && b[1] === 0x8b);
      const raw = gz.flatMap((b) => {
        try {
          return [new Uint8Array(zlib.gunzipSync(b))];
        } catch {
          return []; // the truncated entry
        }
      });
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            mutated(fc.constantFrom(...gz)),
            mutated(fc.constantFrom(...raw)).map((t) => zlib.gzipSync(t)),
          ),
          async (bytes) => {
            await check(bytes);
          },
        ),
        fuzzParams(2),
      );
    },
    fuzzTimeout(60),
  );
});
