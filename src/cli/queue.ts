/**
 * The local push queue of `floe watch-store` / `floe watch-exec`: store paths recorded but not yet
 * known to be in the cache. A SQLite file (WAL, synchronous=FULL), so a path is on disk before the
 * watcher says it recorded it, a killed watcher loses nothing, and several watchers (a background
 * `watch-store` and a `watch-exec`) can share one queue without a compaction race: a row leaves
 * only when its push has succeeded.
 */
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CliError } from './client.js';

export interface QueuedPath {
  path: string;
  /** `org/slice`, or '' for the token's own slice. */
  slice: string;
  attempts: number;
}

/** $XDG_STATE_HOME/floe/push-queue.sqlite (~/.local/state/floe/… by default). */
export function defaultQueueFile(): string {
  return path.join(
    process.env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state'),
    'floe',
    'push-queue.sqlite',
  );
}

export class PushQueue {
  private constructor(private readonly db: Database.Database) {}

  static open(file: string): PushQueue {
    let db: Database.Database;
    try {
      mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 10000');
      db.exec(`CREATE TABLE IF NOT EXISTS queue (
        path TEXT NOT NULL, slice TEXT NOT NULL DEFAULT '', recorded_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, PRIMARY KEY (path, slice))`);
    } catch (err) {
      throw new CliError(`cannot open the push queue ${file}: ${(err as Error).message}`);
    }
    return new PushQueue(db);
  }

  /** Records paths (durably, in one transaction); returns how many were new to the queue. */
  record(paths: string[], slice: string): number {
    const insert = this.db.prepare('INSERT OR IGNORE INTO queue (path, slice, recorded_at) VALUES (?, ?, ?)');
    const now = Date.now();
    return this.db.transaction(() => paths.reduce((n, p) => n + insert.run(p, slice, now).changes, 0))();
  }

  /** Oldest first, so dependencies recorded earlier tend to go first (push orders closures anyway). */
  pending(limit: number, exclude: ReadonlySet<string> = new Set()): QueuedPath[] {
    const rows = this.db
      .prepare('SELECT path, slice, attempts FROM queue ORDER BY recorded_at, rowid')
      .all() as QueuedPath[];
    return rows.filter((r) => !exclude.has(keyOf(r))).slice(0, limit);
  }

  done(rows: QueuedPath[]): void {
    const del = this.db.prepare('DELETE FROM queue WHERE path = ? AND slice = ?');
    this.db.transaction(() => {
      for (const r of rows) del.run(r.path, r.slice);
    })();
  }

  failed(rows: Array<QueuedPath & { error: string }>): void {
    const upd = this.db.prepare(
      'UPDATE queue SET attempts = attempts + 1, last_error = ? WHERE path = ? AND slice = ?',
    );
    this.db.transaction(() => {
      for (const r of rows) upd.run(r.error.slice(0, 500), r.path, r.slice);
    })();
  }

  size(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM queue').get() as { n: number }).n;
  }

  close(): void {
    this.db.close();
  }
}

export const keyOf = (r: { path: string; slice: string }) => `${r.slice}\n${r.path}`;
