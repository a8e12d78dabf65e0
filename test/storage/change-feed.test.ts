/**
 * Change notices between replicas over PostgreSQL LISTEN/NOTIFY, including a lost connection, and
 * their acknowledgements: a notice resolves once the other feeds have delivered it, a feed that
 * never answers holds it at most ACK_TIMEOUT_MS, and absences may be memoized (acknowledgedEpoch)
 * only while connected with no listener of an earlier release.
 */
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACK_TIMEOUT_MS, feedApplicationName } from '../../src/storage/acks.js';
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
    await sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'floe-feed %'`.execute(
      db,
    );
    expect(await until(() => heard.includes('policies *') && heard.includes('tokens *'))).toBe(true);
    heard.length = 0;
    await a.notify('policies', 'org-2');
    expect(await until(() => heard.includes('policies org-2'))).toBe(true);
  });

  it('resolves a notice only once every other feed has delivered it', async () => {
    const a = await PgChangeFeed.open(url, db);
    const b = await PgChangeFeed.open(url, db);
    const c = await PgChangeFeed.open(url, db);
    feeds.push(a, b, c);
    const heardB: string[] = [];
    const heardC: string[] = [];
    const heardA: string[] = [];
    a.subscribe('paths', (p) => heardA.push(p));
    b.subscribe('paths', (p) => heardB.push(p));
    c.subscribe('paths', (p) => heardC.push(p));
    for (let i = 0; i < 50; i++) {
      await a.notify('paths', `h${i}`);
      // No waiting: delivered everywhere, the writer included, by the time notify resolved.
      expect(heardA).toContain(`h${i}`);
      expect(heardB).toContain(`h${i}`);
      expect(heardC).toContain(`h${i}`);
    }
    // Concurrent notices from several writers, answered in batches.
    await Promise.all(Array.from({ length: 40 }, (_, i) => [a, b, c][i % 3]!.notify('paths', `x${i}`)));
    for (let i = 0; i < 40; i++) for (const heard of [heardA, heardB, heardC]) expect(heard).toContain(`x${i}`);
  });

  it('waits at most the bound for a listener that never answers (and reports it), and not at all once it is gone', async () => {
    const unanswered: string[][] = [];
    const a = await PgChangeFeed.open(url, db, { unanswered: (ids) => unanswered.push(ids) });
    feeds.push(a);
    // Listed as a feed, listening, but hung: it never answers.
    const hung = new pg.Client({ connectionString: url, application_name: feedApplicationName('deadbeefdeadbeef') });
    await hung.connect();
    await hung.query('LISTEN floe_changes');
    try {
      const started = Date.now();
      await a.notify('paths', 'hung');
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(ACK_TIMEOUT_MS - 20);
      expect(took).toBeLessThan(ACK_TIMEOUT_MS + 1000);
      expect(unanswered).toEqual([['deadbeefdeadbeef']]);
    } finally {
      await hung.end();
    }
    // A replica that died is no longer listed (its backend leaves pg_stat_activity): nobody is waited for.
    let fast = false;
    for (let i = 0; i < 20 && !fast; i++) {
      const started = Date.now();
      await a.notify('paths', 'after');
      fast = Date.now() - started < ACK_TIMEOUT_MS / 2;
    }
    expect(fast).toBe(true);
    expect(unanswered).toHaveLength(1);
  });

  it('memoizes absences only while connected and with no listener of an earlier release', async () => {
    const a = await PgChangeFeed.open(url, db);
    feeds.push(a);
    const first = a.acknowledgedEpoch();
    expect(first).toBeTypeOf('number');

    // A replica of an earlier release: it listens without a feed's name, and its writes do not wait.
    const legacy = new pg.Client({ connectionString: url });
    await legacy.connect();
    await legacy.query('LISTEN floe_changes');
    try {
      expect(await until(() => a.acknowledgedEpoch() === undefined, 6000)).toBe(true);
      // Its notices (the old format) are still understood.
      const heard: string[] = [];
      a.subscribe('tokens', (p) => heard.push(p));
      await legacy.query(`select pg_notify('floe_changes', 'tokens:old-tok')`);
      expect(await until(() => heard.includes('old-tok'))).toBe(true);
    } finally {
      await legacy.end();
    }
    expect(await until(() => a.acknowledgedEpoch() !== undefined, 6000)).toBe(true);
    const second = a.acknowledgedEpoch();
    expect(second).not.toBe(first); // nothing kept from before counts again

    // A lost connection: undefined until it is back, then a new number (and "*" delivered).
    const star: string[] = [];
    a.subscribe('paths', (p) => p === '*' && star.push(p));
    await sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = ${feedApplicationName(a.id)}`.execute(
      db,
    );
    expect(await until(() => a.acknowledgedEpoch() === undefined, 3000)).toBe(true);
    expect(await until(() => a.acknowledgedEpoch() !== undefined, 6000)).toBe(true);
    expect(a.acknowledgedEpoch()).not.toBe(second);
    expect(star).toEqual(['*']);
  }, 30_000);
});
