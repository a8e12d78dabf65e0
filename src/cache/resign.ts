/**
 * Re-renders every narinfo of an org with its current signing keys (after a rotation, a key
 * retirement or the upgrade to per-org keys), in batches of 500 with a turn of the event loop in
 * between, so reads keep flowing while a large org is re-signed.
 */
import type { SigningKey } from '../nix/signing.js';
import type { Storage } from '../storage/types.js';
import { renderNarInfo, renderableRow } from './render.js';

export async function resignOrg(
  db: Storage['db'],
  orgId: string,
  keys: SigningKey[],
  changed: (hashParts: string[]) => void,
  onProgress?: (done: number) => void,
): Promise<number> {
  const slices = await db.selectFrom('slices').select('id').where('org_id', '=', orgId).execute();
  let done = 0;
  for (const slice of slices) {
    let after = '';
    for (;;) {
      const rows = await db
        .selectFrom('paths')
        .innerJoin('nars', 'nars.nar_hash', 'paths.nar_hash')
        .select([
          'paths.hash_part',
          'paths.store_path',
          'paths.nar_hash',
          'paths.nar_size',
          'paths.refs',
          'paths.deriver',
          'paths.ca',
          'paths.sigs',
          'paths.extra_fields',
          'nars.file_hash',
          'nars.file_size',
        ])
        .where('paths.slice_id', '=', slice.id)
        .where('paths.hash_part', '>', after)
        .orderBy('paths.hash_part')
        .limit(500)
        .execute();
      if (rows.length === 0) break;
      await db.transaction().execute(async (trx) => {
        for (const row of rows) {
          await trx
            .updateTable('paths')
            .set({ narinfo: renderNarInfo(renderableRow(row), row, keys) })
            .where('slice_id', '=', slice.id)
            .where('hash_part', '=', row.hash_part)
            .execute();
        }
      });
      changed(rows.map((r) => r.hash_part));
      done += rows.length;
      onProgress?.(done);
      after = rows.at(-1)!.hash_part;
      await new Promise((r) => setImmediate(r));
    }
  }
  return done;
}
