/**
 * The spool file a verification writes what is stored to (BlobWriter.file): every byte hashed and
 * counted (FileHash/FileSize) as it goes to the file, writes queued up to 1 MiB ahead of the disk,
 * and, when the file is fsynced as it closes, most of it flushed early (see `syncEarly`).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, fdatasync, type WriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';

/** A spool file that is fsynced as it closes is flushed early, in the background, every this many bytes. */
export const EARLY_SYNC_BYTES = 16 << 20;

export class Spool {
  readonly sha = createHash('sha256');
  size = 0;
  /** The file's first failure (a full disk, an I/O error): every later step fails with it. */
  failure: Error | undefined;
  private readonly file: WriteStream;
  /** Bytes written since the last early flush to disk was started, and that flush while it runs. */
  private unsynced = 0;
  private syncing: Promise<void> | undefined;

  constructor(
    path: string,
    /** Whether the file is fsynced as it closes (BlobWriter.syncFile). */
    private readonly synced: boolean,
  ) {
    // Never created here: the writer made it, and an aborted upload's file must stay gone.
    // `flush`: fsynced as it closes, in this thread, so the store's commit need not open it again.
    // Writes queue up to 1 MiB ahead of the disk (and go out together, as one writev).
    this.file = createWriteStream(path, { flags: 'r+', flush: synced, highWaterMark: 1 << 20 });
    this.file.on('error', (err) => (this.failure ??= err));
  }

  /** Calls `onError` once the file fails (a failed write ends the verification that writes it). */
  onError(onError: (err: Error) => void): void {
    if (this.failure) onError(this.failure);
    else this.file.once('error', onError);
  }

  /**
   * Hashes, counts and writes `chunk`, which must not change afterwards. Returns undefined when the
   * file takes more at once, else a promise that settles when it does (rejects if the file fails).
   * Waiting for every write made each 64 KiB chunk wait for a trip through the threadpool, and a
   * 64 MiB upload ran at a third of the disk's speed with every thread idle.
   */
  write(chunk: Buffer): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    this.size += chunk.length;
    this.sha.update(chunk);
    const room = this.file.write(chunk);
    this.syncEarly(chunk.length);
    return room ? undefined : once(this.file, 'drain').then(() => undefined);
  }

  /**
   * The fsync as the file closes had to write all of a large file to disk at the end, while the
   * client waited (~30 ms for 64 MiB here). Every EARLY_SYNC_BYTES, a flush of what was written so
   * far starts in the background (one at a time, on the threadpool), so the disk works while the
   * rest arrives and the last fsync has only the tail left. The file is durable only after that
   * last one, as before. (An abort closes the file at once: a flush still queued then syncs
   * whatever file has its descriptor by then, which costs a sync and changes nothing.)
   */
  private syncEarly(bytes: number): void {
    if (!this.synced) return;
    this.unsynced += bytes;
    const { fd } = this.file as WriteStream & { fd: number | null };
    if (this.unsynced < EARLY_SYNC_BYTES || this.syncing || typeof fd !== 'number') return;
    this.unsynced = 0;
    this.syncing = new Promise<void>((resolve) =>
      fdatasync(fd, () => {
        // A failure shows again in the fsync as the file closes.
        this.syncing = undefined;
        resolve();
      }),
    );
  }

  /** Ends the file (fsynced when `synced`) and resolves once it is closed. */
  async close(): Promise<void> {
    // Never closed under a flush in flight (its descriptor could be another file's by then).
    await this.syncing;
    this.file.end();
    await finished(this.file);
  }

  /** Closes the file at once, written or not (the verification failed or was aborted). */
  destroy(): void {
    this.file.destroy();
  }
}
