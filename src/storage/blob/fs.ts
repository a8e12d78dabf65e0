/**
 * Blobs on the local filesystem: `<root>/blobs/<ab>/<key>` with a two-character fan-out, written
 * to `<root>/tmp` first, fsynced, then linked into place, so a crash never exposes half a file.
 */
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { BlobInfo, BlobRead, BlobStore, BlobWriter } from '../types.js';
import { PRIVATE_DIR_MODE } from '../permissions.js';
import { SpoolStream, createSpoolFile, dropStaleSpool, uniqueName } from './spool.js';

const KEY = /^[0-9a-z][0-9a-z._-]{1,200}$/;

function checkKey(key: string): void {
  if (!KEY.test(key)) throw new Error(`invalid blob key ${JSON.stringify(key)}`);
}

/** Where the blob `key` lives under a data directory (also read by `floe backup` beside a running server). */
export function blobFile(root: string, key: string): string {
  checkKey(key);
  return path.join(root, 'blobs', key.slice(0, 2), key);
}

/** unlink(2), one trip through the threadpool (rm's force option costs an lstat first). */
async function unlinkIfThere(p: string): Promise<void> {
  await unlink(p).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

async function syncPath(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class FsBlobStore implements BlobStore {
  private observe: ((operation: string) => void) | undefined;

  private constructor(
    private readonly blobDir: string,
    private readonly tmpDir: string,
  ) {}

  /** `sharedSpool`: other processes (workers) use this data directory too (see dropStaleSpool). */
  static async open(root: string, opts: { sharedSpool?: boolean } = {}): Promise<FsBlobStore> {
    const blobDir = path.join(root, 'blobs');
    const tmpDir = path.join(root, 'tmp');
    await mkdir(blobDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await mkdir(tmpDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await dropStaleSpool(tmpDir, opts.sharedSpool);
    return new FsBlobStore(blobDir, tmpDir);
  }

  private pathFor(key: string): string {
    return blobFile(path.dirname(this.blobDir), key);
  }

  async begin(): Promise<BlobWriter> {
    const tmp = path.join(this.tmpDir, `${Date.now()}-${uniqueName()}`);
    await createSpoolFile(tmp);
    // The verifier thread fsyncs what it writes (syncFile); `body` does as it closes.
    const spool = new SpoolStream(tmp, true);
    let done = false;
    const abort = async () => {
      done = true;
      await spool.discard();
      await unlinkIfThere(tmp);
    };
    const commit = async (key: string) => {
      if (done) throw new Error('blob writer already finished');
      const target = this.pathFor(key);
      await spool.settle();
      done = true;
      const step = async <T>(operation: string, work: () => Promise<T>): Promise<T> => {
        this.observe?.(operation);
        return work();
      };
      // Whether some org already stores this content must not show in how long this takes (a
      // skipped rename was a few ms faster), and the stored file must never be replaced (its
      // hash and size are in the nars row and in served narinfos). So both cases make the same
      // calls: link(2) creates the target only if it is absent (atomic, unlike stat + rename);
      // a scratch name in the same directory makes the directory fsync write an entry either way.
      // The data itself was fsynced by whoever wrote it (`flush` above, or the verifier thread).
      const dir = path.dirname(target);
      const scratch = `${target}.${uniqueName()}.dup`;
      try {
        // The fan-out directory is made the first time a link finds it missing.
        await step('link scratch', () =>
          link(tmp, scratch).catch(async (err: NodeJS.ErrnoException) => {
            if (err.code !== 'ENOENT') throw err;
            await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
            await link(tmp, scratch);
          }),
        );
        await step('link', () =>
          // From the temp file, which GC never lists (a scratch name left by a crash is an orphan it collects).
          link(tmp, target).catch((err: NodeJS.ErrnoException) => {
            // Same key = same content: the existing file is kept.
            if (err.code !== 'EEXIST') throw err;
          }),
        );
        await step('unlink scratch', () => unlinkIfThere(scratch));
        await step('fsync dir', () => syncPath(dir));
        // Frees the data only when the content was there already: the one residual difference
        // (a few extent records; see docs/ARCHITECTURE.md).
        await step('unlink temp', () => unlinkIfThere(tmp));
      } catch (err) {
        await unlinkIfThere(scratch);
        await unlinkIfThere(tmp);
        throw err;
      }
    };
    return {
      get body() {
        return spool.body;
      },
      file: tmp,
      syncFile: true,
      commit,
      abort,
    };
  }

  async get(key: string, range?: { start: number; end: number }): Promise<BlobRead | undefined> {
    const file = this.pathFor(key);
    const size = await this.size(key);
    if (size === undefined) return undefined;
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    // Opened only if read: the NAR route sends `file` itself (http/send-file.ts).
    let body: Readable | undefined;
    return {
      get body() {
        body ??= createReadStream(file, range ? { start, end, highWaterMark: 1 << 20 } : { highWaterMark: 1 << 20 });
        return body;
      },
      size,
      file: { path: file, start, end },
    };
  }

  /** Both directories must exist and be directories (a missing mount is not "empty"). */
  async check(): Promise<void> {
    for (const [name, dir] of [
      ['blobs', this.blobDir],
      ['tmp', this.tmpDir],
    ] as const) {
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

  traceCommits(observe: ((operation: string) => void) | undefined): void {
    this.observe = observe;
  }

  /** For tests and diagnostics: the number of uncommitted temp files. */
  async pendingTempFiles(): Promise<number> {
    return (await readdir(this.tmpDir)).length;
  }
}
