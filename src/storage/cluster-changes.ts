/**
 * Change notices between the worker processes of one `floe serve --workers N` on the embedded
 * backend, relayed by the supervising primary over cluster IPC (PostgreSQL's LISTEN/NOTIFY plays
 * this part between replicas, acknowledged the same way: storage/acks.ts). A worker's `notify`
 * resolves only once every other live worker has delivered it (or ACK_TIMEOUT_MS passed): a path
 * committed or a token revoked through one worker is seen by the next request on any worker,
 * whatever connection it arrives on.
 */
import type { Worker } from 'node:cluster';
import { ACK_TIMEOUT_MS } from './acks.js';
import { type ChangeFeed, type ChangeTopic, LocalChangeFeed } from './changes.js';

type Message =
  | { floeChange: 'notify'; id: number; topic: ChangeTopic; payload: string }
  | { floeChange: 'deliver'; id: number; topic: ChangeTopic; payload: string }
  | { floeChange: 'ack'; id: number }
  | { floeChange: 'done'; id: number };

function isChangeMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as { floeChange?: unknown }).floeChange === 'string';
}

/** The feed inside a worker process (needs an IPC channel to the primary: `process.send`). */
export class ClusterChangeFeed implements ChangeFeed {
  private readonly local = new LocalChangeFeed();
  private readonly waiting = new Map<number, () => void>();
  private nextId = 1;
  private readonly onMessage = (m: unknown): void => {
    if (!isChangeMessage(m)) return;
    if (m.floeChange === 'deliver') {
      this.local.deliver(m.topic, m.payload);
      process.send?.({ floeChange: 'ack', id: m.id } satisfies Message);
    } else if (m.floeChange === 'done') {
      this.waiting.get(m.id)?.();
    }
  };

  constructor() {
    process.on('message', this.onMessage);
  }

  notify(topic: ChangeTopic, payload: string): Promise<void> {
    this.local.deliver(topic, payload);
    const id = this.nextId++;
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve();
      };
      // Best effort like every feed: the memo lifetimes and pollers remain the guarantee.
      const timer = setTimeout(finish, ACK_TIMEOUT_MS);
      timer.unref();
      this.waiting.set(id, finish);
      if (!process.send?.({ floeChange: 'notify', id, topic, payload } satisfies Message)) finish();
    });
  }

  subscribe(topic: ChangeTopic, onChange: (payload: string) => void): void {
    this.local.subscribe(topic, onChange);
  }

  /** Embedded: every writer is a worker of this server, and each waits for this one's answer. */
  acknowledgedEpoch(): number | undefined {
    return 0;
  }

  async close(): Promise<void> {
    process.off('message', this.onMessage);
    for (const finish of [...this.waiting.values()]) finish();
    await this.local.close();
  }
}

/**
 * The primary's side: hands each worker's notice to every other live worker and tells the sender
 * once they have all delivered it (or died, or timed out). `workers()` lists the live workers.
 */
export function relayChangeNotices(workers: () => Worker[]): {
  onMessage(from: Worker, m: unknown): void;
  onExit(w: Worker): void;
} {
  let nextId = 1;
  const pending = new Map<number, { left: Set<Worker>; done: () => void }>();
  const onExit = (w: Worker): void => {
    for (const p of [...pending.values()]) {
      p.left.delete(w);
      if (p.left.size === 0) p.done();
    }
  };
  const onMessage = (from: Worker, m: unknown): void => {
    if (!isChangeMessage(m)) return;
    if (m.floeChange === 'ack') {
      const p = pending.get(m.id);
      p?.left.delete(from);
      if (p && p.left.size === 0) p.done();
      return;
    }
    if (m.floeChange !== 'notify') return;
    const id = nextId++;
    const others = workers().filter((w) => w !== from && w.isConnected());
    const answer = () => {
      clearTimeout(timer);
      if (!pending.delete(id)) return;
      if (from.isConnected()) from.send({ floeChange: 'done', id: m.id } satisfies Message);
    };
    const timer = setTimeout(answer, ACK_TIMEOUT_MS);
    timer.unref();
    pending.set(id, { left: new Set(others), done: answer });
    for (const w of others) {
      w.send({ floeChange: 'deliver', id, topic: m.topic, payload: m.payload } satisfies Message);
    }
    if (others.length === 0) answer();
  };
  return { onMessage, onExit };
}

/**
 * Workers of one server on PostgreSQL: notices go to other replicas by `replicas` (LISTEN/NOTIFY)
 * and to this server's other workers through the primary too, so those have them before the
 * change is answered. Subscribers may hear a notice twice; dropping a memo twice is harmless.
 */
export class WorkersAndReplicasFeed implements ChangeFeed {
  private readonly workers = new ClusterChangeFeed();

  constructor(private readonly replicas: ChangeFeed) {}

  async notify(topic: ChangeTopic, payload: string): Promise<void> {
    await Promise.all([this.replicas.notify(topic, payload), this.workers.notify(topic, payload)]);
  }

  subscribe(topic: ChangeTopic, onChange: (payload: string) => void): void {
    this.replicas.subscribe(topic, onChange);
    this.workers.subscribe(topic, onChange);
  }

  /** Each worker has its own PostgreSQL feed, acknowledged on its own: that feed decides. */
  acknowledgedEpoch(): number | undefined {
    return this.replicas.acknowledgedEpoch();
  }

  async close(): Promise<void> {
    await Promise.all([this.replicas.close(), this.workers.close()]);
  }
}
