/** Bounds concurrent work (NAR ingestion: CPU, memory and open temp files); extra callers wait their turn. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * A semaphore shared by groups (orgs) that none of them can monopolize: at most `limit` holders in
 * all and `perGroup` per group, and a freed slot goes to the next group in turn that is waiting
 * (round robin over groups, first come first served within one). One org's queue of stalled
 * uploads therefore delays another org's upload by at most one turn, never indefinitely.
 * Callers queue rather than being refused (a 429 or 5xx makes old Nix retry a PUT without its body).
 */
export class FairSemaphore {
  private active = 0;
  private readonly activeBy = new Map<string, number>();
  /** Waiters per group; the Map's order is the turn order (a served group moves to the end). */
  private readonly queues = new Map<string, Array<() => void>>();

  constructor(
    readonly limit: number,
    readonly perGroup: number,
  ) {
    if (limit < 1 || perGroup < 1) throw new RangeError('limits must be at least 1');
  }

  async run<T>(group: string, work: () => Promise<T>): Promise<T> {
    await this.acquire(group);
    try {
      return await work();
    } finally {
      this.release(group);
    }
  }

  /** Holders now, in all or of one group. */
  running(group?: string): number {
    return group === undefined ? this.active : (this.activeBy.get(group) ?? 0);
  }

  /** Callers waiting, in all or of one group. */
  waiting(group?: string): number {
    if (group !== undefined) return this.queues.get(group)?.length ?? 0;
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  private acquire(group: string): Promise<void> {
    // Nobody of this group waits ahead, and there is room: start at once.
    if (!this.queues.has(group) && this.active < this.limit && this.running(group) < this.perGroup) {
      this.grant(group);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const q = this.queues.get(group);
      if (q) q.push(resolve);
      else this.queues.set(group, [resolve]);
      this.pump();
    });
  }

  private release(group: string): void {
    this.active--;
    const n = this.running(group) - 1;
    if (n > 0) this.activeBy.set(group, n);
    else this.activeBy.delete(group);
    this.pump();
  }

  private grant(group: string): void {
    this.active++;
    this.activeBy.set(group, this.running(group) + 1);
  }

  /** Hands free slots to waiting groups in turn, skipping groups at their own limit. */
  private pump(): void {
    while (this.active < this.limit) {
      let next: string | undefined;
      for (const [group] of this.queues) {
        if (this.running(group) < this.perGroup) {
          next = group;
          break;
        }
      }
      if (next === undefined) return;
      const q = this.queues.get(next)!;
      const resolve = q.shift()!;
      this.queues.delete(next);
      if (q.length > 0) this.queues.set(next, q); // to the back of the turn order
      this.grant(next);
      resolve();
    }
  }
}
