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
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Schema } from './schema.js';
import { redactUrl } from '../../redact.js';
import { type ChangeFeed, type ChangeTopic, LocalChangeFeed } from '../changes.js';
import {
  ACK_REQUEST_TOPIC,
  ACK_TIMEOUT_MS,
  AckBatch,
  AckWaits,
  FEED_APPLICATION_PREFIX,
  ackChannel,
  ackRequest,
  feedApplicationName,
  feedIdOf,
  parseAckRequest,
  parseAcks,
} from '../acks.js';
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
 * How often a feed looks for listeners of an earlier release (their writers do not wait for
 * acknowledgements) and proves its own connection alive; a check not answered within
 * `CHECK_TIMEOUT_MS` counts as a lost connection.
 */
const CHECK_EVERY_MS = 2_000;
const CHECK_TIMEOUT_MS = 2_000;
/**
 * FLOE_TEST_FEED_DELAY_MS (tests only): every notice on the shared channel is handled this much
 * later, as by a replica whose socket or event loop is slow; it is what makes a writer that does
 * not wait for acknowledgements lose the race in a test on one machine.
 */
const TEST_DELAY_MS = Math.max(0, Number(process.env.FLOE_TEST_FEED_DELAY_MS) || 0);

/** The feeds listening now, by id (their connections' application_name). */
const LISTENING_FEEDS = sql<{ application_name: string | null }>`
  select distinct application_name from pg_stat_activity
  where datname = current_database() and application_name like ${`${FEED_APPLICATION_PREFIX}%`}`;

/** What a feed reports to the process that runs it (logs, metrics); every member is optional. */
export interface FeedEvents {
  /** The feed's connection failed (it reconnects by itself) or a notice could not be answered. */
  error?(err: Error): void;
  /**
   * These replicas (feed ids) did not acknowledge a notice within ACK_TIMEOUT_MS: the write went
   * on without them, so they may serve a memoized miss of it until their memo expires.
   */
  unanswered?(listeners: string[]): void;
}

/**
 * LISTEN/NOTIFY on one dedicated connection, named `floe-feed <id>` (a random id per feed). A
 * notice resolves once every other feed listening has acknowledged it (storage/acks.ts), at most
 * ACK_TIMEOUT_MS: its change holds on every replica before the request that made it is answered.
 * On a lost connection it reconnects (with backoff) and tells every subscriber `*`, since notices
 * sent meanwhile are gone; `acknowledgedEpoch` is undefined from the loss until then.
 */
export class PgChangeFeed implements ChangeFeed {
  private readonly local = new LocalChangeFeed();
  readonly id = randomBytes(8).toString('hex');
  private client: pg.Client | undefined;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private readonly waits = new AckWaits();
  private readonly answers = new AckBatch();
  private answering = false;
  private nextSeq = 1;
  /** Set while connected with no listener of an earlier release seen; a new number for each such stretch. */
  private epoch: number | undefined;
  private nextEpoch = 1;
  private legacyListeners = false;

  private constructor(
    private readonly url: string,
    private readonly db: Kysely<Schema>,
    private readonly events: FeedEvents,
  ) {}

  static async open(url: string, db: Kysely<Schema>, events: FeedEvents = {}): Promise<PgChangeFeed> {
    const feed = new PgChangeFeed(url, db, events);
    await feed.connect();
    feed.scheduleCheck();
    return feed;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_DELAY_MS,
      application_name: feedApplicationName(this.id),
    });
    client.on('notification', (msg) => {
      if (!msg.payload) return;
      const notice = msg.payload;
      if (msg.channel === CHANNEL) {
        if (TEST_DELAY_MS) setTimeout(() => this.heard(notice), TEST_DELAY_MS);
        else this.heard(notice);
      } else if (msg.channel === ackChannel(this.id)) {
        const acks = parseAcks(notice);
        if (acks) this.waits.acked(acks.listener, acks.seqs);
      }
    });
    // Always listened to (an unhandled 'error' ends the process); only the current client's loss
    // means anything: a failed attempt is retried by its caller, a replaced client is gone anyway.
    client.on('error', (err) => {
      if (this.client !== client) return;
      this.events.error?.(err);
      this.reconnectSoon(RETRY_FIRST_MS);
    });
    client.on('end', () => {
      if (this.client === client) this.reconnectSoon(RETRY_FIRST_MS);
    });
    let legacy: boolean;
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}; LISTEN ${ackChannel(this.id)}`);
      legacy = await this.legacyListening(client);
    } catch (err) {
      void client.end().catch(() => undefined);
      throw err;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.legacyListeners = legacy;
  }

  /** A notice on the shared channel: delivered, and acknowledged if its writer asks. */
  private heard(notice: string): void {
    const colon = notice.indexOf(':');
    if (colon <= 0) return;
    const topic = notice.slice(0, colon);
    const rest = notice.slice(colon + 1);
    if (topic !== ACK_REQUEST_TOPIC) {
      this.local.deliver(topic as ChangeTopic, rest);
      return;
    }
    // The notice it follows (same transaction, sent first) has been delivered by now.
    const request = parseAckRequest(rest);
    if (!request || request.writer === this.id) return;
    this.answers.add(request.writer, request.seq);
    if (!this.answering) {
      this.answering = true;
      setImmediate(() => this.sendAnswers());
    }
  }

  /** Every acknowledgement held, in one statement on the feed's own connection. */
  private sendAnswers(): void {
    this.answering = false;
    const client = this.client;
    const answers = this.answers.take(this.id);
    // Without a connection there is nothing to answer for: the notices it missed are `*` later.
    if (!client || answers.length === 0) return;
    client
      .query('select pg_notify(c, p) from unnest($1::text[], $2::text[]) as t(c, p)', [
        answers.map((a) => a.channel),
        answers.map((a) => a.payload),
      ])
      .catch(() => undefined); // a lost connection is the 'error' handler's
  }

  /** Whether a connection without a feed's name is listening here: a replica of an earlier release. */
  private async legacyListening(client: pg.Client): Promise<boolean> {
    const { rows } = await client.query<{ legacy: boolean }>({
      text: `select exists (select 1 from pg_stat_activity where datname = current_database()
               and query = 'LISTEN ${CHANNEL}' and coalesce(application_name, '') not like $1) as legacy`,
      values: [`${FEED_APPLICATION_PREFIX}%`],
    });
    return rows[0]?.legacy === true;
  }

  /** Also proves the connection alive: a check that fails or hangs is a lost connection. */
  private scheduleCheck(): void {
    if (this.closed) return;
    this.updateEpoch();
    this.checkTimer = setTimeout(() => {
      const client = this.client;
      if (!client) {
        this.scheduleCheck();
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('change feed: connection check timed out')), CHECK_TIMEOUT_MS);
        timer.unref();
      });
      Promise.race([this.legacyListening(client), timeout]).then(
        (legacy) => {
          clearTimeout(timer);
          if (this.client === client) this.legacyListeners = legacy;
          this.scheduleCheck();
        },
        (err: Error) => {
          clearTimeout(timer);
          if (this.client === client) {
            this.events.error?.(err);
            this.reconnectSoon(RETRY_FIRST_MS);
          }
          this.scheduleCheck();
        },
      );
    }, CHECK_EVERY_MS);
    this.checkTimer.unref();
  }

  private updateEpoch(): void {
    const safe = this.client !== undefined && !this.legacyListeners && !this.closed;
    if (!safe) this.epoch = undefined;
    else if (this.epoch === undefined) this.epoch = this.nextEpoch++;
  }

  private reconnectSoon(delayMs: number): void {
    if (this.closed || this.retryTimer) return;
    const old = this.client;
    this.client = undefined;
    this.updateEpoch();
    void old?.end().catch(() => undefined);
    this.retryTimer = setTimeout(() => {
      this.connect().then(
        () => {
          this.retryTimer = undefined;
          this.local.deliverAll();
          this.updateEpoch();
        },
        (err: Error) => {
          this.retryTimer = undefined;
          this.events.error?.(err);
          // Capped low: the feed is what makes revocations reach every replica at once, so it
          // should be back within seconds of the database.
          this.reconnectSoon(Math.min(delayMs * 2, RETRY_MAX_MS));
        },
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  /**
   * Delivers here, sends the notice with its ack request (one transaction, in that order), then
   * waits for the answers of the feeds listening after the commit (pg_stat_activity is read once
   * the notice is committed: a feed not listed then either started listening later, so it says
   * `*` before it memoizes again, or has lost its connection and memoizes nothing until it has).
   */
  async notify(topic: ChangeTopic, payload: string): Promise<void> {
    this.local.deliver(topic, payload);
    const seq = this.nextSeq++;
    this.waits.open(seq);
    try {
      await sql`select pg_notify(${CHANNEL}, n) from unnest(${[`${topic}:${payload}`, ackRequest(this.id, seq)]}::text[]) as n`.execute(
        this.db,
      );
      const { rows } = await LISTENING_FEEDS.execute(this.db);
      const expected: string[] = [];
      for (const r of rows) {
        const id = feedIdOf(r.application_name);
        if (id && id !== this.id) expected.push(id);
      }
      const silent = await this.waits.wait(seq, expected, ACK_TIMEOUT_MS);
      if (silent.length > 0) this.events.unanswered?.(silent);
    } finally {
      this.waits.cancel(seq);
    }
  }

  subscribe(topic: ChangeTopic, onChange: (payload: string) => void): void {
    this.local.subscribe(topic, onChange);
  }

  acknowledgedEpoch(): number | undefined {
    return this.epoch;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.epoch = undefined;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.checkTimer) clearTimeout(this.checkTimer);
    this.waits.closeAll();
    await this.client?.end().catch(() => undefined);
    await this.local.close();
  }
}
