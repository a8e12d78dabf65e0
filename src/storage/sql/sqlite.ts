import Database from 'better-sqlite3';
import { closeSync, openSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { PRIVATE_FILE_MODE } from '../permissions.js';
import { type DatabaseConnection, Kysely, SqliteDialect, SqliteDriver } from 'kysely';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Schema } from './schema.js';

const BUSY_TIMEOUT_MS = 5000;

export function openSqlite(file: string): { db: Kysely<Schema>; raw: Database.Database } {
  // The database holds the server's private keys. SQLite creates it (and its -wal and -shm files,
  // which copy the database file's mode) under the umask, usually 0644: create it 0600 first.
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  const raw = new Database(file);
  raw.pragma('journal_mode = WAL');
  // An acknowledged write survives a crash or power loss, not just a killed process: but not by
  // `synchronous = FULL`, whose fsync of the WAL at every commit runs on the event loop (while
  // uploads fsync their blobs it took 10-600 ms, and every request waited). NORMAL writes the
  // WAL without syncing it (still safe from corruption: SQLite syncs around checkpoints), and
  // every write waits, off the event loop, for a sync of the WAL made after it (WalSync).
  raw.pragma('synchronous = NORMAL');
  const walSync = new WalSync(`${file}-wal`);
  let wrote = false;
  // Single statements outside transactions wait for another process's write this long.
  raw.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  raw.pragma('foreign_keys = ON');
  // Kysely prepares every query anew; better-sqlite3 statements are reusable, so keep them.
  const statements = new Map<string, Database.Statement>();
  const cached = {
    prepare(sql: string) {
      let stmt = statements.get(sql);
      if (!stmt) {
        stmt = raw.prepare(sql);
        if (statements.size > 1000) statements.clear();
        statements.set(sql, stmt);
      }
      // Every statement Kysely runs is prepared here first: one that is not a query writes (or
      // commits, or rolls back), and its caller must not go on before the WAL is on disk.
      if (!stmt.reader) wrote = true;
      return stmt;
    },
    close() {
      statements.clear();
      raw.close();
      walSync.close();
    },
  };
  const config = { database: cached as unknown as Database.Database };
  // Called as each query or transaction gives the connection back, before the next one can write:
  // the next may run while this one's writes are synced; this one resolves once they are.
  const durable = (): Promise<void> | undefined => {
    if (!wrote || raw.inTransaction) return undefined;
    wrote = false;
    return walSync.sync();
  };
  return { db: new Kysely<Schema>({ dialect: new ImmediateSqliteDialect(config, raw, durable) }), raw };
}

/**
 * Group commit for the WAL: `sync()` resolves once an fdatasync of the WAL file that started after
 * the call has finished. Writes arriving while one runs share the next one.
 */
class WalSync {
  private fd: Promise<FileHandle> | undefined;
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly walFile: string) {}

  sync(): Promise<void> {
    if (!this.running) return this.start();
    // The one running may have started before this caller's write: wait for the one after it.
    this.next ??= this.running.then(
      () => this.startNext(),
      () => this.startNext(),
    );
    return this.next;
  }

  close(): void {
    const fd = this.fd;
    this.fd = undefined;
    void fd?.then((fh) => fh.close()).catch(() => undefined);
  }

  private startNext(): Promise<void> {
    this.next = undefined;
    return this.start();
  }

  private start(): Promise<void> {
    // Opened once, after the first write made the WAL exist; it lives as long as the database is
    // open in this process (SQLite removes it only when the last connection closes).
    this.fd ??= open(this.walFile, 'r');
    const run = this.fd.then((fh) => fh.datasync());
    // A failed open is retried by the next write instead of failing every write after it.
    run.catch(() => (this.fd = undefined));
    const running: Promise<void> = run.finally(() => {
      if (this.running === running) this.running = undefined;
    });
    running.catch(() => undefined);
    this.running = running;
    return run;
  }
}

/** How long a transaction waits, yielding, for another process to finish writing. */
const WRITE_LOCK_WAIT_MS = 10_000;

/**
 * Several worker processes (`floe serve --workers N`) share the database. A plain `begin` reads a
 * snapshot and fails with SQLITE_BUSY when it later tries to write after another process wrote;
 * `begin immediate` takes the write lock first, so transactions (commits, GC deletes, the audit
 * chain's next seq) run one at a time across processes and each sees every committed row. While
 * another process holds the lock the wait yields to the event loop instead of sleeping in
 * SQLite's busy handler, so this process keeps answering reads.
 */
class ImmediateSqliteDialect extends SqliteDialect {
  constructor(
    private readonly driverConfig: ConstructorParameters<typeof SqliteDialect>[0],
    private readonly raw: Database.Database,
    private readonly durable: () => Promise<void> | undefined,
  ) {
    super(driverConfig);
  }

  override createDriver(): SqliteDriver {
    const { raw, durable } = this;
    // Compiled once: preparing them for every transaction cost more than running them.
    const noWait = raw.prepare('pragma busy_timeout = 0');
    const wait = raw.prepare(`pragma busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const beginImmediate = raw.prepare('begin immediate');
    return new (class extends SqliteDriver {
      override async releaseConnection(): Promise<void> {
        const synced = durable();
        await super.releaseConnection();
        await synced;
      }

      override async beginTransaction(_connection: DatabaseConnection): Promise<void> {
        const started = Date.now();
        for (let attempt = 0; ; attempt++) {
          noWait.run();
          try {
            beginImmediate.run();
            return;
          } catch (err) {
            if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() - started > WRITE_LOCK_WAIT_MS)
              throw err;
          } finally {
            wait.run();
          }
          await sleep(Math.min(50, 1 + attempt * 2));
        }
      }
    })(this.driverConfig);
  }
}
