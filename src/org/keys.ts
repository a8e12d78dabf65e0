/**
 * Each org's own Nix signing keys: narinfos of an org's slices are signed with them, so a client
 * that trusts only its org's key refuses any other tenant's content (Nix's signature check is the
 * second wall behind the views). Kept in the database like the server keys, so replicas sign alike.
 *
 * States: `active` (signs), `previous` (still signs and is still published during a transition:
 * after a rotation, or the shared server key of an installation upgraded from before org keys),
 * `retired` (no longer signs nor published). Narinfos carry a signature of every non-retired key,
 * so rotating never breaks a client that still trusts only the old key.
 */
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import {
  formatPublicKey,
  formatSecretKey,
  generateSigningKey,
  parseSecretKey,
  type SigningKey,
} from '../nix/signing.js';
import type { ChangeFeed } from '../storage/changes.js';
import type { Db } from '../storage/types.js';
import type { Org } from './service.js';

export interface OrgKeyInfo {
  name: string;
  publicKey: string;
  state: 'active' | 'previous' | 'retired';
  createdAt: string;
  retiredAt: string | null;
}

interface Loaded {
  at: number;
  signing: SigningKey[];
  published: string[];
  /** Every key name the org ever had (retired ones too), and the legacy server key's. */
  names: Set<string>;
}

const MEMO_MS = 60_000;

export class OrgKeyService {
  private readonly loaded = new Map<string, Loaded>();

  constructor(
    private readonly db: Db,
    private readonly opts: { keyPrefix: string; legacy?: SigningKey },
    private readonly changes?: ChangeFeed,
  ) {
    changes?.subscribe('keys', (payload) => {
      if (payload === '*' || !payload.startsWith('org:')) this.loaded.clear();
      else this.loaded.delete(payload.slice(4));
    });
  }

  /** Keys that sign the org's narinfos, active first. Creates the org's first key if it has none. */
  async signing(orgId: string): Promise<SigningKey[]> {
    return (await this.load(orgId)).signing;
  }

  /** `name:base64` public keys clients of this org should trust (active and previous). */
  async published(orgId: string): Promise<string[]> {
    return (await this.load(orgId)).published;
  }

  /** Every key name this server ever signed an org's narinfos with: uploaders cannot bring signatures under them. */
  async ownNames(orgId: string): Promise<ReadonlySet<string>> {
    return (await this.load(orgId)).names;
  }

  private async load(orgId: string): Promise<Loaded> {
    const hit = this.loaded.get(orgId);
    if (hit && Date.now() - hit.at < MEMO_MS) return hit;
    let rows = await this.rows(orgId);
    if (!rows.some((r) => r.state === 'active')) {
      await this.createFirst(orgId);
      rows = await this.rows(orgId);
    }
    const live = rows
      .filter((r) => r.state !== 'retired')
      .sort(
        (a, b) => Number(b.state === 'active') - Number(a.state === 'active') || (a.created_at < b.created_at ? 1 : -1),
      );
    const names = new Set(rows.map((r) => r.name));
    if (this.opts.legacy) names.add(this.opts.legacy.name);
    const value: Loaded = {
      at: Date.now(),
      signing: live.map((r) => parseSecretKey(r.secret)),
      published: live.map((r) => r.public),
      names,
    };
    this.loaded.set(orgId, value);
    return value;
  }

  private rows(orgId: string) {
    return this.db.selectFrom('org_keys').selectAll().where('org_id', '=', orgId).execute();
  }

  private async createFirst(orgId: string): Promise<void> {
    const org = await this.db.selectFrom('orgs').select(['id', 'name']).where('id', '=', orgId).executeTakeFirst();
    if (!org) throw new NotFound();
    const key = generateSigningKey(`${this.opts.keyPrefix}-${org.name}-1`);
    // Two replicas creating the first key at once insert the same name: the loser's row is ignored.
    await this.db
      .insertInto('org_keys')
      .values({
        org_id: org.id,
        name: key.name,
        secret: formatSecretKey(key),
        public: formatPublicKey(key),
        state: 'active',
        created_at: new Date().toISOString(),
        retired_at: null,
      })
      .onConflict((oc) => oc.columns(['org_id', 'name']).doNothing())
      .execute();
  }

  /**
   * Upgrade from a data directory made before org keys: every org without keys gets its own key,
   * and orgs that already hold paths keep the shared server key as `previous`, so machines that
   * trust only the server key keep substituting until the org admin retires it. Returns the org
   * ids whose narinfos must be re-signed.
   */
  async migrateOrgs(): Promise<string[]> {
    const orgs = await this.db.selectFrom('orgs').select('id').execute();
    const keyed = new Set(
      (await this.db.selectFrom('org_keys').select('org_id').distinct().execute()).map((r) => r.org_id),
    );
    const resign: string[] = [];
    for (const org of orgs) {
      if (keyed.has(org.id)) continue;
      const holdsPaths = await this.db
        .selectFrom('paths')
        .innerJoin('slices', 'slices.id', 'paths.slice_id')
        .select('paths.hash_part')
        .where('slices.org_id', '=', org.id)
        .limit(1)
        .executeTakeFirst();
      await this.createFirst(org.id);
      if (holdsPaths && this.opts.legacy) {
        const legacy = this.opts.legacy;
        await this.db
          .insertInto('org_keys')
          .values({
            org_id: org.id,
            name: legacy.name,
            secret: formatSecretKey(legacy),
            public: formatPublicKey(legacy),
            state: 'previous',
            created_at: '1970-01-01T00:00:00.000Z',
            retired_at: null,
          })
          .onConflict((oc) => oc.columns(['org_id', 'name']).doNothing())
          .execute();
        resign.push(org.id);
      }
      this.loaded.delete(org.id);
    }
    return resign;
  }

  async list(org: Org): Promise<OrgKeyInfo[]> {
    await this.load(org.id);
    const rows = await this.rows(org.id);
    const order = { active: 0, previous: 1, retired: 2 } as const;
    return rows
      .sort((a, b) => order[a.state] - order[b.state] || (a.created_at < b.created_at ? 1 : -1))
      .map((r) => ({
        name: r.name,
        publicKey: r.public,
        state: r.state,
        createdAt: r.created_at,
        retiredAt: r.retired_at,
      }));
  }

  /** A new key signs from now on; the old one keeps signing (as `previous`) until it is retired. */
  async rotate(org: Org): Promise<OrgKeyInfo> {
    await this.load(org.id);
    const created = await this.db.transaction().execute(async (trx) => {
      const rows = await trx.selectFrom('org_keys').select(['name']).where('org_id', '=', org.id).execute();
      const prefix = `${this.opts.keyPrefix}-${org.name}-`;
      const next =
        Math.max(0, ...rows.map((r) => (r.name.startsWith(prefix) ? Number(r.name.slice(prefix.length)) || 0 : 0))) + 1;
      const key = generateSigningKey(`${prefix}${next}`);
      await trx
        .updateTable('org_keys')
        .set({ state: 'previous' })
        .where('org_id', '=', org.id)
        .where('state', '=', 'active')
        .execute();
      const row = {
        org_id: org.id,
        name: key.name,
        secret: formatSecretKey(key),
        public: formatPublicKey(key),
        state: 'active' as const,
        created_at: new Date().toISOString(),
        retired_at: null,
      };
      await trx.insertInto('org_keys').values(row).execute();
      return row;
    });
    await this.changed(org.id);
    return {
      name: created.name,
      publicKey: created.public,
      state: 'active',
      createdAt: created.created_at,
      retiredAt: null,
    };
  }

  /** Stops signing with (and publishing) a previous key. The active key cannot be retired: rotate first. */
  async retire(org: Org, name: string): Promise<void> {
    const row = await this.db
      .selectFrom('org_keys')
      .select(['state'])
      .where('org_id', '=', org.id)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw new NotFound();
    if (row.state === 'active')
      throw new InvalidInput(
        'key',
        `${name} is ${org.name}'s active key: rotate first ("floe keys rotate --org ${org.name}"), then retire it`,
      );
    if (row.state === 'retired') throw new Conflict(`${name} is already retired`);
    await this.db
      .updateTable('org_keys')
      .set({ state: 'retired', retired_at: new Date().toISOString() })
      .where('org_id', '=', org.id)
      .where('name', '=', name)
      .execute();
    await this.changed(org.id);
  }

  private async changed(orgId: string): Promise<void> {
    this.loaded.delete(orgId);
    await this.changes?.notify('keys', `org:${orgId}`).catch(() => undefined);
  }
}
