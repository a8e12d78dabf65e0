/**
 * Garbage collection: mark from the roots, sweep the rest, safely while uploads go on.
 *
 * Roots: release outputs (store paths in a release's outputs inventory, in every slice of the
 * flake's org), unexpired pins (same), and every path pushed within its org's retention window
 * (all of them when the org has no retention set). Everything reachable from a root through
 * references, within its slice, stays. Nothing younger than the grace period is ever removed.
 *
 * Safety: the first mark runs without locks (and is all a dry run does). Deletion happens in a
 * transaction holding the GC lock exclusively (storage/locks.ts), which every commit and every NAR
 * ingest holds shared: inside it the mark is computed again over what is committed by then and only
 * paths that both marks condemn are deleted, so a path that an upload just referenced stays.
 * NAR rows and blobs go only when no path row and no unexpired upload record needs them and no
 * upload touched them within the grace period (re-checked under the lock too); blobs no row knows
 * (crash leftovers, expired tarball uploads) go once older than the grace period.
 * Over 350 lines: mark, sweep and the expiries are one pass under one lock; the pure plans are
 * reachability.ts.
 */
import type { GcReport } from '../wire/gc.js';
import type { Logger } from '../log.js';
import type { Db, Storage } from '../storage/types.js';
import { lockExclusiveForGc } from '../storage/locks.js';
import { narBlobKey } from './ingest.js';
import { type GcPath, type GcPolicy, pathKey, planNars, planOrphans, planPaths, storePathsIn } from './reachability.js';

export interface GcOptions {
  dryRun?: boolean;
  graceMs: number;
}

interface Graph {
  paths: Array<GcPath & { storePath: string; narSize: number; sliceName: string; orgName: string }>;
  roots: Set<string>;
  policy: GcPolicy;
}

/** Rows of the mark read per query: each batch is a short synchronous step on SQLite. */
const MARK_BATCH = 2000;
const yieldToRequests = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Every path row, in batches ordered by the primary key with a turn of the event loop between
 * them: one query over 100k rows would hold embedded SQLite (synchronous) for over a second.
 * Inside the exclusive transaction other queries wait for it either way, but requests that need no
 * database (health checks, NAR bytes already streaming) still get their turn.
 */
async function loadPathRows(db: Db): Promise<Graph['paths']> {
  const rows: Graph['paths'] = [];
  // Per slice, by the primary key (slice_id, hash_part): each batch is an index range, not a scan.
  for (const slice of await db.selectFrom('slices').select('id').orderBy('id').execute()) {
    let after = '';
    for (;;) {
      const batch = await db
        .selectFrom('paths')
        .innerJoin('slices', 'slices.id', 'paths.slice_id')
        .innerJoin('orgs', 'orgs.id', 'slices.org_id')
        .select([
          'paths.slice_id',
          'paths.hash_part',
          'paths.store_path',
          'paths.refs',
          'paths.created_at',
          'paths.nar_hash',
          'paths.nar_size',
          'slices.org_id',
          'slices.name as slice_name',
          'orgs.name as org_name',
        ])
        .where('paths.slice_id', '=', slice.id)
        .where('paths.hash_part', '>', after)
        .orderBy('paths.hash_part')
        .limit(MARK_BATCH)
        .execute();
      // Converted batch by batch, so this work is spread over the turns too.
      for (const r of batch) {
        rows.push({
          slice: r.slice_id,
          org: r.org_id,
          hash: r.hash_part,
          refs: r.refs === '' ? [] : r.refs.split(' ').map((x) => x.slice(0, 32)),
          createdAt: Date.parse(r.created_at),
          narHash: r.nar_hash,
          storePath: r.store_path,
          narSize: Number(r.nar_size),
          sliceName: r.slice_name,
          orgName: r.org_name,
        });
      }
      await yieldToRequests();
      if (batch.length < MARK_BATCH) break;
      after = batch.at(-1)!.hash_part;
    }
  }
  return rows;
}

async function loadGraph(db: Db, now: number, graceMs: number): Promise<Graph> {
  const nowIso = new Date(now).toISOString();
  const paths = await loadPathRows(db);
  const slicesByOrg = new Map<string, string[]>();
  for (const s of await db.selectFrom('slices').select(['id', 'org_id']).execute()) {
    slicesByOrg.set(s.org_id, [...(slicesByOrg.get(s.org_id) ?? []), s.id]);
  }
  const roots = new Set<string>();
  const rootInOrg = (org: string, hash: string) => {
    for (const slice of slicesByOrg.get(org) ?? []) roots.add(pathKey(slice, hash));
  };
  const pins = await db
    .selectFrom('pins')
    .select(['org_id', 'hash_part'])
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', nowIso)]))
    .execute();
  for (const pin of pins) rootInOrg(pin.org_id, pin.hash_part);
  const releases = await db
    .selectFrom('releases')
    .innerJoin('flakes', 'flakes.id', 'releases.flake_id')
    .select(['flakes.org_id', 'releases.metadata'])
    .execute();
  for (const r of releases) {
    let meta: unknown;
    try {
      meta = JSON.parse(r.metadata);
    } catch {
      continue;
    }
    for (const base of storePathsIn(meta)) rootInOrg(r.org_id, base.slice(0, 32));
  }
  const retentionMs = new Map<string, number | null>();
  for (const s of await db.selectFrom('org_settings').select(['org_id', 'retention_seconds']).execute()) {
    retentionMs.set(s.org_id, s.retention_seconds == null ? null : Number(s.retention_seconds) * 1000);
  }
  return { paths, roots, policy: { now, graceMs, retentionMs } };
}

const chunks = <T>(items: readonly T[], n: number): T[][] =>
  Array.from({ length: Math.ceil(items.length / n) }, (_, i) => items.slice(i * n, (i + 1) * n));

export class GarbageCollector {
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly storage: Storage,
    /** Told which hash parts were deleted, to drop memoized narinfo lookups. */
    private readonly onDeleted: (hashParts: string[]) => void,
    private readonly log?: Logger,
    /** Told once per run how it went and how many stored bytes it freed (metrics). */
    private readonly onRun?: (result: 'ok' | 'failed', deletedBytes: number) => void,
  ) {}

  /** One run (or upload sweep) at a time per process: one asked for while another goes waits for it. */
  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const next = (this.running ?? Promise.resolve()).catch(() => undefined).then(work);
    this.running = next;
    void next
      .finally(() => {
        if (this.running === next) this.running = undefined;
      })
      .catch(() => undefined);
    return next;
  }

  /**
   * The uploads part of a run alone, cheap enough to run often even when scheduled GC is off:
   * expired upload records go, then NARs that no path and no unexpired upload needs and nothing
   * touched within the grace period (uploaded without a narinfo, refused at commit) lose their row
   * and blob, with the same lock and re-checks as a full run. Paths are never touched.
   */
  sweepUploads(opts: {
    graceMs: number;
  }): Promise<{ expired: GcReport['expired']; nars: number; storedBytes: number }> {
    return this.serialized(async () => {
      const { db } = this.storage;
      const graceMs = Math.max(0, opts.graceMs);
      const expired = await this.expireRecords();
      const cutoff = new Date(Date.now() - graceMs).toISOString();
      let nars = 0;
      let storedBytes = 0;
      let after = '';
      for (;;) {
        const iso = new Date().toISOString();
        const candidates = await db
          .selectFrom('nars')
          .select(['nar_hash', 'file_size'])
          .where('nar_hash', '>', after)
          .where('created_at', '<=', cutoff)
          .where((eb) => eb.or([eb('touched_at', 'is', null), eb('touched_at', '<=', cutoff)]))
          .where((eb) =>
            eb.not(
              eb.exists(
                eb.selectFrom('paths').select('paths.nar_hash').whereRef('paths.nar_hash', '=', 'nars.nar_hash'),
              ),
            ),
          )
          .where((eb) =>
            eb.not(
              eb.exists(
                eb
                  .selectFrom('release_sources')
                  .select('release_sources.nar_hash')
                  .whereRef('release_sources.nar_hash', '=', 'nars.nar_hash'),
              ),
            ),
          )
          .where((eb) =>
            eb.not(
              eb.exists(
                eb
                  .selectFrom('nar_uploads')
                  .select('nar_uploads.nar_hash')
                  .whereRef('nar_uploads.nar_hash', '=', 'nars.nar_hash')
                  .where('nar_uploads.expires_at', '>', iso),
              ),
            ),
          )
          .orderBy('nar_hash')
          .limit(500)
          .execute();
        if (candidates.length === 0) break;
        const size = new Map(candidates.map((c) => [c.nar_hash, Number(c.file_size)]));
        const gone = await this.deleteNars(
          candidates.map((c) => c.nar_hash),
          graceMs,
        );
        nars += gone.length;
        storedBytes += gone.reduce((n, h) => n + (size.get(h) ?? 0), 0);
        after = candidates.at(-1)!.nar_hash;
        await yieldToRequests();
      }
      if (nars > 0 || expired.narUploads > 0)
        this.log?.info({ expired, nars, storedBytes }, 'uncommitted uploads swept');
      return { expired, nars, storedBytes };
    });
  }

  /** Expired upload records and pins (their rows protect nothing any more). */
  private async expireRecords(): Promise<GcReport['expired']> {
    const { db } = this.storage;
    const iso = new Date().toISOString();
    // Debug info entries whose NAR never got a narinfo in their slice.
    await db.deleteFrom('debuginfo').where('nar_hash', 'is', null).where('expires_at', '<=', iso).execute();
    return {
      narUploads: Number(
        (await db.deleteFrom('nar_uploads').where('expires_at', '<=', iso).executeTakeFirst()).numDeletedRows,
      ),
      releaseUploads: Number(
        (await db.deleteFrom('release_uploads').where('expires_at', '<=', iso).executeTakeFirst()).numDeletedRows,
      ),
      pins: Number(
        (
          await db
            .deleteFrom('pins')
            .where('expires_at', 'is not', null)
            .where('expires_at', '<=', iso)
            .executeTakeFirst()
        ).numDeletedRows,
      ),
    };
  }

  /**
   * Deletes the rows and blobs of those of `hashes` that, re-checked under the exclusive lock, no
   * path and no unexpired upload needs and nothing used within the grace period. Returns them.
   */
  private async deleteNars(hashes: string[], graceMs: number): Promise<string[]> {
    const { db, blobs, dialect } = this.storage;
    const lastUsed = (r: { created_at: string; touched_at?: string | null | undefined }) =>
      Math.max(Date.parse(r.created_at), r.touched_at ? Date.parse(r.touched_at) : 0);
    const deleted: string[] = [];
    for (const batch of chunks(hashes, 100)) {
      const gone = await db.transaction().execute(async (trx) => {
        await lockExclusiveForGc(trx, dialect);
        const now = Date.now();
        const stillNeeded = new Set<string>();
        for (const r of await trx.selectFrom('paths').select('nar_hash').where('nar_hash', 'in', batch).execute())
          stillNeeded.add(r.nar_hash);
        // A release's source lives while the release does.
        for (const r of await trx
          .selectFrom('release_sources')
          .select('nar_hash')
          .where('nar_hash', 'in', batch)
          .execute())
          stillNeeded.add(r.nar_hash);
        for (const r of await trx
          .selectFrom('nar_uploads')
          .select('nar_hash')
          .where('nar_hash', 'in', batch)
          .where('expires_at', '>', new Date(now).toISOString())
          .execute())
          stillNeeded.add(r.nar_hash);
        const rows = await trx
          .selectFrom('nars')
          .select(['nar_hash', 'created_at', 'touched_at'])
          .where('nar_hash', 'in', batch)
          .execute();
        const doomed = planNars(
          rows.map((r) => ({ narHash: r.nar_hash, lastUsed: lastUsed(r) })),
          stillNeeded,
          { now, graceMs },
        ).map((n) => n.narHash);
        if (doomed.length === 0) return [];
        await trx.deleteFrom('nar_uploads').where('nar_hash', 'in', doomed).execute();
        await trx.deleteFrom('nars').where('nar_hash', 'in', doomed).execute();
        // Blobs go while the lock is held: an ingest of the same content waits, then finds no row
        // and no blob, and stores its own copy.
        for (const h of doomed) await blobs.delete(narBlobKey(h));
        return doomed;
      });
      deleted.push(...gone);
    }
    return deleted;
  }

  /** One run at a time per process: a run asked for while another goes waits for it. */
  run(opts: GcOptions): Promise<GcReport> {
    return this.serialized(() => this.collect(opts)).then(
      (report) => {
        if (!report.dryRun) this.onRun?.('ok', report.nars.storedBytes + report.orphanBlobs.bytes);
        return report;
      },
      (err: unknown) => {
        this.onRun?.('failed', 0);
        throw err;
      },
    );
  }

  private async collect(opts: GcOptions): Promise<GcReport> {
    const started = Date.now();
    const { db, blobs, dialect } = this.storage;
    const dryRun = Boolean(opts.dryRun);
    const graceMs = Math.max(0, opts.graceMs);
    const report: GcReport = {
      dryRun,
      graceSeconds: graceMs / 1000,
      durationMs: 0,
      roots: 0,
      paths: { total: 0, kept: 0, collected: 0, logicalBytes: 0 },
      nars: { collected: 0, storedBytes: 0 },
      orphanBlobs: { collected: 0, bytes: 0 },
      expired: { narUploads: 0, releaseUploads: 0, pins: 0 },
      sample: [],
    };
    const nowIso = () => new Date().toISOString();

    // 0. Expired upload records and pins (their rows protect nothing any more).
    if (!dryRun) report.expired = await this.expireRecords();

    // 1. Mark (no locks).
    const graph = await loadGraph(db, Date.now(), graceMs);
    const plan = planPaths(graph.paths, graph.roots, graph.policy);
    report.roots = plan.roots;
    report.paths.total = graph.paths.length;
    let condemned = plan.collect as Graph['paths'];

    // 2. Sweep paths: mark again under the exclusive lock, delete what both marks condemn.
    if (!dryRun && condemned.length > 0) {
      const first = new Set(condemned.map((p) => pathKey(p.slice, p.hash)));
      condemned = await db.transaction().execute(async (trx) => {
        await lockExclusiveForGc(trx, dialect);
        const again = await loadGraph(trx, Date.now(), graceMs);
        const replan = planPaths(again.paths, again.roots, again.policy);
        const doomed = (replan.collect as Graph['paths']).filter((p) => first.has(pathKey(p.slice, p.hash)));
        const bySlice = new Map<string, typeof doomed>();
        for (const p of doomed) bySlice.set(p.slice, [...(bySlice.get(p.slice) ?? []), p]);
        for (const [slice, paths] of bySlice) {
          for (const batch of chunks(paths, 500)) {
            await trx
              .deleteFrom('paths')
              .where('slice_id', '=', slice)
              .where(
                'hash_part',
                'in',
                batch.map((p) => p.hash),
              )
              .execute();
            // A realisation lives while its output path does in that slice.
            await trx
              .deleteFrom('realisations')
              .where('slice_id', '=', slice)
              .where(
                'out_path',
                'in',
                batch.map((p) => p.storePath),
              )
              .execute();
          }
          // A build log lives while an output of its derivation does in that slice.
          await trx
            .deleteFrom('build_logs')
            .where('slice_id', '=', slice)
            .where('drv', 'not in', (eb) =>
              eb
                .selectFrom('paths')
                .select('paths.deriver')
                .where('paths.slice_id', '=', slice)
                .where('paths.deriver', 'is not', null)
                .$narrowType<{ deriver: string }>(),
            )
            .execute();
          // A debug info entry lives while a path of its NAR does in that slice.
          await trx
            .deleteFrom('debuginfo')
            .where('slice_id', '=', slice)
            .where('nar_hash', 'is not', null)
            .where('nar_hash', 'not in', (eb) =>
              eb.selectFrom('paths').select('paths.nar_hash').where('paths.slice_id', '=', slice),
            )
            .execute();
        }
        return doomed;
      });
      this.onDeleted([...new Set(condemned.map((p) => p.hash))]);
    }
    report.paths.collected = condemned.length;
    report.paths.kept = report.paths.total - condemned.length;
    report.paths.logicalBytes = condemned.reduce((n, p) => n + p.narSize, 0);
    report.sample = condemned.slice(0, 100).map((p) => `${p.orgName}/${p.sliceName} /nix/store/${p.storePath}`);

    // 3. NARs no row needs.
    const condemnedKeys = new Set(condemned.map((p) => pathKey(p.slice, p.hash)));
    const needed = new Set<string>();
    for (const p of graph.paths) if (!condemnedKeys.has(pathKey(p.slice, p.hash))) needed.add(p.narHash);
    if (!dryRun) {
      // Paths committed since the first mark count too.
      for (const r of await db.selectFrom('paths').select('nar_hash').distinct().execute()) needed.add(r.nar_hash);
    }
    for (const r of await db.selectFrom('release_sources').select('nar_hash').execute()) needed.add(r.nar_hash);
    const iso = nowIso();
    for (const u of await db.selectFrom('nar_uploads').select('nar_hash').where('expires_at', '>', iso).execute())
      needed.add(u.nar_hash);
    const narRows = await db.selectFrom('nars').select(['nar_hash', 'file_size', 'created_at', 'touched_at']).execute();
    const lastUsed = (r: { created_at: string; touched_at?: string | null | undefined }) =>
      Math.max(Date.parse(r.created_at), r.touched_at ? Date.parse(r.touched_at) : 0);
    const sizeOf = new Map(narRows.map((r) => [r.nar_hash, Number(r.file_size)]));
    let narPlan = planNars(
      narRows.map((r) => ({ narHash: r.nar_hash, lastUsed: lastUsed(r) })),
      needed,
      { now: Date.now(), graceMs },
    );
    if (!dryRun) {
      const deleted = await this.deleteNars(
        narPlan.map((n) => n.narHash),
        graceMs,
      );
      narPlan = deleted.map((narHash) => ({ narHash, lastUsed: 0 }));
    }
    report.nars.collected = narPlan.length;
    report.nars.storedBytes = narPlan.reduce((n, x) => n + (sizeOf.get(x.narHash) ?? 0), 0);

    // 4. Orphan blobs: in the store, unknown to every table.
    // Every NAR row's blob is known (in a dry run, those GC would delete are counted above already).
    const known = new Set<string>(narRows.map((r) => narBlobKey(r.nar_hash)));
    for (const r of await db.selectFrom('nars').select('nar_hash').execute()) known.add(narBlobKey(r.nar_hash));
    for (const r of await db.selectFrom('releases').select('tarball_key').execute()) known.add(r.tarball_key);
    for (const r of await db.selectFrom('build_logs').select('blob_key').distinct().execute()) known.add(r.blob_key);
    for (const r of await db
      .selectFrom('release_uploads')
      .select('tarball_key')
      .where('tarball_key', 'is not', null)
      .execute())
      known.add(r.tarball_key!);
    const listed = [];
    for await (const b of blobs.list()) listed.push(b);
    const sizes = new Map(listed.map((b) => [b.key, b.size]));
    let orphans = planOrphans(listed, known, { now: Date.now(), graceMs });
    if (!dryRun) {
      const deleted: string[] = [];
      for (const batch of chunks(
        orphans.map((o) => o.key),
        100,
      )) {
        const gone = await db.transaction().execute(async (trx) => {
          await lockExclusiveForGc(trx, dialect);
          const narKeys = batch.filter((k) => k.endsWith('.nar.zst'));
          const stillKnown = new Set<string>();
          if (narKeys.length > 0) {
            for (const r of await trx
              .selectFrom('nars')
              .select('nar_hash')
              .where(
                'nar_hash',
                'in',
                narKeys.map((k) => k.slice(0, -'.nar.zst'.length)),
              )
              .execute())
              stillKnown.add(narBlobKey(r.nar_hash));
          }
          for (const r of await trx
            .selectFrom('releases')
            .select('tarball_key')
            .where('tarball_key', 'in', batch)
            .execute())
            stillKnown.add(r.tarball_key);
          for (const r of await trx
            .selectFrom('build_logs')
            .select('blob_key')
            .where('blob_key', 'in', batch)
            .execute())
            stillKnown.add(r.blob_key);
          for (const r of await trx
            .selectFrom('release_uploads')
            .select('tarball_key')
            .where('tarball_key', 'in', batch)
            .execute())
            if (r.tarball_key) stillKnown.add(r.tarball_key);
          const doomed = batch.filter((k) => !stillKnown.has(k));
          for (const k of doomed) await blobs.delete(k);
          return doomed;
        });
        deleted.push(...gone);
      }
      orphans = deleted.map((key) => ({ key, modifiedAt: 0 }));
    }
    report.orphanBlobs.collected = orphans.length;
    report.orphanBlobs.bytes = orphans.reduce((n, o) => n + (sizes.get(o.key) ?? 0), 0);
    report.durationMs = Date.now() - started;
    this.log?.info({ gc: { ...report, sample: undefined } }, dryRun ? 'gc dry run' : 'gc done');
    return report;
  }
}
