/** Orgs and their cache slices. Every org has a private `default` slice from the moment it exists. */
import { randomUUID } from 'node:crypto';
import { Conflict, InvalidInput, NotFoundWithReason } from '../errors.js';
import type { Db } from '../storage/types.js';
import type { SliceResource } from '../policy/actions.js';
import { noSliceNamed } from './names.js';

import { DEFAULT_SLICE } from './names.js';

export { DEFAULT_SLICE };
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function parseName(kind: 'org' | 'slice' | 'upstream' | 'pin', text: string): string {
  if (!NAME.test(text)) {
    throw new InvalidInput(
      `${kind} name`,
      `${JSON.stringify(text.slice(0, 80))} must be 1-63 characters of a-z, 0-9, "-" or "_", starting with a letter or digit`,
    );
  }
  return text;
}

export interface Org {
  id: string;
  name: string;
  createdAt: string;
}

export interface Slice {
  id: string;
  orgId: string;
  name: string;
  public: boolean;
}

function refuseDefault(name: string): void {
  if (name === DEFAULT_SLICE) throw new InvalidInput('slice', 'the default slice cannot be deleted: every org has one');
}

export class OrgService {
  /** Slices change rarely and are read on every cache request. */
  private readonly sliceCache = new Map<string, { at: number; value: SliceResource | undefined }>();
  private static readonly SLICE_CACHE_MS = 2_000;

  constructor(private readonly db: Db) {}

  async createOrg(name: string): Promise<Org> {
    parseName('org', name);
    const org: Org = { id: randomUUID(), name, createdAt: new Date().toISOString() };
    try {
      await this.db.transaction().execute(async (trx) => {
        await trx.insertInto('orgs').values({ id: org.id, name, created_at: org.createdAt }).execute();
        await trx
          .insertInto('slices')
          .values({
            id: randomUUID(),
            org_id: org.id,
            name: DEFAULT_SLICE,
            public: 0,
            created_at: org.createdAt,
            in_view: 1,
            priority: 0,
          })
          .execute();
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new Conflict(`org ${JSON.stringify(name)} already exists`);
      throw err;
    }
    return org;
  }

  /** Every org's name: for the server admin's "did you mean" (it may see them all anyway). */
  async orgNames(): Promise<string[]> {
    return (await this.db.selectFrom('orgs').select('name').execute()).map((r) => r.name);
  }

  async findOrg(name: string): Promise<Org | undefined> {
    const row = await this.db.selectFrom('orgs').selectAll().where('name', '=', name).executeTakeFirst();
    return row && { id: row.id, name: row.name, createdAt: row.created_at };
  }

  /**
   * A new slice answers at its own URL; it joins the org's unified view only when asked to
   * (`inView`), so a low-trust slice never serves the org's machines by default.
   */
  async createSlice(org: Org, name: string, isPublic: boolean, inView = false): Promise<Slice> {
    parseName('slice', name);
    const slice: Slice = { id: randomUUID(), orgId: org.id, name, public: isPublic };
    try {
      await this.db
        .insertInto('slices')
        .values({
          id: slice.id,
          org_id: org.id,
          name,
          public: isPublic ? 1 : 0,
          created_at: new Date().toISOString(),
          in_view: inView ? 1 : 0,
          priority: 100,
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new Conflict(`slice ${JSON.stringify(name)} already exists in org ${org.name}`);
      throw err;
    }
    this.sliceCache.clear();
    return slice;
  }

  async setSliceVisibility(org: Org, name: string, isPublic: boolean): Promise<boolean> {
    const res = await this.db
      .updateTable('slices')
      .set({ public: isPublic ? 1 : 0 })
      .where('org_id', '=', org.id)
      .where('name', '=', name)
      .executeTakeFirst();
    this.sliceCache.clear();
    return Number(res.numUpdatedRows) > 0;
  }

  /**
   * Deletes an empty slice: its upload records (proofs of possession; GC collects their blobs), the
   * link trusts naming it either way and other orgs' follows of it go with it. Refused: the
   * `default` slice (every org has one), a slice still holding paths, logs or realisations (409),
   * and a slice that live tokens or identity trusts are limited to, since a slice created later
   * under the same name would open to them (409 until they are revoked or changed).
   */
  async deleteSlice(org: Org, name: string): Promise<{ uploads: number; trusts: number; follows: number }> {
    refuseDefault(name);
    const result = await this.db.transaction().execute(async (trx) => {
      const slice = await trx
        .selectFrom('slices')
        .select('id')
        .where('org_id', '=', org.id)
        .where('name', '=', name)
        .executeTakeFirst();
      if (!slice) {
        // Only an org admin deletes slices: it may know every slice of the org.
        const names = await trx.selectFrom('slices').select('name').where('org_id', '=', org.id).execute();
        throw new NotFoundWithReason(
          noSliceNamed(
            org.name,
            [name],
            names.map((r) => r.name),
          ),
        );
      }
      const count = async (table: 'paths' | 'build_logs' | 'realisations') => {
        const row = await trx
          .selectFrom(table)
          .select((eb) => eb.fn.countAll().as('n'))
          .where('slice_id', '=', slice.id)
          .executeTakeFirstOrThrow();
        return Number(row.n);
      };
      const held = {
        paths: await count('paths'),
        logs: await count('build_logs'),
        realisations: await count('realisations'),
      };
      if (held.paths + held.logs + held.realisations > 0) {
        throw new Conflict(
          `slice ${org.name}/${name} holds ${held.paths} path(s), ${held.logs} log(s) and ${held.realisations} ` +
            'realisation(s): only an empty slice can be deleted',
        );
      }
      await this.refuseLimitedTo(org, name, trx);
      const deleted = (r: { numDeletedRows: bigint }) => Number(r.numDeletedRows);
      const uploads = deleted(await trx.deleteFrom('nar_uploads').where('slice_id', '=', slice.id).executeTakeFirst());
      const linkTrusts = deleted(
        await trx
          .deleteFrom('slice_trusts')
          .where((eb) => eb.or([eb('slice_id', '=', slice.id), eb('trusted_slice_id', '=', slice.id)]))
          .executeTakeFirst(),
      );
      const follows = deleted(await trx.deleteFrom('org_follows').where('slice_id', '=', slice.id).executeTakeFirst());
      // Debug info entries only point at this slice's NARs: they go with it.
      await trx.deleteFrom('debuginfo').where('slice_id', '=', slice.id).execute();
      await trx.deleteFrom('slices').where('id', '=', slice.id).execute();
      return { uploads, trusts: linkTrusts, follows };
    });
    this.sliceCache.clear();
    return result;
  }

  /** What `floe slice delete --force` checks before it removes any path; deleteSlice checks again. */
  async checkDeletable(org: Org, name: string): Promise<void> {
    refuseDefault(name);
    await this.refuseLimitedTo(org, name);
  }

  /**
   * Refuses (409) deleting a slice that live tokens or identity trusts are limited to: a slice
   * created later under the same name would open to them. `floe slice delete --force` asks first,
   * before it removes any path.
   */
  async refuseLimitedTo(org: Org, name: string, db: Db = this.db): Promise<void> {
    const now = new Date().toISOString();
    const liveTokens = await db
      .selectFrom('tokens')
      .select('slices')
      .where('org_id', '=', org.id)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .where('slices', 'is not', null)
      .execute();
    const tokens = liveTokens.filter((t) => (JSON.parse(t.slices!) as string[]).includes(name)).length;
    const specs = await db.selectFrom('identity_trusts').select('spec').where('org_id', '=', org.id).execute();
    const trusts = specs.filter((t) =>
      ((JSON.parse(t.spec) as { slices?: string[] }).slices ?? []).includes(name),
    ).length;
    if (tokens + trusts > 0) {
      throw new Conflict(
        `${tokens} live token(s) and ${trusts} identity trust(s) are limited to slice ${org.name}/${name}: revoke or ` +
          'change them first (a slice created later under this name would open to them)',
      );
    }
  }

  async listSlices(org: Org): Promise<Slice[]> {
    const rows = await this.db.selectFrom('slices').selectAll().where('org_id', '=', org.id).orderBy('name').execute();
    return rows.map((r) => ({ id: r.id, orgId: r.org_id, name: r.name, public: r.public === 1 }));
  }

  /** Resolves `<org>/<slice>` to the resource the authorizer sees; undefined when either is missing. */
  async findSlice(orgName: string, sliceName: string): Promise<SliceResource | undefined> {
    const key = `${orgName}/${sliceName}`;
    const hit = this.sliceCache.get(key);
    if (hit && Date.now() - hit.at < OrgService.SLICE_CACHE_MS) return hit.value;
    const row = await this.db
      .selectFrom('slices')
      .innerJoin('orgs', 'orgs.id', 'slices.org_id')
      .select([
        'slices.id as slice_id',
        'slices.name as slice_name',
        'slices.public',
        'orgs.id as org_id',
        'orgs.name as org_name',
      ])
      .where('orgs.name', '=', orgName)
      .where('slices.name', '=', sliceName)
      .executeTakeFirst();
    const value: SliceResource | undefined = row && {
      type: 'slice',
      org: { id: row.org_id, name: row.org_name },
      slice: { id: row.slice_id, name: row.slice_name, public: row.public === 1 },
    };
    if (this.sliceCache.size > 10_000) this.sliceCache.clear();
    this.sliceCache.set(key, { at: Date.now(), value });
    return value;
  }
}

export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === '23505';
}
