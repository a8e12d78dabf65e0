/**
 * The Nix signing keys an org trusts (its CI's keys). A narinfo signature counts for policies
 * ("writes require a signed narinfo": `context.narinfoSignatures`) only if it verifies against
 * one of them; a signature merely naming a trusted key proves nothing.
 */
import { Conflict, InvalidInput, NotFound } from '../errors.js';
import type { StorePathBase } from '../nix/store-path.js';
import type { Hash } from '../nix/hash.js';
import { isUniqueViolation, type Org } from '../org/service.js';
import type { Db } from '../storage/types.js';
import { type TrustedKey, parseTrustedKey } from './upstream-verify.js';
import { verifiedSignerNames } from './link-policy.js';

export interface Signer {
  name: string;
  publicKey: string;
  addedBy: string;
  createdAt: string;
}

const MAX_SIGNERS = 50;

export class SignerService {
  constructor(private readonly db: Db) {}

  async list(org: Org): Promise<Signer[]> {
    const rows = await this.db
      .selectFrom('org_signers')
      .selectAll()
      .where('org_id', '=', org.id)
      .orderBy('name')
      .execute();
    return rows.map((r) => ({ name: r.name, publicKey: r.public_key, addedBy: r.added_by, createdAt: r.created_at }));
  }

  async add(org: Org, publicKey: string, addedBy: string): Promise<Signer> {
    const key = parseTrustedKey(publicKey);
    if ((await this.list(org)).length >= MAX_SIGNERS)
      throw new InvalidInput('public key', `an org trusts at most ${MAX_SIGNERS} signing keys`);
    const row = {
      org_id: org.id,
      name: key.name,
      public_key: publicKey.trim(),
      added_by: addedBy,
      created_at: new Date().toISOString(),
    };
    try {
      await this.db.insertInto('org_signers').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err))
        throw new Conflict(
          `${org.name} already trusts a key named ${JSON.stringify(key.name)}; remove it first to replace it`,
        );
      throw err;
    }
    return { name: row.name, publicKey: row.public_key, addedBy, createdAt: row.created_at };
  }

  async remove(org: Org, name: string): Promise<void> {
    const res = await this.db
      .deleteFrom('org_signers')
      .where('org_id', '=', org.id)
      .where('name', '=', name)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new NotFound();
  }

  /** The org's trusted keys, parsed. */
  async trustedKeys(orgId: string): Promise<TrustedKey[]> {
    const rows = await this.db.selectFrom('org_signers').select('public_key').where('org_id', '=', orgId).execute();
    return rows.map((r) => parseTrustedKey(r.public_key));
  }

  /** Names of the org's trusted keys whose signature on this path verifies. */
  async verifiedSigners(
    orgId: string,
    path: { storePath: StorePathBase; narHash: Hash; narSize: number; references: readonly StorePathBase[] },
    sigs: readonly string[],
  ): Promise<string[]> {
    if (sigs.length === 0) return [];
    return verifiedSignerNames({ ...path, sigs }, await this.trustedKeys(orgId));
  }
}
