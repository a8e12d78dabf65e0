/**
 * Server-side verification of a published flake source tarball, before any release exists: a gzip
 * tar holding exactly one top-level directory with `flake.nix`, only files, directories and
 * symlinks that stay inside the tree, within size limits. Computes what Nix will compute after
 * unpacking (the NAR hash of the top-level directory, and lastModified = newest mtime), so the
 * server never serves a client's claim.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { InvalidInput, TooLarge } from '../errors.js';
import { type NarTree, serializeNar } from '../nix/nar.js';

export interface TarballLimits {
  maxCompressedBytes: number;
  maxUnpackedBytes: number;
  maxEntries: number;
}

export const DEFAULT_TARBALL_LIMITS: TarballLimits = { maxCompressedBytes: 256 << 20, maxUnpackedBytes: 512 << 20, maxEntries: 100_000 };

export interface VerifiedTarball {
  topDir: string;
  /** sha256 of the unpacked tree's NAR, SRI form (what flake.lock records). */
  narHash: string;
  narSize: number;
  lastModified: number;
  files: number;
  /** sha256 of the compressed bytes, hex. */
  sha256: string;
  size: number;
}

const bad = (detail: string) => new InvalidInput('tarball', detail);

export async function verifyFlakeTarball(bytes: Buffer, limits: TarballLimits = DEFAULT_TARBALL_LIMITS): Promise<VerifiedTarball> {
  if (bytes.length > limits.maxCompressedBytes) throw new TooLarge(`tarball larger than ${limits.maxCompressedBytes} bytes`);
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw bad('not gzip-compressed (expected a .tar.gz)');
  const root: NarTree & { type: 'directory' } = { type: 'directory', entries: {} };
  let topDir: string | undefined;
  let unpacked = 0;
  let entries = 0;
  let files = 0;
  let lastModified = 0;

  const dirAt = (parts: string[], create: boolean): (NarTree & { type: 'directory' }) | undefined => {
    let node = root;
    for (const part of parts) {
      let next = node.entries[part];
      if (!next) {
        if (!create) return undefined;
        next = { type: 'directory', entries: {} };
        node.entries[part] = next;
      }
      if (next.type !== 'directory') throw bad(`${parts.join('/')} is both a file and a directory`);
      node = next;
    }
    return node;
  };

  const extract = tar.extract();
  // The first problem found. Entries are never failed through next(err): with tar-stream 3 that
  // can surface as an uncaught exception, and a hostile tarball must never take the server down.
  let failure: Error | undefined;
  extract.on('entry', (header, stream, next) => {
    stream.on('error', () => undefined);
    const fail = (err: Error) => {
      failure ??= err;
      stream.on('end', () => next());
      stream.resume();
    };
    if (failure) return fail(failure);
    entries++;
    if (entries > limits.maxEntries) return fail(new TooLarge(`more than ${limits.maxEntries} entries`));
    const name = header.name.replace(/^\.\//, '').replace(/\/+$/, '');
    if (name === '' || name === '.') {
      stream.resume();
      return stream.on('end', () => next());
    }
    if (name.startsWith('/') || name.includes('\0')) return fail(bad(`absolute or invalid path ${JSON.stringify(name)}`));
    const parts = name.split('/');
    if (parts.some((p) => p === '..' || p === '.' || p === '')) return fail(bad(`path ${JSON.stringify(name)} leaves or confuses the tree`));
    if (topDir === undefined) topDir = parts[0];
    if (parts[0] !== topDir) return fail(bad(`more than one top-level entry (${JSON.stringify(topDir)} and ${JSON.stringify(parts[0])}); Nix expects exactly one directory`));
    if (header.mtime) lastModified = Math.max(lastModified, Math.floor(header.mtime.getTime() / 1000));
    const inTree = parts.slice(1);
    const leaf = inTree.at(-1);
    try {
      switch (header.type) {
        case 'directory':
          dirAt(parts, true);
          stream.resume();
          return stream.on('end', () => next());
        case 'file':
        case 'contiguous-file': {
          if (inTree.length === 0) return fail(bad('the top-level entry must be a directory'));
          const chunks: Buffer[] = [];
          stream.on('data', (data: unknown) => {
            const c = data as Buffer;
            unpacked += c.length;
            if (unpacked > limits.maxUnpackedBytes && !failure) {
              failure = new TooLarge(`unpacked size over ${limits.maxUnpackedBytes} bytes`);
              extract.destroy(failure);
            }
            chunks.push(c);
          });
          stream.on('end', () => {
            if (failure) return next();
            const dir = dirAt(parts.slice(0, -1), true)!;
            if (dir.entries[leaf!]) {
              failure ??= bad(`duplicate entry ${JSON.stringify(name)}`);
              return next();
            }
            dir.entries[leaf!] = { type: 'regular', contents: Buffer.concat(chunks), executable: ((header.mode ?? 0) & 0o100) !== 0 };
            files++;
            next();
          });
          return;
        }
        case 'symlink': {
          if (inTree.length === 0) return fail(bad('the top-level entry must be a directory'));
          const target = header.linkname ?? '';
          if (target === '' || target.startsWith('/')) return fail(bad(`symlink ${JSON.stringify(name)} points outside the tree (${JSON.stringify(target)})`));
          const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(inTree.join('/')), target));
          if (resolved === '..' || resolved.startsWith('../')) return fail(bad(`symlink ${JSON.stringify(name)} points outside the tree (${JSON.stringify(target)})`));
          const dir = dirAt(parts.slice(0, -1), true)!;
          dir.entries[leaf!] = { type: 'symlink', target };
          stream.resume();
          return stream.on('end', () => next());
        }
        default:
          return fail(bad(`${JSON.stringify(name)} is a ${header.type}; only files, directories and symlinks are allowed`));
      }
    } catch (err) {
      return fail(err as Error);
    }
  });

  try {
    await pipeline(Readable.from([bytes]), zlib.createGunzip(), extract);
  } catch (err) {
    if (failure) throw failure;
    if (err instanceof InvalidInput || err instanceof TooLarge) throw err;
    throw bad(`cannot unpack: ${(err as Error).message}`);
  }
  if (failure) throw failure;
  if (topDir === undefined) throw bad('empty archive');
  const top = root.entries[topDir];
  if (!top || top.type !== 'directory') throw bad('the top-level entry must be a directory');
  const flake = top.entries['flake.nix'];
  if (!flake || flake.type !== 'regular') throw bad(`no flake.nix in ${topDir}/`);
  const nar = serializeNar(top);
  return {
    topDir,
    narHash: `sha256-${createHash('sha256').update(nar).digest('base64')}`,
    narSize: nar.length,
    lastModified,
    files,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
  };
}
