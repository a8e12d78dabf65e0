import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Schema } from './schema.js';

// int8 (bigint) columns hold sizes; they fit a JS number (< 2^53), so parse them as numbers.
pg.types.setTypeParser(20, (v) => Number(v));

/** Opens a pool and proves the database answers; throws an error that says what to check. */
export async function openPostgres(url: string, opts: { maxConnections?: number } = {}): Promise<Kysely<Schema>> {
  const pool = new pg.Pool({ connectionString: url, max: opts.maxConnections ?? 20, connectionTimeoutMillis: 10_000 });
  pool.on('error', () => {
    // An idle client lost its connection; the pool replaces it on next use.
  });
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => undefined);
    const where = redactUrl(url);
    throw new Error(`cannot connect to PostgreSQL at ${where}: ${(err as Error).message}. Check FLOE_DATABASE_URL and that the server is running.`, { cause: err });
  }
  return db;
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable URL)';
  }
}
