/** Spool directories of uploads in progress, shared by the processes of one data directory. */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { PRIVATE_FILE_MODE } from '../permissions.js';

/**
 * A name no other upload of any process uses: random per process, then counted. (Drawing 8 random
 * bytes for each spool file and scratch name cost ≈ 30 µs of the event loop each, twice per upload.)
 */
const PROCESS_TAG = randomBytes(8).toString('hex');
let named = 0;
export function uniqueName(): string {
  return `${PROCESS_TAG}${(named++).toString(36)}`;
}

/** A spool file untouched for this long is from an upload that never committed (crash, kill). */
const STALE_SPOOL_MS = 3600_000;

/**
 * Drops what uncommitted uploads left in a spool directory (tmp/, s3-spool/) at start. A single
 * process owns its spool: everything there is a dead upload's. A worker of `floe serve --workers N`
 * drops only old files: another worker sharing the data directory may be writing an upload there
 * right now (a worker starting after the first one, or restarted, used to delete its file mid-upload).
 */
export async function dropStaleSpool(dir: string, shared: boolean = cluster.isWorker): Promise<void> {
  const cutoff = shared ? Date.now() - STALE_SPOOL_MS : Number.POSITIVE_INFINITY;
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    const info = await stat(file).catch(() => undefined);
    if (info && info.mtimeMs < cutoff) await rm(file, { recursive: true, force: true });
  }
}

/**
 * Creates an upload's empty spool file (private, never over an existing one). Writers open it
 * without creating it, so one that starts after the upload was aborted (and its file removed)
 * fails instead of leaving an orphan behind.
 */
export async function createSpoolFile(file: string): Promise<void> {
  await (await open(file, 'wx', PRIVATE_FILE_MODE)).close();
}

/**
 * The stream a blob writer's `body` writes its spool file through, opened on first use: most NARs
 * are written by a verifier thread straight to the file, and opening and closing an unused stream
 * was two more trips through the threadpool per upload. `flush`: fsynced as it closes.
 */
export class SpoolStream {
  private stream: WriteStream | undefined;

  constructor(
    private readonly file: string,
    private readonly flush: boolean,
  ) {}

  get body(): WriteStream {
    if (!this.stream) {
      // Never created here (createSpoolFile made it): a writer that starts after an abort fails.
      this.stream = createWriteStream(this.file, { flags: 'r+', flush: this.flush });
      // Writers report errors through their pipeline or commit(); an abort that destroys the stream
      // under a pending write must not become an unhandled 'error' event that kills the process.
      this.stream.on('error', () => undefined);
    }
    return this.stream;
  }

  /** Ends what was written through `body`, if anything; resolves once closed (and so, with `flush`, fsynced). */
  async settle(): Promise<void> {
    if (!this.stream) return;
    if (!this.stream.writableEnded) this.stream.end();
    await finished(this.stream);
  }

  /**
   * Stops writing. The file is opened asynchronously: this waits until the stream has closed (and
   * so created the file, if it was going to), or removing the file next would leave a late open's orphan.
   */
  async discard(): Promise<void> {
    const stream = this.stream;
    if (!stream || stream.closed) return;
    const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
    stream.destroy();
    await closed;
  }
}
