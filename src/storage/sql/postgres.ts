import {
  type CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  Kysely,
  PostgresDialect,
  type QueryCompiler,
  type TransactionSettings,
  sql,
} from 'kysely';
import pg from 'pg';
import type { Schema } from './schema.js';
import { redactUrl } from '../../redact.js';
import { type ChangeFeed, type ChangeTopic, LocalChangeFeed } from '../changes.js';
import { Unavailable } from '../../errors.js';
import { isDatabaseUnavailable } from '../failures.js';

export { redactUrl };

// int8 (bigint) columns hold sizes; they fit a JS number (< 2^53), so parse them as numbers.
pg.types.setTypeParser(20, (v) => Number(v));

/**
 * Pool settings for an unreliable network: a request waits at most this long for a connection (a
 * new one, or a pooled one when all are busy) and then fails with a 503, instead of hanging while
 * the database is down. TCP keep-alive notices a peer that vanished without closing (failover).
 */
const CONNECT_TIMEOUT_MS = 5_000;
const KEEPALIVE_DELAY_MS = 10_000;

/** Opens a pool and proves the database answers; throws an error that says what to check. */
export async function openPostgres(url: string, opts: { maxConnections?: number } = {}): Promise<Kysely<Schema>> {
  const pool = new pg.Pool({
    connectionString: url,
    max: opts.maxConnections ?? 20,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
  });
  pool.on('error', () => {
    // An idle client lost its connection; the pool drops it and connects anew on next use.
  });
  // pg-pool listens for errors only on idle clients: a client checked out for a query or a
  // transaction whose connection is cut (pg_terminate_backend, a failover, a restart) would emit an
  // unhandled 'error' and end the process. Its query fails on its own (and becomes a 503); the
  // pool discards the broken client when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const db = new Kysely<Schema>({ dialect: new UnavailableAwareDialect(new PostgresDialect({ pool })) });
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy().catch(() => undefined);
    const where = redactUrl(url);
    // The driver's own error, not the 503 text it was wrapped in (an AggregateError has no message).
    const cause = ((err as Error).cause ?? err) as NodeJS.ErrnoException;
    throw new Error(
      `cannot connect to PostgreSQL at ${where}: ${cause.message || cause.code || String(cause)}. Check FLOE_DATABASE_URL and that the server is running.`,
      { cause: err },
    );
  }
  return db;
}

/**
 * The PostgreSQL dialect, with every failure that means "the database cannot be reached" (refused,
 * cut, timed out, shutting down) turned into `Unavailable('database')`, whichever query hit it: the
 * error table answers 503 + Retry-After for it. Query errors (constraints, syntax) pass unchanged.
 */
class UnavailableAwareDialect implements Dialect {
  constructor(private readonly inner: PostgresDialect) {}
  createAdapter(): DialectAdapter {
    return this.inner.createAdapter();
  }
  createDriver(): Driver {
    return new UnavailableAwareDriver(this.inner.createDriver());
  }
  // biome-ignore lint/suspicious/noExplicitAny: Kysely's Dialect interface declares Kysely<any>
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.inner.createIntrospector(db);
  }
  createQueryCompiler(): QueryCompiler {
    return this.inner.createQueryCompiler();
  }
}

function asUnavailable(err: unknown): unknown {
  return isDatabaseUnavailable(err) ? new Unavailable('database', { cause: err }) : err;
}

async function guarded<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw asUnavailable(err);
  }
}

class UnavailableAwareDriver implements Driver {
  private readonly wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();
  constructor(private readonly inner: Driver) {}

  init(): Promise<void> {
    return guarded(() => this.inner.init());
  }
  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await guarded(() => this.inner.acquireConnection());
    let proxy = this.wrapped.get(connection);
    if (!proxy) {
      // The driver's own methods (release, discard) are reached through the proxy too, bound to
      // the real connection; only query execution is wrapped.
      proxy = new Proxy(connection, {
        get(target, prop) {
          if (prop === 'executeQuery') return (q: CompiledQuery) => guarded(() => target.executeQuery(q));
          const value = Reflect.get(target, prop, target) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      this.wrapped.set(connection, proxy);
    }
    return proxy;
  }
  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return guarded(() => this.inner.beginTransaction(connection, settings));
  }
  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return guarded(() => this.inner.commitTransaction(connection));
  }
  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return guarded(() => this.inner.rollbackTransaction(connection));
  }
  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection(connection);
  }
  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** The URL without its password, for messages and logs. */

const CHANNEL = 'floe_changes';
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 4_000;

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
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
    });
    client.on('notification', (msg) => {
      if (msg.channel !== CHANNEL || !msg.payload) return;
      const colon = msg.payload.indexOf(':');
      if (colon > 0) this.local.deliver(msg.payload.slice(0, colon) as ChangeTopic, msg.payload.slice(colon + 1));
    });
    // Always listened to (an unhandled 'error' ends the process); only the current client's loss
    // means anything: a failed attempt is retried by its caller, a replaced client is gone anyway.
    client.on('error', (err) => {
      if (this.client !== client) return;
      this.onError(err);
      this.reconnectSoon(RETRY_FIRST_MS);
    });
    client.on('end', () => {
      if (this.client === client) this.reconnectSoon(RETRY_FIRST_MS);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      void client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
  }

  private reconnectSoon(delayMs: number): void {
    if (this.closed || this.retryTimer) return;
    const old = this.client;
    this.client = undefined;
    void old?.end().catch(() => undefined);
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => {
          this.retryTimer = undefined;
          this.local.deliverAll();
        },
        (err: Error) => {
          this.retryTimer = undefined;
          this.onError(err);
          // Capped low: the feed is what makes revocations reach every replica at once, so it
          // should be back within seconds of the database.
          this.reconnectSoon(Math.min(delayMs * 2, RETRY_MAX_MS));
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
