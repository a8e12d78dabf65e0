/**
 * What an org's cache holds, from the database: per slice path counts and NAR bytes, pushes per
 * day, the biggest closures' roots and who pushed most. Callers authorize first (org admins only).
 */
import type { Org } from '../org/service.js';
import type { Db } from '../storage/types.js';
import { type OrgStorage, orgStorage } from './accounting.js';

export interface SliceUsage {
  slice: string;
  public: boolean;
  paths: number;
  /** Sum of NarSize over the slice's paths (NARs shared between slices count in each). */
  narBytes: number;
}

export interface DayCount {
  /** YYYY-MM-DD (UTC). */
  day: string;
  paths: number;
  bytes: number;
}

export interface OrgUsage {
  slices: SliceUsage[];
  totalPaths: number;
  totalNarBytes: number;
  /** The last `days` days, oldest first, days without pushes included. */
  pushesPerDay: DayCount[];
  recent: Array<{ storePath: string; slice: string; narSize: number; uploadedBy: string; at: string }>;
  topUploaders: Array<{ uploadedBy: string; paths: number; bytes: number }>;
  largest: Array<{ storePath: string; slice: string; narSize: number }>;
}

export class UsageService {
  constructor(private readonly db: Db) {}

  /** Logical and stored bytes per org and slice, quota and retention: the same figures as `GET /api/v1/orgs/:org/usage`. */
  storage(org: Org): Promise<OrgStorage> {
    return orgStorage(this.db, org);
  }

  async orgUsage(org: Org, opts: { days?: number } = {}): Promise<OrgUsage> {
    const days = opts.days ?? 30;
    const sliceRows = await this.db
      .selectFrom('slices')
      .leftJoin('paths', 'paths.slice_id', 'slices.id')
      .select((eb) => [
        'slices.name',
        'slices.public',
        eb.fn.count<number>('paths.hash_part').as('paths'),
        eb.fn.sum<number>('paths.nar_size').as('bytes'),
      ])
      .where('slices.org_id', '=', org.id)
      .groupBy(['slices.id', 'slices.name', 'slices.public'])
      .orderBy('slices.name')
      .execute();
    const slices = sliceRows.map((r) => ({
      slice: r.name,
      public: Number(r.public) === 1,
      paths: Number(r.paths ?? 0),
      narBytes: Number(r.bytes ?? 0),
    }));

    const since = new Date(Date.now() - (days - 1) * 86_400_000);
    since.setUTCHours(0, 0, 0, 0);
    const orgPaths = () =>
      this.db
        .selectFrom('paths')
        .innerJoin('slices', 'slices.id', 'paths.slice_id')
        .where('slices.org_id', '=', org.id);
    // Bounded: one row per recent path would not be, so aggregate in SQL by the date prefix.
    const perDay = await orgPaths()
      .select((eb) => [
        eb.fn<string>('substr', ['paths.created_at', eb.val(1), eb.val(10)]).as('day'),
        eb.fn.countAll<number>().as('paths'),
        eb.fn.sum<number>('paths.nar_size').as('bytes'),
      ])
      .where('paths.created_at', '>=', since.toISOString())
      .groupBy('day')
      .execute();
    const counts = new Map(perDay.map((r) => [r.day, r]));
    const pushesPerDay: DayCount[] = [];
    for (let i = 0; i < days; i++) {
      const day = new Date(since.getTime() + i * 86_400_000).toISOString().slice(0, 10);
      const c = counts.get(day);
      pushesPerDay.push({ day, paths: Number(c?.paths ?? 0), bytes: Number(c?.bytes ?? 0) });
    }

    const recent = await orgPaths()
      .select(['paths.store_path', 'slices.name', 'paths.nar_size', 'paths.uploaded_by', 'paths.created_at'])
      .orderBy('paths.created_at', 'desc')
      .limit(10)
      .execute();
    const top = await orgPaths()
      .select((eb) => [
        'paths.uploaded_by',
        eb.fn.countAll<number>().as('paths'),
        eb.fn.sum<number>('paths.nar_size').as('bytes'),
      ])
      .groupBy('paths.uploaded_by')
      .orderBy('bytes', 'desc')
      .limit(5)
      .execute();
    const largest = await orgPaths()
      .select(['paths.store_path', 'slices.name', 'paths.nar_size'])
      .orderBy('paths.nar_size', 'desc')
      .limit(5)
      .execute();
    return {
      slices,
      totalPaths: slices.reduce((a, s) => a + s.paths, 0),
      totalNarBytes: slices.reduce((a, s) => a + s.narBytes, 0),
      pushesPerDay,
      recent: recent.map((r) => ({
        storePath: r.store_path,
        slice: r.name,
        narSize: Number(r.nar_size),
        uploadedBy: r.uploaded_by,
        at: r.created_at,
      })),
      topUploaders: top.map((r) => ({
        uploadedBy: r.uploaded_by,
        paths: Number(r.paths),
        bytes: Number(r.bytes ?? 0),
      })),
      largest: largest.map((r) => ({ storePath: r.store_path, slice: r.name, narSize: Number(r.nar_size) })),
    };
  }
}
