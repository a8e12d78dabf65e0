/** Spool directories of uploads in progress, shared by the processes of one data directory. */
import cluster from 'node:cluster';
import { open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PRIVATE_FILE_MODE } from '../permissions.js';

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
