/**
 * Blobs on the local filesystem: `<root>/blobs/<ab>/<key>` with a two-character fan-out, written
 * to `<root>/tmp` first, fsynced, then renamed into place, so a crash never exposes half a file.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import type { BlobInfo, BlobRead, BlobStore, BlobWriter } from '../types.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../permissions.js';

const KEY = /^[0-9a-z][0-9a-z._-]{1,200}$/;

function checkKey(key: string): void {
  if (!KEY.test(key)) throw new Error(`invalid blob key ${JSON.stringify(key)}`);
}

/** Where the blob `key` lives under a data directory (also read by `floe backup` beside a running server). */
export function blobFile(root: string, key: string): string {
  checkKey(key);
  return path.join(root, 'blobs', key.slice(0, 2), key);
}

export class FsBlobStore implements BlobStore {
  private constructor(
    private readonly blobDir: string,
    private readonly tmpDir: string,
  ) {}

  static async open(root: string): Promise<FsBlobStore> {
    const blobDir = path.join(root, 'blobs');
    const tmpDir = path.join(root, 'tmp');
    await mkdir(blobDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    // Anything left in tmp/ is from an upload that never committed (crash, kill): drop it.
    await rm(tmpDir, { recursive: true, force: true });
    await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    return new FsBlobStore(blobDir, tmpDir);
  }

  private pathFor(key: string): string {
    return blobFile(path.dirname(this.blobDir), key);
  }

  async begin(): Promise<BlobWriter> {
    const tmp = path.join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const body = createWriteStream(tmp, { flags: 'wx', mode: PRIVATE_FILE_MODE });
    // Writers report errors through their pipeline or commit(); an abort that destroys the stream
    // under a pending write must not become an unhandled 'error' event that kills the process.
    body.on('error', () => undefined);
    let done = false;
    const abort = async () => {
      done = true;
      // The file is opened asynchronously: wait until the stream has closed (and so created the
      // file, if it was going to) before removing it, or a late open leaves an orphan behind.
      if (!body.closed) {
        const closed = new Promise<void>((resolve) => body.once('close', () => resolve()));
        body.destroy();
        await closed;
      }
      await rm(tmp, { force: true });
    };
    const commit = async (key: string) => {
      if (done) throw new Error('blob writer already finished');
      const target = this.pathFor(key);
      if (!body.writableFinished) {
        body.end();
        await finished(body);
      }
      done = true;
      const fh = await open(tmp, 'r');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      const dir = path.dirname(target);
      await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      // Same key = same content: keeping the existing file is correct and avoids a rewrite.
      if ((await this.size(key)) !== undefined) {
        await rm(tmp, { force: true });
        return;
      }
      await rename(tmp, target);
      const dh = await open(dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    };
    return { body, commit, abort };
  }

  async get(key: string, range?: { start: number; end: number }): Promise<BlobRead | undefined> {
    const file = this.pathFor(key);
    const size = await this.size(key);
    if (size === undefined) return undefined;
    const body = createReadStream(file, range ? { start: range.start, end: range.end, highWaterMark: 1024 * 1024 } : { highWaterMark: 1024 * 1024 });
    return { body, size };
  }

  /** Both directories must exist and be directories (a missing mount is not "empty"). */
  async check(): Promise<void> {
    for (const [name, dir] of [['blobs', this.blobDir], ['tmp', this.tmpDir]] as const) {
      const ok = await stat(dir).then(
        (s) => s.isDirectory(),
        () => false,
      );
      // No absolute path in the message: readiness answers are public.
      if (!ok) throw new Error(`the ${name} directory of the data dir is missing or unreadable`);
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.pathFor(key))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathFor(key), { force: true });
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const dir of await readdir(this.blobDir, { withFileTypes: true })) {
      if (!dir.isDirectory()) continue;
      let names: string[];
      try {
        names = await readdir(path.join(this.blobDir, dir.name));
      } catch {
        continue;
      }
      for (const key of names) {
        if (!KEY.test(key)) continue;
        try {
          const st = await stat(path.join(this.blobDir, dir.name, key));
          if (st.isFile()) yield { key, size: st.size, modifiedAt: st.mtimeMs };
        } catch {
          // deleted meanwhile
        }
      }
    }
  }

  /** For tests and diagnostics: the number of uncommitted temp files. */
  async pendingTempFiles(): Promise<number> {
    return (await readdir(this.tmpDir)).length;
  }
}
