/**
 * Debug info index (`debuginfo/<build id>`, Nix's `index-debug-info=true`, read by dwarffs and
 * nixseparatedebuginfod): which NAR member holds the debug symbols of a build id. Nix uploads the
 * index before the NAR and names the archive by its own file name (`../nar/<FileHash>.nar.xz`);
 * Floe serves that NAR as `nar/<nar hash>.nar.zst`. So a row is stored per slice with the client's
 * file name, resolved to the NAR hash when a narinfo of that slice commits the NAR the slice
 * uploaded under that name (committing.ts), and served only then, only to callers who may read
 * that NAR through a path of the row's own slice (missing and denied alike otherwise). GC drops
 * a row once its slice holds no path with that NAR; unresolved rows expire like upload records.
 */
import type { AuditEvent } from '../audit/log.js';
import type { Principal } from '../identity/principal.js';
import type { Storage } from '../storage/types.js';
import type { Reading } from './reading.js';
import type { WriteTarget } from './uploading.js';
import type { CacheView } from './view.js';

export interface DebugInfoEntry {
  /** 40 hex digits. */
  buildId: string;
  /** The client's NAR file name (`<file>` of `../nar/<file>`). */
  archiveFile: string;
  member: string;
}

export interface DebugInfoDeps {
  storage: Storage;
  reading: Pick<Reading, 'readableNarInSlice'>;
  /** How long an index whose NAR was never committed is kept (the upload records' expiry). */
  expiryMs: number;
  audit?: { append(e: AuditEvent): void };
}

export class DebugInfoService {
  constructor(private readonly deps: DebugInfoDeps) {}

  /** `PUT debuginfo/<build id>`: kept in the write target, resolved now if its NAR is already committed there. */
  async put(p: Principal, target: WriteTarget, entry: DebugInfoEntry): Promise<void> {
    const db = this.deps.storage.db;
    const now = new Date();
    const committed = await db
      .selectFrom('nar_uploads')
      .innerJoin('paths', (j) =>
        j.onRef('paths.nar_hash', '=', 'nar_uploads.nar_hash').onRef('paths.slice_id', '=', 'nar_uploads.slice_id'),
      )
      .select('nar_uploads.nar_hash')
      .where('nar_uploads.slice_id', '=', target.slice.id)
      .where('nar_uploads.file_name', '=', entry.archiveFile)
      .executeTakeFirst();
    const row = {
      archive_file: entry.archiveFile,
      member: entry.member,
      nar_hash: committed?.nar_hash ?? null,
      expires_at: new Date(now.getTime() + this.deps.expiryMs).toISOString(),
      created_at: now.toISOString(),
    };
    // The latest upload for a build id wins in its slice (the same build id, rebuilt, is the same file).
    await db
      .insertInto('debuginfo')
      .values({ slice_id: target.slice.id, build_id: entry.buildId, ...row })
      .onConflict((oc) => oc.columns(['slice_id', 'build_id']).doUpdateSet(row))
      .execute();
    this.deps.audit?.append({
      principal: p,
      action: 'cache.write',
      target: `${target.org.name}/${target.slice.name}:debuginfo/${entry.buildId}`,
      orgId: target.org.id,
      detail: { member: entry.member },
    });
  }

  /** The index document for the caller, pointing at the NAR Floe serves, or undefined (missing and denied alike). */
  async find(p: Principal, view: CacheView, buildId: string): Promise<string | undefined> {
    let query = this.deps.storage.db
      .selectFrom('debuginfo')
      .select(['slice_id', 'nar_hash', 'member'])
      .where('build_id', '=', buildId)
      .where('nar_hash', 'is not', null);
    if (view.kind === 'slice') query = query.where('slice_id', '=', view.slice.slice.id);
    for (const row of await query.limit(64).execute()) {
      const narHash = row.nar_hash!;
      if (await this.deps.reading.readableNarInSlice(p, view, row.slice_id, narHash)) {
        return JSON.stringify({ archive: `../nar/${narHash}.nar.zst`, member: row.member });
      }
    }
    return undefined;
  }
}

/**
 * Inside a commit's transaction: the slice's index rows naming a file the slice uploaded with
 * this NAR now point at it.
 */
export async function resolveDebugInfo(trx: Storage['db'], sliceId: string, narHashNix32: string): Promise<void> {
  await trx
    .updateTable('debuginfo')
    .set({ nar_hash: narHashNix32 })
    .where('slice_id', '=', sliceId)
    .where('archive_file', 'in', (eb) =>
      eb
        .selectFrom('nar_uploads')
        .select('nar_uploads.file_name')
        .where('nar_uploads.slice_id', '=', sliceId)
        .where('nar_uploads.nar_hash', '=', narHashNix32),
    )
    .execute();
}
