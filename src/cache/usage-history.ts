/**
 * Storage over time: one row per org and UTC day (`usage_history`) with the org's logical bytes
 * (sum of NarSize), deduplicated stored bytes (distinct NARs' zstd sizes, what quotas limit) and
 * path count. `floe serve` upserts today's row for every org shortly after start, once a day, and
 * after every GC run; each org costs one aggregate query. Callers authorize reads (org admins).
 */
import type { Db } from '../storage/types.js';

export interface UsageSnapshot {
  /** YYYY-MM-DD (UTC). */
  day: string;
  logicalBytes: number;
  storedBytes: number;
  paths: number;
}

export class UsageHistory {
  private running: Promise<number> | undefined;

  constructor(private readonly db: Db) {}

  /** Today's figures of one org, in one statement (the stored bytes are a sub-select). */
  async measure(orgId: string): Promise<Omit<UsageSnapshot, 'day'>> {
    const row = await this.db
      .selectFrom('paths')
      .innerJoin('slices', 'slices.id', 'paths.slice_id')
      .where('slices.org_id', '=', orgId)
      .select((eb) => [
        eb.fn.countAll<number | string>().as('paths'),
        eb.fn.sum<number | string | null>('paths.nar_size').as('logical'),
        eb
          .selectFrom('nars')
          .select((n) => n.fn.sum<number | string | null>('nars.file_size').as('stored'))
          .where('nars.nar_hash', 'in', (sub) =>
            sub
              .selectFrom('paths as p2')
              .innerJoin('slices as s2', 's2.id', 'p2.slice_id')
              .select('p2.nar_hash')
              .where('s2.org_id', '=', orgId),
          )
          .as('stored'),
      ])
      .executeTakeFirst();
    return {
      paths: Number(row?.paths ?? 0),
      logicalBytes: Number(row?.logical ?? 0),
      storedBytes: Number(row?.stored ?? 0),
    };
  }

  /** Upserts today's row for every org; returns how many orgs were written. One run at a time. */
  snapshotAll(now = new Date()): Promise<number> {
    const next = (this.running ?? Promise.resolve(0)).catch(() => 0).then(() => this.snapshot(now));
    this.running = next;
    return next.finally(() => {
      if (this.running === next) this.running = undefined;
    });
  }

  /** Waits for a snapshot under way (at shutdown, before the database closes). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  private async snapshot(now: Date): Promise<number> {
    const day = now.toISOString().slice(0, 10);
    const orgs = await this.db.selectFrom('orgs').select('id').execute();
    for (const org of orgs) {
      const m = await this.measure(org.id);
      const values = {
        logical_bytes: m.logicalBytes,
        stored_bytes: m.storedBytes,
        paths: m.paths,
        updated_at: now.toISOString(),
      };
      await this.db
        .insertInto('usage_history')
        .values({ day, org_id: org.id, ...values })
        .onConflict((oc) => oc.columns(['org_id', 'day']).doUpdateSet(values))
        .execute();
    }
    return orgs.length;
  }

  /** The org's snapshots of the last `days` days (UTC, today included), oldest first; days without one are absent. */
  async history(org: { id: string }, days = 30, now = new Date()): Promise<UsageSnapshot[]> {
    const since = new Date(now.getTime() - (days - 1) * 86_400_000).toISOString().slice(0, 10);
    const rows = await this.db
      .selectFrom('usage_history')
      .select(['day', 'logical_bytes', 'stored_bytes', 'paths'])
      .where('org_id', '=', org.id)
      .where('day', '>=', since)
      .orderBy('day')
      .execute();
    return rows.map((r) => ({
      day: r.day,
      logicalBytes: Number(r.logical_bytes),
      storedBytes: Number(r.stored_bytes),
      paths: Number(r.paths),
    }));
  }
}
