/** Pins (named GC roots per org, optional expiry) and per-org retention and quota settings. */
import { InvalidInput, NotFound } from '../errors.js';
import { type StorePathBase, hashPartOf } from '../nix/store-path.js';
import { parseName } from '../org/service.js';
import type { Db } from '../storage/types.js';

export interface Pin {
  name: string;
  storePath: string;
  expiresAt: string | null;
  createdBy: string;
  createdAt: string;
}

export interface OrgSettings {
  retentionSeconds: number | null;
  quotaBytes: number | null;
}

export class RetentionService {
  constructor(private readonly db: Db) {}

  async pin(
    org: { id: string; name: string },
    input: { name: string; storePath: StorePathBase; ttlSeconds?: number; createdBy: string },
  ): Promise<Pin> {
    const name = parseName('pin', input.name);
    const held = await this.db
      .selectFrom('paths')
      .innerJoin('slices', 'slices.id', 'paths.slice_id')
      .select('paths.hash_part')
      .where('slices.org_id', '=', org.id)
      .where('paths.hash_part', '=', hashPartOf(input.storePath))
      .where('paths.store_path', '=', input.storePath)
      .executeTakeFirst();
    if (!held)
      throw new InvalidInput('storePath', `/nix/store/${input.storePath} is in no slice of ${org.name}; push it first`);
    const now = new Date();
    const row = {
      org_id: org.id,
      name,
      store_path: input.storePath,
      hash_part: hashPartOf(input.storePath),
      expires_at: input.ttlSeconds ? new Date(now.getTime() + input.ttlSeconds * 1000).toISOString() : null,
      created_by: input.createdBy,
      created_at: now.toISOString(),
    };
    await this.db
      .insertInto('pins')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['org_id', 'name']).doUpdateSet({
          store_path: row.store_path,
          hash_part: row.hash_part,
          expires_at: row.expires_at,
          created_by: row.created_by,
          created_at: row.created_at,
        }),
      )
      .execute();
    return {
      name,
      storePath: `/nix/store/${row.store_path}`,
      expiresAt: row.expires_at,
      createdBy: row.created_by,
      createdAt: row.created_at,
    };
  }

  async listPins(org: { id: string }): Promise<Pin[]> {
    const rows = await this.db.selectFrom('pins').selectAll().where('org_id', '=', org.id).orderBy('name').execute();
    return rows.map((r) => ({
      name: r.name,
      storePath: `/nix/store/${r.store_path}`,
      expiresAt: r.expires_at,
      createdBy: r.created_by,
      createdAt: r.created_at,
    }));
  }

  async unpin(org: { id: string }, name: string): Promise<void> {
    const r = await this.db.deleteFrom('pins').where('org_id', '=', org.id).where('name', '=', name).executeTakeFirst();
    if (Number(r.numDeletedRows) === 0) throw new NotFound();
  }

  async settings(org: { id: string }): Promise<OrgSettings> {
    const row = await this.db.selectFrom('org_settings').selectAll().where('org_id', '=', org.id).executeTakeFirst();
    return {
      retentionSeconds: row?.retention_seconds == null ? null : Number(row.retention_seconds),
      quotaBytes: row?.quota_bytes == null ? null : Number(row.quota_bytes),
    };
  }

  /** `undefined` leaves a setting as it is; `null` clears it. */
  async updateSettings(
    org: { id: string },
    change: { retentionSeconds?: number | null; quotaBytes?: number | null },
  ): Promise<OrgSettings> {
    const current = await this.settings(org);
    const next = {
      retention_seconds: change.retentionSeconds === undefined ? current.retentionSeconds : change.retentionSeconds,
      quota_bytes: change.quotaBytes === undefined ? current.quotaBytes : change.quotaBytes,
      updated_at: new Date().toISOString(),
    };
    await this.db
      .insertInto('org_settings')
      .values({ org_id: org.id, ...next })
      .onConflict((oc) => oc.column('org_id').doUpdateSet(next))
      .execute();
    return this.settings(org);
  }
}
