/**
 * Acknowledged change notices between replicas on PostgreSQL (PURE: no I/O; sql/postgres.ts
 * drives it). A writer's notice is followed, in the same transaction, by an ack request
 * `ack?:<writer>:<seq>` on the same channel (a replica of an earlier release delivers it to a
 * topic nobody subscribes to, and still understands the notice before it). Every other feed,
 * having delivered the notice to its subscribers, answers on the writer's own channel
 * (`floe_ack_<writer>`) with `<listener>:<seq>,<seq>,…`, several requests in one answer. The
 * writer waits for the feeds it found listening (their connections' application_name in
 * pg_stat_activity), at most `ACK_TIMEOUT_MS`.
 */

/** A replica that does not answer within this long is dead or stuck: the notice goes on without it. */
export const ACK_TIMEOUT_MS = 500;

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; answers stay well below. */
export const MAX_ACK_PAYLOAD_BYTES = 7_000;

/** The application_name of a feed's connection: how writers find (and count) the replicas listening. */
export const FEED_APPLICATION_PREFIX = 'floe-feed ';

const FEED_ID = /^[0-9a-f]{16}$/;

export function isFeedId(id: string): boolean {
  return FEED_ID.test(id);
}

export function feedApplicationName(id: string): string {
  return `${FEED_APPLICATION_PREFIX}${id}`;
}

/** The feed id named by an application_name, or undefined for any other connection. */
export function feedIdOf(applicationName: string | null | undefined): string | undefined {
  if (!applicationName?.startsWith(FEED_APPLICATION_PREFIX)) return undefined;
  const id = applicationName.slice(FEED_APPLICATION_PREFIX.length);
  return isFeedId(id) ? id : undefined;
}

/** The channel a feed hears its acknowledgements on (an identifier: lower-case hex only). */
export function ackChannel(id: string): string {
  return `floe_ack_${id}`;
}

/** The topic part of an ack request; `ack?` is no ChangeTopic, so no subscriber ever sees it. */
export const ACK_REQUEST_TOPIC = 'ack?';

export function ackRequest(writer: string, seq: number): string {
  return `${ACK_REQUEST_TOPIC}:${writer}:${seq}`;
}

/** The `<writer>:<seq>` after `ack?:`, or undefined if malformed. */
export function parseAckRequest(rest: string): { writer: string; seq: number } | undefined {
  const colon = rest.indexOf(':');
  if (colon < 0) return undefined;
  const writer = rest.slice(0, colon);
  const seq = Number(rest.slice(colon + 1));
  return isFeedId(writer) && Number.isSafeInteger(seq) && seq >= 0 ? { writer, seq } : undefined;
}

/** One listener's answers to one writer, split so that no payload exceeds `maxBytes`. */
export function encodeAcks(listener: string, seqs: readonly number[], maxBytes = MAX_ACK_PAYLOAD_BYTES): string[] {
  const out: string[] = [];
  let current = '';
  for (const seq of seqs) {
    const s = String(seq);
    if (current && current.length + 1 + s.length > maxBytes) {
      out.push(current);
      current = '';
    }
    current = current ? `${current},${s}` : `${listener}:${s}`;
  }
  if (current) out.push(current);
  return out;
}

export function parseAcks(payload: string): { listener: string; seqs: number[] } | undefined {
  const colon = payload.indexOf(':');
  if (colon < 0) return undefined;
  const listener = payload.slice(0, colon);
  if (!isFeedId(listener)) return undefined;
  const seqs = payload
    .slice(colon + 1)
    .split(',')
    .map(Number)
    .filter((n) => Number.isSafeInteger(n) && n >= 0);
  return { listener, seqs };
}

/**
 * A listener's answers not sent yet, by writer: requests heard in one burst go out as one
 * statement (one payload per writer, or a few for a very long burst).
 */
export class AckBatch {
  private readonly byWriter = new Map<string, number[]>();

  add(writer: string, seq: number): void {
    const seqs = this.byWriter.get(writer);
    if (seqs) seqs.push(seq);
    else this.byWriter.set(writer, [seq]);
  }

  get size(): number {
    return this.byWriter.size;
  }

  /** Everything held, as (channel, payload) pairs, and forgets it. */
  take(listener: string): Array<{ channel: string; payload: string }> {
    const out: Array<{ channel: string; payload: string }> = [];
    for (const [writer, seqs] of this.byWriter)
      for (const payload of encodeAcks(listener, seqs)) out.push({ channel: ackChannel(writer), payload });
    this.byWriter.clear();
    return out;
  }
}

interface Pending {
  acked: Set<string>;
  left?: Set<string>;
  finish?: () => void;
}

/**
 * A writer's notices waiting for their answers. `open` comes before the notice is sent (a fast
 * listener may answer before the writer has learnt who listens), `wait` once it knows whom to
 * expect; it resolves with the listeners that did not answer in time (none when all did).
 */
export class AckWaits {
  private readonly pending = new Map<number, Pending>();

  open(seq: number): void {
    this.pending.set(seq, { acked: new Set() });
  }

  acked(listener: string, seqs: Iterable<number>): void {
    for (const seq of seqs) {
      const p = this.pending.get(seq);
      if (!p) continue;
      p.acked.add(listener);
      if (p.left?.delete(listener) && p.left.size === 0) p.finish?.();
    }
  }

  wait(seq: number, expected: Iterable<string>, timeoutMs: number): Promise<string[]> {
    const p = this.pending.get(seq);
    if (!p) return Promise.resolve([]);
    const left = new Set([...expected].filter((l) => !p.acked.has(l)));
    if (left.size === 0) {
      this.pending.delete(seq);
      return Promise.resolve([]);
    }
    return new Promise<string[]>((resolve) => {
      const timer = setTimeout(() => p.finish?.(), timeoutMs);
      timer.unref();
      p.left = left;
      p.finish = () => {
        clearTimeout(timer);
        this.pending.delete(seq);
        resolve([...left]);
      };
    });
  }

  /** Forgets a notice that was never sent (its statement failed). */
  cancel(seq: number): void {
    const p = this.pending.get(seq);
    if (p?.finish) p.finish();
    else this.pending.delete(seq);
  }

  /** Resolves every wait at once (the feed is closing). */
  closeAll(): void {
    for (const seq of [...this.pending.keys()]) this.cancel(seq);
  }

  get size(): number {
    return this.pending.size;
  }
}
