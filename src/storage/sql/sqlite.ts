import Database from 'better-sqlite3';
import { closeSync, openSync } from 'node:fs';
import { PRIVATE_FILE_MODE } from '../permissions.js';
import { Kysely, SqliteDialect } from 'kysely';
import type { Schema } from './schema.js';

export function openSqlite(file: string): { db: Kysely<Schema>; raw: Database.Database } {
  // The database holds the server's private keys. SQLite creates it (and its -wal and -shm files,
  // which copy the database file's mode) under the umask, usually 0644: create it 0600 first.
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  const raw = new Database(file);
  raw.pragma('journal_mode = WAL');
  // FULL: an acknowledged upload survives a crash or power loss, not just a killed process.
  raw.pragma('synchronous = FULL');
  raw.pragma('busy_timeout = 5000');
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
  return { db: new Kysely<Schema>({ dialect: new SqliteDialect({ database: cached as unknown as Database.Database }) }), raw };
}
