/**
 * Server-side verification of a published flake source tarball, before any release exists: a gzip
 * tar holding exactly one top-level directory with `flake.nix`, only files, directories and
 * symlinks that stay inside the tree, within size limits. Computes what Nix will compute after
 * unpacking (the NAR hash of the top-level directory, and lastModified = newest mtime), so the
 * server never serves a client's claim.
 */
import { createHash } from 'node:crypto';
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

export const DEFAULT_TARBALL_LIMITS: TarballLimits = {
  maxCompressedBytes: 256 << 20,
  maxUnpackedBytes: 512 << 20,
  maxEntries: 100_000,
};

export interface VerifiedTarball {
  topDir: string;
  /** sha256 of the unpacked tree's NAR, SRI form (what flake.lock records). */
  narHash: string;
  narSize: number;
  /** The NAR itself (what the release's source is served as on /cache). */
  nar: Buffer;
  lastModified: number;
  files: number;
  /** sha256 of the compressed bytes, hex. */
  sha256: string;
  size: number;
}

const bad = (detail: string) => new InvalidInput('tarball', detail);

type Dir = NarTree & { type: 'directory' };

/**
 * Entries are keyed by file name, and names like `constructor` or `__proto__` are a publisher's to
 * choose: a plain object would answer them from Object.prototype (a false "duplicate entry").
 */
const noEntries = (): Dir['entries'] => Object.create(null) as Dir['entries'];
const childOf = (here: NarTree | undefined, name: string): NarTree | undefined =>
  here?.type === 'directory' && Object.hasOwn(here.entries, name) ? here.entries[name] : undefined;

/**
 * Why a symlink at `inTree` (its path below the top-level directory) with `target` could resolve
 * outside the unpacked tree, or undefined if it cannot. Nix unpacks the whole tarball before using
 * it, so this runs on the finished tree. Normalizing the target lexically is not enough: in
 * `d/up/../..`, `up` may itself be a link to `..`. So a `..` may only step out of something that
 * is a directory in the tree; stepping out of a link (or out of anything reached through one),
 * a file or a missing name is refused, and so is stepping above the top. Names only ever step
 * down, into directories or into links that are themselves checked the same way, so whatever
 * passes stays inside.
 */
export function linkEscape(top: Dir, inTree: string[], target: string): string | undefined {
  // From the top down to where we are; undefined = not known to be a directory of the tree.
  const stack: Array<NarTree | undefined> = [top];
  for (const part of inTree.slice(0, -1)) stack.push(childOf(stack.at(-1), part));
  const walked: string[] = [];
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      const here = stack.at(-1);
      if (stack.length === 1) return 'it climbs above the top-level directory';
      if (here?.type !== 'directory')
        return `".." after ${JSON.stringify(walked.join('/'))}, which is not a directory of the tarball (a symlink, or reached through one)`;
      stack.pop();
    } else {
      stack.push(childOf(stack.at(-1), part));
    }
    walked.push(part);
  }
  return undefined;
}

export async function verifyFlakeTarball(
  bytes: Buffer,
  limits: TarballLimits = DEFAULT_TARBALL_LIMITS,
): Promise<VerifiedTarball> {
  if (bytes.length > limits.maxCompressedBytes)
    throw new TooLarge(`tarball larger than ${limits.maxCompressedBytes} bytes`);
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw bad('not gzip-compressed (expected a .tar.gz)');
  const root: Dir = { type: 'directory', entries: noEntries() };
  let topDir: string | undefined;
  let unpacked = 0;
  let entries = 0;
  let files = 0;
  let lastModified = 0;

  const dirAt = (parts: string[], create: boolean): Dir | undefined => {
    let node = root;
    for (const part of parts) {
      let next = node.entries[part];
      if (!next) {
        if (!create) return undefined;
        next = { type: 'directory', entries: noEntries() };
        node.entries[part] = next;
      }
      if (next.type !== 'directory')
        throw bad(`${parts.join('/')} is both a ${next.type === 'symlink' ? 'symlink' : 'file'} and a directory`);
      node = next;
    }
    return node;
  };
  const links: Array<{ name: string; inTree: string[]; target: string }> = [];

  const extract = tar.extract();
  // The first problem found. Every callback below runs inside tar-stream's event handlers, where an
  // exception is uncaught and ends the process: a hostile tarball must never take the server down,
  // so each callback catches and destroys the extraction instead, which rejects the pipeline.
  let failure: Error | undefined;
  const abort = (err: unknown) => {
    failure ??= err instanceof Error ? err : new Error(String(err));
    extract.destroy(failure);
  };
  const guarded =
    <A extends unknown[]>(fn: (...args: A) => void) =>
    (...args: A): void => {
      if (failure) return;
      try {
        fn(...args);
      } catch (err) {
        abort(err);
      }
    };
  extract.on(
    'entry',
    guarded((header, stream, next) => {
      stream.on('error', () => undefined);
      const skip = () => {
        stream.on(
          'end',
          guarded(() => next()),
        );
        stream.resume();
      };
      entries++;
      if (entries > limits.maxEntries) throw new TooLarge(`more than ${limits.maxEntries} entries`);
      const name = header.name.replace(/^\.\//, '').replace(/\/+$/, '');
      if (name === '' || name === '.') {
        // GNU tar's "./": nothing to record. Anything else by that name is not a tree Nix unpacks.
        if (header.type !== 'directory') throw bad(`a ${header.type} named ${JSON.stringify(header.name)}`);
        return skip();
      }
      if (name.startsWith('/') || name.includes('\0')) throw bad(`absolute or invalid path ${JSON.stringify(name)}`);
      const parts = name.split('/');
      if (parts.some((p) => p === '..' || p === '.' || p === ''))
        throw bad(`path ${JSON.stringify(name)} leaves or confuses the tree`);
      if (topDir === undefined) topDir = parts[0];
      if (parts[0] !== topDir)
        throw bad(
          `more than one top-level entry (${JSON.stringify(topDir)} and ${JSON.stringify(parts[0])}); Nix expects exactly one directory`,
        );
      if (header.mtime) lastModified = Math.max(lastModified, Math.floor(header.mtime.getTime() / 1000));
      const inTree = parts.slice(1);
      const leaf = inTree.at(-1)!;
      // GNU tar (and old tar readers) unpack a non-directory whose name ends in "/" as a directory:
      // the tree we hash would not be the tree Nix unpacks.
      if (header.type !== 'directory' && header.name.endsWith('/'))
        throw bad(`${JSON.stringify(name)} is a ${header.type} whose name ends in "/"`);
      if (header.type === 'directory') {
        dirAt(parts, true);
        return skip();
      }
      if (header.type !== 'file' && header.type !== 'contiguous-file' && header.type !== 'symlink') {
        throw bad(`${JSON.stringify(name)} is a ${header.type}; only files, directories and symlinks are allowed`);
      }
      if (inTree.length === 0) throw bad('the top-level entry must be a directory');
      // The parent and the duplicate check happen before any content is read, so the callbacks
      // that follow have nothing left that can fail but the size limit.
      const dir = dirAt(parts.slice(0, -1), true)!;
      if (dir.entries[leaf]) throw bad(`duplicate entry ${JSON.stringify(name)}`);
      if (header.type === 'symlink') {
        const target = header.linkname ?? '';
        if (target === '' || target.startsWith('/'))
          throw bad(`symlink ${JSON.stringify(name)} points outside the tree (${JSON.stringify(target)})`);
        dir.entries[leaf] = { type: 'symlink', target };
        links.push({ name, inTree, target });
        return skip();
      }
      const chunks: Buffer[] = [];
      stream.on(
        'data',
        guarded((data: unknown) => {
          const chunk = data as Buffer;
          unpacked += chunk.length;
          if (unpacked > limits.maxUnpackedBytes)
            throw new TooLarge(`unpacked size over ${limits.maxUnpackedBytes} bytes`);
          chunks.push(chunk);
        }),
      );
      stream.on(
        'end',
        guarded(() => {
          dir.entries[leaf] = {
            type: 'regular',
            contents: Buffer.concat(chunks),
            executable: ((header.mode ?? 0) & 0o100) !== 0,
          };
          files++;
          next();
        }),
      );
    }),
  );

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
  if (top?.type !== 'directory') throw bad('the top-level entry must be a directory');
  for (const link of links) {
    const escapes = linkEscape(top, link.inTree, link.target);
    if (escapes)
      throw bad(
        `symlink ${JSON.stringify(link.name)} points outside the tree (${JSON.stringify(link.target)}): ${escapes}`,
      );
  }
  const flake = top.entries['flake.nix'];
  if (flake?.type !== 'regular') throw bad(`no flake.nix in ${topDir}/`);
  const nar = serializeNar(top);
  return {
    topDir,
    narHash: `sha256-${createHash('sha256').update(nar).digest('base64')}`,
    narSize: nar.length,
    nar,
    lastModified,
    files,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    size: bytes.length,
  };
}
