/** Slices holding a store path, as the authorizer sees them (shared by reads and links). */
import type { StorePathBase } from '../nix/store-path.js';
import { hashPartOf } from '../nix/store-path.js';
import type { SliceResource } from '../policy/actions.js';
import type { Storage } from '../storage/types.js';

/** A slice holding a path, with what authorization needs. */
export interface Candidate {
  slice_id: string;
  slice_name: string;
  public: number;
  org_id: string;
  org_name: string;
}

export function resourceOf(row: Candidate): SliceResource {
  return {
    type: 'slice',
    org: { id: row.org_id, name: row.org_name },
    slice: { id: row.slice_id, name: row.slice_name, public: row.public === 1 },
  };
}

/** The candidate columns of a query over `paths` joined to its slice and org. */
export function candidateQuery(db: Storage['db']) {
  return db
    .selectFrom('paths')
    .innerJoin('slices', 'slices.id', 'paths.slice_id')
    .innerJoin('orgs', 'orgs.id', 'slices.org_id')
    .select([
      'slices.id as slice_id',
      'slices.name as slice_name',
      'slices.public',
      'orgs.id as org_id',
      'orgs.name as org_name',
    ]);
}

/** Every slice holding exactly this store path, as authorization candidates. */
export function slicesHolding(db: Storage['db'], path: StorePathBase): Promise<Candidate[]> {
  return candidateQuery(db)
    .where('paths.hash_part', '=', hashPartOf(path))
    .where('paths.store_path', '=', path)
    .execute();
}
