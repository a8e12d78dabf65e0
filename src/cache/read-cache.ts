/**
 * A short-lived, size-bounded memo of lookups on the substitution hot path (narinfo by hash).
 * Empty results ("no such path") are kept only while `absenceEpoch` names a number: while every
 * writer waits for this process to have dropped the memos its change touches before it answers
 * its client (the acknowledged change notices, storage/changes.ts: embedded workers over cluster
 * IPC, PostgreSQL replicas over LISTEN/NOTIFY). An absence is kept under the number current when
 * its load began (and still current when it ended), and served only while that number is current:
 * a feed that lost its connection (undefined) or came back (a new number) cannot serve an absence
 * from before, when a notice may have been missed. Found rows are kept either way (`ttlMs` bounds them).
 * Entries are grouped by store path hash so one write invalidates every view of that hash at once.
 * Authorization is still decided per request from the cached rows.
 */
export class ReadCache<V> {
  /** `absence`: the epoch an empty value was kept under (undefined for found rows). */
  private readonly groups = new Map<string, Map<string, { at: number; value: V; absence: number | undefined }>>();
  /** Bumped by every invalidation: a load that was in flight across one may be stale, so it is not kept. */
  private generation = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxGroups: number,
    private readonly absenceEpoch: () => number | undefined,
  ) {}

  async get(group: string, key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now();
    const hit = this.groups.get(group)?.get(key);
    if (hit && now - hit.at < this.ttlMs && (hit.absence === undefined || hit.absence === this.absenceEpoch()))
      return hit.value;
    const generation = this.generation;
    const absence = this.absenceEpoch();
    const value = await load();
    if (generation !== this.generation) return value;
    const empty = Array.isArray(value) && value.length === 0;
    if (empty && (absence === undefined || absence !== this.absenceEpoch())) return value;
    let entries = this.groups.get(group);
    if (!entries) {
      if (this.groups.size >= this.maxGroups) this.evictOldest();
      entries = new Map();
      this.groups.set(group, entries);
    }
    entries.set(key, { at: now, value, absence: empty ? absence : undefined });
    return value;
  }

  invalidate(group: string): void {
    this.generation++;
    this.groups.delete(group);
  }

  clear(): void {
    this.generation++;
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
