/** Change notices between replicas over PostgreSQL LISTEN/NOTIFY, including a lost connection. */
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgChangeFeed } from '../../src/storage/sql/postgres.js';
import type { Schema } from '../../src/storage/sql/schema.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';

const until = async (cond: () => boolean, ms = 5000) => {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

describe.skipIf(!postgresAvailable() && !process.env.CI)('PgChangeFeed', () => {
  let pgServer: TestPostgres;
  let url: string;
  let db: Kysely<Schema>;
  const feeds: PgChangeFeed[] = [];

  beforeAll(async () => {
    pgServer = await startPostgres();
    url = await pgServer.createDatabase('feed');
    db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url }) }) });
  });
  afterAll(async () => {
    for (const f of feeds) await f.close();
    await db?.destroy();
    await pgServer?.stop();
  });

  it('delivers a notice to every replica, by topic, and says "*" after reconnecting', async () => {
    const a = await PgChangeFeed.open(url, db);
    const b = await PgChangeFeed.open(url, db);
    feeds.push(a, b);
    const heard: string[] = [];
    b.subscribe('policies', (p) => heard.push(`policies ${p}`));
    b.subscribe('tokens', (p) => heard.push(`tokens ${p}`));
    await a.notify('tokens', 'tok-1');
    await a.notify('policies', 'org-1');
    expect(await until(() => heard.length === 2)).toBe(true);
    expect(heard).toEqual(['tokens tok-1', 'policies org-1']);

    // The listening connection dies (failover, idle timeout): b reconnects and assumes the worst.
    await sql`select pg_terminate_backend(pid) from pg_stat_activity where query = 'LISTEN floe_changes' and pid <> pg_backend_pid()`.execute(
      db,
    );
    expect(await until(() => heard.includes('policies *') && heard.includes('tokens *'))).toBe(true);
    heard.length = 0;
    await a.notify('policies', 'org-2');
    expect(await until(() => heard.includes('policies org-2'))).toBe(true);
  });
});
