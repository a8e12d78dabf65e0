/**
 * Change notices between replicas and worker processes ("org X's policies changed", "token Y was
 * revoked", "these store path hashes were written"), so caches
 * can be dropped at once instead of at their next poll. Best effort by design: the pollers and
 * bounded memo lifetimes stay the guarantee, the feed only makes changes arrive sooner.
 * Embedded, one process: delivered in process; several workers: relayed by the primary
 * (cluster-changes.ts). PostgreSQL: LISTEN/NOTIFY (sql/postgres.ts), acknowledged (acks.ts).
 * A `notify` resolves once every other process listening has delivered the notice (or
 * ACK_TIMEOUT_MS passed): the change holds everywhere before the request that made it answers.
 * `paths` carries comma-separated store path hash parts, or `*` for "any".
 */
export type ChangeTopic = 'policies' | 'tokens' | 'keys' | 'views' | 'paths';

export interface ChangeFeed {
  /** Tells every replica (this one included). */
  notify(topic: ChangeTopic, payload: string): Promise<void>;
  /** `payload` is what was notified, or `*` after a reconnect (something may have been missed). */
  subscribe(topic: ChangeTopic, onChange: (payload: string) => void): void;
  /**
   * Whether a memo may keep an absence ("no such path"): while every writer's notice is sure to
   * have been delivered here before that writer answers its client (acknowledged notices), a
   * number that stays the same for as long as that holds unbroken; undefined while it does not
   * (the PostgreSQL feed is down, or a replica of an earlier release, which does not wait for
   * acknowledgements, is listening). A memo keeps an absence only under one number and serves it
   * only while the number is still current (read-cache.ts).
   */
  acknowledgedEpoch(): number | undefined;
  close(): Promise<void>;
}

/** Delivery to this process's subscribers; the PostgreSQL feed reuses it for what it hears. */
export class LocalChangeFeed implements ChangeFeed {
  private readonly subscribers = new Map<ChangeTopic, Array<(payload: string) => void>>();

  async notify(topic: ChangeTopic, payload: string): Promise<void> {
    this.deliver(topic, payload);
  }

  subscribe(topic: ChangeTopic, onChange: (payload: string) => void): void {
    this.subscribers.set(topic, [...(this.subscribers.get(topic) ?? []), onChange]);
  }

  /** One process: every writer is this one, and its notices are delivered before they resolve. */
  acknowledgedEpoch(): number | undefined {
    return 0;
  }

  deliver(topic: ChangeTopic, payload: string): void {
    for (const s of this.subscribers.get(topic) ?? []) {
      try {
        s(payload);
      } catch {
        // A subscriber's failure must not stop the others; their pollers catch up.
      }
    }
  }

  /** Everything may have changed (after a lost connection). */
  deliverAll(): void {
    for (const topic of this.subscribers.keys()) this.deliver(topic, '*');
  }

  async close(): Promise<void> {
    this.subscribers.clear();
  }
}
