import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { Schema } from './schema.js';

export function openSqlite(file: string): { db: Kysely<Schema>; raw: Database.Database } {
  const raw = new Database(file);
  raw.pragma('journal_mode = WAL');
  // FULL: an acknowledged upload survives a crash or power loss, not just a killed process.
  raw.pragma('synchronous = FULL');
  raw.pragma('busy_timeout = 5000');
  raw.pragma('foreign_keys = ON');
  return { db: new Kysely<Schema>({ dialect: new SqliteDialect({ database: raw }) }), raw };
}
