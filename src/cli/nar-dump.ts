/**
 * Streams the NAR of a store path straight from the filesystem, as `nix-store --dump` does
 * (entries in byte order, the owner-execute bit, symlinks as links), without starting a process
 * per path. The server recomputes the hash, so any difference would be refused, not stored.
 */
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { NAR_MAGIC } from '../nix/nar.js';

function str(s: string | Buffer): Buffer[] {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(b.length));
  const pad = (8 - (b.length % 8)) % 8;
  return pad ? [len, b, Buffer.alloc(pad)] : [len, b];
}

async function* dumpNode(file: string): AsyncGenerator<Buffer> {
  const st = await lstat(file);
  yield* str('(');
  yield* str('type');
  if (st.isSymbolicLink()) {
    yield* str('symlink');
    yield* str('target');
    yield* str(Buffer.from(await readlink(file, { encoding: 'buffer' })));
  } else if (st.isDirectory()) {
    yield* str('directory');
    const names = (await readdir(file, { encoding: 'buffer' })).sort(Buffer.compare);
    for (const name of names) {
      yield* str('entry');
      yield* str('(');
      yield* str('name');
      yield* str(name);
      yield* str('node');
      yield* dumpNode(path.join(file, name.toString('utf8')));
      yield* str(')');
    }
  } else if (st.isFile()) {
    yield* str('regular');
    if (st.mode & 0o100) {
      yield* str('executable');
      yield* str('');
    }
    yield* str('contents');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(st.size));
    yield len;
    const fh = await open(file, 'r');
    try {
      let left = st.size;
      while (left > 0) {
        // A fresh buffer per read: it is handed on as it is (no copy), and the reader keeps it.
        const buf = Buffer.allocUnsafe(Math.min(1 << 20, left));
        const { bytesRead } = await fh.read(buf, 0, buf.length);
        if (bytesRead === 0) throw new Error(`${file} shrank while being read`);
        left -= bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      await fh.close();
    }
    const pad = (8 - (st.size % 8)) % 8;
    if (pad) yield Buffer.alloc(pad);
  } else {
    throw new Error(`${file} is neither a file, a directory nor a symlink`);
  }
  yield* str(')');
}

export function dumpPath(storePath: string): Readable {
  return Readable.from(
    (async function* () {
      yield* str(NAR_MAGIC);
      yield* dumpNode(storePath);
    })(),
  );
}
