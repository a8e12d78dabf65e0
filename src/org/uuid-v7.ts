/**
 * Stable UUIDv7 names for orgs and projects, as FlakeHub's clients expect them
 * (magic-nix-cache's cache name is `<organization_uuid_v7>:<project_uuid_v7>`). Floe's own ids are
 * UUIDv4; a v7 is derived from the row's creation time and a hash of its id, so every replica
 * computes the same one, and `peer_ids` stores it for the reverse lookup.
 */
import { createHash } from 'node:crypto';
import type { Db } from '../storage/types.js';

/** PURE: a UUIDv7 whose time is `ms` and whose random bits come from `seed` (deterministic). */
export function derivedUuidV7(ms: number, seed: string): string {
  const b = createHash('sha256').update(`floe-uuid-v7\0${seed}`).digest().subarray(0, 16);
  const t = BigInt(Math.max(0, Math.floor(ms)));
  for (let i = 0; i < 6; i++) b[i] = Number((t >> BigInt(8 * (5 - i))) & 0xffn);
  b[6] = (b[6]! & 0x0f) | 0x70;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class PeerIds {
  constructor(private readonly db: Db) {}

  /** The org's UUIDv7, recorded for `orgByUuid` (the same on every replica, so a race inserts once). */
  async orgUuid(org: { id: string; createdAt: string }): Promise<string> {
    const uuid = derivedUuidV7(Date.parse(org.createdAt), `org:${org.id}`);
    const row = await this.db
      .selectFrom('peer_ids')
      .select('uuid')
      .where('kind', '=', 'org')
      .where('local_id', '=', org.id)
      .executeTakeFirst();
    if (!row) {
      await this.db
        .insertInto('peer_ids')
        .values({ kind: 'org', local_id: org.id, uuid })
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
    return uuid;
  }

  /** A project's UUIDv7: derived from its org and name (a project need not be published yet). */
  projectUuid(org: { id: string; createdAt: string }, project: string): string {
    return derivedUuidV7(Date.parse(org.createdAt), `project:${org.id}/${project}`);
  }

  /** The name of the org an org UUIDv7 names, if it was handed out. */
  async orgNameByUuid(uuid: string): Promise<string | undefined> {
    const row = await this.db
      .selectFrom('peer_ids')
      .innerJoin('orgs', 'orgs.id', 'peer_ids.local_id')
      .select('orgs.name')
      .where('peer_ids.kind', '=', 'org')
      .where('peer_ids.uuid', '=', uuid)
      .executeTakeFirst();
    return row?.name;
  }
}
