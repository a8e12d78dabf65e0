/**
 * A short-lived, size-bounded memo of lookups on the substitution hot path (narinfo by hash).
 * With `keepEmpty` false (several replicas share the database), empty results are not kept, so
 * something written on another replica is visible at once; a single embedded process sees every
 * write itself and may keep them.
 * Entries are grouped by store path hash so one write invalidates every view of that hash at once.
 * This replica's own writes invalidate immediately; writes on other replicas become visible within
 * `ttlMs`. Authorization is still decided per request from the cached rows.
 */
export class ReadCache<V> {
  private readonly groups = new Map<string, Map<string, { at: number; value: V }>>();
  /** Bumped by every invalidation: a load that was in flight across one may be stale, so it is not kept. */
  private epoch = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxGroups: number,
    private readonly keepEmpty: boolean,
  ) {}

  async get(group: string, key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now();
    const hit = this.groups.get(group)?.get(key);
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const epoch = this.epoch;
    const value = await load();
    if (epoch !== this.epoch) return value;
    if (!this.keepEmpty && Array.isArray(value) && value.length === 0) return value;
    let entries = this.groups.get(group);
    if (!entries) {
      if (this.groups.size >= this.maxGroups) this.evictOldest();
      entries = new Map();
      this.groups.set(group, entries);
    }
    entries.set(key, { at: now, value });
    return value;
  }

  invalidate(group: string): void {
    this.epoch++;
    this.groups.delete(group);
  }

  clear(): void {
    this.epoch++;
    this.groups.clear();
  }

  private evictOldest(): void {
    // Map iteration is insertion order: drop the oldest tenth.
    let drop = Math.ceil(this.maxGroups / 10);
    for (const k of this.groups.keys()) {
      this.groups.delete(k);
      if (--drop <= 0) break;
    }
  }
}
