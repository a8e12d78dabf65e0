/**
 * Storage accounting (quotas, `floe usage`, `GET /api/v1/orgs/:org/usage`). Logical bytes = the sum of NarSize over the paths (what clients download);
 * deduplicated bytes = the stored (zstd) file sizes of the distinct NARs those paths use (plus the
 * slices' stored build logs), which is
 * what a slice or org costs in storage and what quotas limit.
 */
import type { Db } from '../storage/types.js';

/** Deduplicated stored bytes of an org: distinct NARs used by any of its slices. */
export async function orgStoredBytes(db: Db, orgId: string): Promise<number> {
  const row = await db
    .selectFrom('nars')
    .select((eb) => eb.fn.sum<number | string | null>('nars.file_size').as('bytes'))
    .where('nars.nar_hash', 'in', (eb) =>
      eb
        .selectFrom('paths')
        .innerJoin('slices', 'slices.id', 'paths.slice_id')
        .select('paths.nar_hash')
        .where('slices.org_id', '=', orgId),
    )
    .executeTakeFirst();
  return Number(row?.bytes ?? 0) + (await orgLogBytes(db, orgId));
}

/** Stored bytes of an org's build logs (each slice's copy counts: logs are small next to NARs). */
export async function orgLogBytes(db: Db, orgId: string): Promise<number> {
  const row = await db
    .selectFrom('build_logs')
    .innerJoin('slices', 'slices.id', 'build_logs.slice_id')
    .select((eb) => eb.fn.sum<number | string | null>('build_logs.stored_size').as('bytes'))
    .where('slices.org_id', '=', orgId)
    .executeTakeFirst();
  return Number(row?.bytes ?? 0);
}

/**
 * What counts against an org's quota before an upload: the stored bytes of the distinct NARs its
 * paths use, and of those its slices uploaded and may still commit (unexpired `nar_uploads` rows).
 * Without the second part, NARs uploaded without a narinfo would be stored free of any quota.
 */
export async function orgBytesWithPending(db: Db, orgId: string): Promise<number> {
  const now = new Date().toISOString();
  const row = await db
    .selectFrom('nars')
    .select((eb) => eb.fn.sum<number | string | null>('nars.file_size').as('bytes'))
    .where((eb) =>
      eb.or([
        eb(
          'nars.nar_hash',
          'in',
          eb
            .selectFrom('paths')
            .innerJoin('slices', 'slices.id', 'paths.slice_id')
            .select('paths.nar_hash')
            .where('slices.org_id', '=', orgId),
        ),
        eb(
          'nars.nar_hash',
          'in',
          eb
            .selectFrom('nar_uploads')
            .innerJoin('slices', 'slices.id', 'nar_uploads.slice_id')
            .select('nar_uploads.nar_hash')
            .where('slices.org_id', '=', orgId)
            .where('nar_uploads.expires_at', '>', now),
        ),
      ]),
    )
    .executeTakeFirst();
  return Number(row?.bytes ?? 0) + (await orgLogBytes(db, orgId));
}

export interface SliceStorage {
  name: string;
  paths: number;
  logicalBytes: number;
  storedBytes: number;
}

export interface OrgStorage {
  org: string;
  paths: number;
  logicalBytes: number;
  storedBytes: number;
  quotaBytes: number | null;
  retentionSeconds: number | null;
  slices: SliceStorage[];
}

export async function orgStorage(db: Db, org: { id: string; name: string }): Promise<OrgStorage> {
  const slices = await db
    .selectFrom('slices')
    .select(['id', 'name'])
    .where('org_id', '=', org.id)
    .orderBy('name')
    .execute();
  const out: SliceStorage[] = [];
  for (const s of slices) {
    const logical = await db
      .selectFrom('paths')
      .select((eb) => [
        eb.fn.countAll<number | string>().as('n'),
        eb.fn.sum<number | string | null>('nar_size').as('bytes'),
      ])
      .where('slice_id', '=', s.id)
      .executeTakeFirst();
    const stored = await db
      .selectFrom('nars')
      .select((eb) => eb.fn.sum<number | string | null>('nars.file_size').as('bytes'))
      .where('nars.nar_hash', 'in', (eb) =>
        eb.selectFrom('paths').select('paths.nar_hash').where('paths.slice_id', '=', s.id),
      )
      .executeTakeFirst();
    const logs = await db
      .selectFrom('build_logs')
      .select((eb) => eb.fn.sum<number | string | null>('stored_size').as('bytes'))
      .where('slice_id', '=', s.id)
      .executeTakeFirst();
    const storedBytes = Number(stored?.bytes ?? 0) + Number(logs?.bytes ?? 0);
    out.push({ name: s.name, paths: Number(logical?.n ?? 0), logicalBytes: Number(logical?.bytes ?? 0), storedBytes });
  }
  const settings = await db.selectFrom('org_settings').selectAll().where('org_id', '=', org.id).executeTakeFirst();
  return {
    org: org.name,
    paths: out.reduce((n, s) => n + s.paths, 0),
    logicalBytes: out.reduce((n, s) => n + s.logicalBytes, 0),
    storedBytes: await orgStoredBytes(db, org.id),
    quotaBytes: settings?.quota_bytes == null ? null : Number(settings.quota_bytes),
    retentionSeconds: settings?.retention_seconds == null ? null : Number(settings.retention_seconds),
    slices: out,
  };
}
