import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Schema } from './schema.js';
import { type ChangeFeed, type ChangeTopic, LocalChangeFeed } from '../changes.js';

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

const CHANNEL = 'floe_changes';

/**
 * LISTEN/NOTIFY on one dedicated connection. On a lost connection it reconnects (with backoff)
 * and tells every subscriber `*`, since notices sent meanwhile are gone.
 */
export class PgChangeFeed implements ChangeFeed {
  private readonly local = new LocalChangeFeed();
  private client: pg.Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly url: string,
    private readonly db: Kysely<Schema>,
    private readonly onError: (err: Error) => void,
  ) {}

  static async open(url: string, db: Kysely<Schema>, onError: (err: Error) => void = () => {}): Promise<PgChangeFeed> {
    const feed = new PgChangeFeed(url, db, onError);
    await feed.connect();
    return feed;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 10_000 });
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL || !msg.payload) return;
      const colon = msg.payload.indexOf(':');
      if (colon > 0) this.local.deliver(msg.payload.slice(0, colon) as ChangeTopic, msg.payload.slice(colon + 1));
    });
    client.on('error', (err) => {
      this.onError(err);
      this.reconnectSoon(1000);
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.client = client;
  }

  private reconnectSoon(delayMs: number): void {
    if (this.closed || this.retryTimer) return;
    const old = this.client;
    this.client = undefined;
    void old?.end().catch(() => undefined);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().then(
        () => this.local.deliverAll(),
        (err: Error) => {
          this.onError(err);
          this.reconnectSoon(Math.min(delayMs * 2, 30_000));
        },
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  async notify(topic: ChangeTopic, payload: string): Promise<void> {
    await sql`select pg_notify(${CHANNEL}, ${`${topic}:${payload}`})`.execute(this.db);
  }

  subscribe(topic: ChangeTopic, onChange: (payload: string) => void): void {
    this.local.subscribe(topic, onChange);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.client?.end().catch(() => undefined);
    await this.local.close();
  }
}
