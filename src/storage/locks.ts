/**
 * The one lock between commits and garbage collection. Commits (and NAR ingests) hold it shared
 * inside their transaction; the GC's delete transaction holds it exclusively, so it sees every
 * committed row and no commit can reference a path the GC is deleting.
 * SQLite: every transaction is `begin immediate` (sql/sqlite.ts), so transactions run one at a
 * time across all worker processes and each sees every committed row; nothing more to do.
 * PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback.
 */
import { sql } from 'kysely';
import type { Db } from './types.js';

const GC_LOCK_KEY = 7_207_001;

export async function lockSharedAgainstGc(trx: Db, dialect: 'sqlite' | 'postgres'): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock_shared(${GC_LOCK_KEY})`.execute(trx);
}

export async function lockExclusiveForGc(trx: Db, dialect: 'sqlite' | 'postgres'): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(${GC_LOCK_KEY})`.execute(trx);
}
