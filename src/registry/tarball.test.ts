import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { verifyFlakeTarball } from './tarball.js';

/** A tarball made by GNU tar, as CI would make it. */
function gnuTarball(build: (dir: string) => void): { bytes: Buffer; dir: string } {
  const root = mkdtempSync(path.join(os.tmpdir(), 'floe-tarball-'));
  const dir = path.join(root, 'source');
  mkdirSync(dir);
  build(dir);
  execFileSync('tar', ['-czf', path.join(root, 'src.tar.gz'), '-C', root, 'source']);
  return { bytes: readFileSync(path.join(root, 'src.tar.gz')), dir };
}

/** A hand-made tarball, for what no honest tool produces. */
async function crafted(
  entries: Array<{ name: string; type?: tar.Header['type']; content?: string; linkname?: string }>,
): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.content !== undefined) pack.entry({ name: e.name, type: e.type ?? 'file' }, e.content);
    else pack.entry({ name: e.name, type: e.type ?? 'directory', ...(e.linkname ? { linkname: e.linkname } : {}) });
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return zlib.gzipSync(Buffer.concat(chunks));
}

const flake = '{ outputs = _: { }; }\n';

describe('verifyFlakeTarball', () => {
  it('accepts a flake source tree and computes the NAR hash Nix computes', async () => {
    const { bytes, dir } = gnuTarball((d) => {
      writeFileSync(path.join(d, 'flake.nix'), flake);
      writeFileSync(path.join(d, 'README.md'), '# hi\n');
      mkdirSync(path.join(d, 'bin'));
      writeFileSync(path.join(d, 'bin', 'run'), '#!/bin/sh\n');
      chmodSync(path.join(d, 'bin', 'run'), 0o755);
      symlinkSync('README.md', path.join(d, 'link'));
    });
    const v = await verifyFlakeTarball(bytes);
    expect(v).toMatchObject({ topDir: 'source', files: 3 });
    expect(v.narHash).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
    expect(v.lastModified).toBeGreaterThan(1_700_000_000);
    if (spawnSync('sh', ['-c', 'command -v nix']).status === 0) {
      const nix = execFileSync('nix', ['hash', 'path', dir], {
        env: { ...process.env, NIX_CONFIG: 'experimental-features = nix-command flakes' },
        encoding: 'utf8',
      }).trim();
      expect(v.narHash).toBe(nix);
    }
  });

  const cases: Array<[string, () => Promise<Buffer>, RegExp]> = [
    ['not gzip', async () => Buffer.from('plain text'), /gzip/],
    ['no flake.nix', () => crafted([{ name: 'src/' }, { name: 'src/default.nix', content: '1' }]), /no flake.nix/],
    [
      'two top-level entries',
      () =>
        crafted([
          { name: 'a/flake.nix', content: flake },
          { name: 'b/x', content: '1' },
        ]),
      /more than one top-level/,
    ],
    ['a top-level file', () => crafted([{ name: 'flake.nix', content: flake }]), /top-level entry must be a directory/],
    ['absolute paths', () => crafted([{ name: '/etc/passwd', content: 'x' }]), /absolute/],
    [
      'dot-dot paths',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/../../evil', content: 'x' },
        ]),
      /leaves or confuses/,
    ],
    [
      'links leaving the tree',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/l', type: 'symlink', linkname: '../../etc/passwd' },
        ]),
      /outside the tree/,
    ],
    [
      'absolute links',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/l', type: 'symlink', linkname: '/etc/passwd' },
        ]),
      /outside the tree/,
    ],
    [
      'device files',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/dev', type: 'character-device' },
        ]),
      /only files, directories and symlinks/,
    ],
    [
      'hard links',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/h', type: 'link', linkname: 'src/flake.nix' },
        ]),
      /only files, directories and symlinks/,
    ],
    [
      'a file below a symlink (once an uncaught exception)',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/l', type: 'symlink', linkname: 'x' },
          { name: 'src/l/f', content: '1' },
        ]),
      /src\/l is both a symlink and a directory/,
    ],
    [
      'a directory below a symlink',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/l', type: 'symlink', linkname: 'x' },
          { name: 'src/l/d/' },
        ]),
      /both a symlink and a directory/,
    ],
    [
      'a symlink replacing a directory',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/d/f', content: '1' },
          { name: 'src/d', type: 'symlink', linkname: '..' },
        ]),
      /duplicate entry "src\/d"/,
    ],
    [
      'a symlink replacing a file',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/flake.nix', type: 'symlink', linkname: 'x' },
        ]),
      /duplicate entry/,
    ],
    [
      'symlink chains climbing out through a link',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/d/up', type: 'symlink', linkname: '..' },
          { name: 'src/l', type: 'symlink', linkname: 'd/up/../..' },
        ]),
      /outside the tree .*"d\/up", which is not a directory/,
    ],
    [
      '".." out of a link declared later',
      () =>
        crafted([
          { name: 'src/flake.nix', content: flake },
          { name: 'src/l', type: 'symlink', linkname: 'm/..' },
          { name: 'src/m', type: 'symlink', linkname: '.' },
        ]),
      /not a directory/,
    ],
    [
      'truncated gzip',
      async () => (await crafted([{ name: 'src/flake.nix', content: flake }])).subarray(0, 30),
      /cannot unpack/,
    ],
  ];
  for (const [name, make, message] of cases) {
    it(`rejects ${name}`, async () => {
      await expect(verifyFlakeTarball(await make())).rejects.toThrow(message);
    });
  }

  it('accepts links that stay inside, including ".." out of real directories', async () => {
    const ok = await crafted([
      { name: 'src/flake.nix', content: flake },
      { name: 'src/a/b/' },
      { name: 'src/a/b/up', type: 'symlink', linkname: '../../flake.nix' },
      { name: 'src/a/side', type: 'symlink', linkname: 'b/../b/up' },
      { name: 'src/a/self', type: 'symlink', linkname: './b/up' },
      { name: 'src/dangling', type: 'symlink', linkname: 'nowhere/yet' },
    ]);
    expect((await verifyFlakeTarball(ok)).files).toBe(1);
  });

  it('a failure in any entry callback rejects, and later entries are not read', async () => {
    const entries = [
      { name: 'src/flake.nix', content: flake },
      { name: 'src/l', type: 'symlink' as const, linkname: 'x' },
      { name: 'src/l/f', content: '1' },
    ];
    for (let i = 0; i < 200; i++) entries.push({ name: `src/f${i}`, content: 'x'.repeat(100) });
    await expect(
      verifyFlakeTarball(await crafted(entries), {
        maxCompressedBytes: 1 << 20,
        maxUnpackedBytes: 1 << 20,
        maxEntries: 50,
      }),
    ).rejects.toThrow(/both a symlink and a directory/);
  });

  it('enforces size limits', async () => {
    const big = await crafted([
      { name: 'src/flake.nix', content: flake },
      { name: 'src/blob', content: 'x'.repeat(10_000) },
    ]);
    await expect(
      verifyFlakeTarball(big, { maxCompressedBytes: 1 << 20, maxUnpackedBytes: 5_000, maxEntries: 100 }),
    ).rejects.toThrow(/unpacked size/);
    await expect(
      verifyFlakeTarball(big, { maxCompressedBytes: 10, maxUnpackedBytes: 1 << 20, maxEntries: 100 }),
    ).rejects.toThrow(/larger than/);
  });
});
