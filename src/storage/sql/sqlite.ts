import Database from 'better-sqlite3';
import { closeSync, openSync } from 'node:fs';
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
  // FULL: an acknowledged upload survives a crash or power loss, not just a killed process.
  raw.pragma('synchronous = FULL');
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
      return stmt;
    },
    close() {
      statements.clear();
      raw.close();
    },
  };
  const config = { database: cached as unknown as Database.Database };
  return { db: new Kysely<Schema>({ dialect: new ImmediateSqliteDialect(config, raw) }), raw };
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
  ) {
    super(driverConfig);
  }

  override createDriver(): SqliteDriver {
    const raw = this.raw;
    return new (class extends SqliteDriver {
      override async beginTransaction(_connection: DatabaseConnection): Promise<void> {
        const started = Date.now();
        for (let attempt = 0; ; attempt++) {
          raw.pragma('busy_timeout = 0');
          try {
            raw.prepare('begin immediate').run();
            return;
          } catch (err) {
            if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() - started > WRITE_LOCK_WAIT_MS)
              throw err;
          } finally {
            raw.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
          }
          await sleep(Math.min(50, 1 + attempt * 2));
        }
      }
    })(this.driverConfig);
  }
}
