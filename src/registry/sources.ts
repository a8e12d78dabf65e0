/**
 * Release source trees in the cache. Nix (2.8 as well as 2.26, Lix and Determinate Nix) tries to
 * substitute a locked tarball input before downloading it: the input's store path is
 * makeFixedOutputPath(recursive sha256 of the tree's NAR, "source"), asked for as
 * `<hash>.narinfo` on every configured substituter. So each release's tree is stored at publish
 * as a NAR (a `nars` row and `<nar hash>.nar.zst` blob, shared with pushed paths of the same
 * content) plus a `release_sources` row, and the unified /cache serves it to exactly the callers
 * who may read the flake (`flake.read`, the rule /f/ tarballs use), else the one miss. A source
 * lives while its release does (yanked ones too: their pinned tarball URLs keep working).
 */
import type { Logger } from '../log.js';
import type { Principal } from '../identity/principal.js';
import { contentAddressedPath } from '../nix/content-address.js';
import { type Hash, parseDigest } from '../nix/hash.js';
import { encodeNix32 } from '../nix/nix32.js';
import { type StorePathBase, type StorePathHash, hashPartOf } from '../nix/store-path.js';
import type { OrgKeyService } from '../org/keys.js';
import type { FlakeResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import type { ChangeFeed } from '../storage/changes.js';
import { prepareQuery } from '../storage/prepared.js';
import type { Db, Storage } from '../storage/types.js';
import { ingestNar } from '../cache/ingest.js';
import { ReadCache } from '../cache/read-cache.js';
import type { ReleaseSourceReads } from '../cache/reading.js';
import { renderNarInfo } from '../cache/render.js';
import { verifyFlakeTarball } from './tarball.js';

/** What a release's source row says (nix32 NAR hash, as in `nars`). */
export interface SourceNar {
  hashPart: StorePathHash;
  storePath: StorePathBase;
  narHash: string;
  narSize: number;
}

/** PURE: the store path Nix gives a locked tarball input with this NAR hash (name "source", no references). */
export function sourceStorePath(narHash: Hash): StorePathBase {
  return contentAddressedPath('source', { method: 'nar', hash: narHash }, [], false);
}

/** The chunks the verifier threads are handed (they keep at most a few MiB in flight). */
const CHUNK = 1 << 20;

/**
 * Stores a release's NAR as any uploaded NAR is stored (verified, hashed, zstd, one blob per
 * content). Called before the release row is written: the GC grace period covers the gap, as it
 * does for the tarball, and the start-up backfill repairs a source whose NAR went missing.
 */
export async function storeSourceNar(storage: Storage, nar: Buffer): Promise<SourceNar> {
  async function* chunks() {
    for (let at = 0; at < nar.length; at += CHUNK) yield nar.subarray(at, at + CHUNK);
  }
  const limits = { maxUploadBytes: nar.length, maxNarBytes: nar.length };
  const stored = await ingestNar(chunks(), 'none', storage, limits, undefined, nar.length, nar.length);
  const storePath = sourceStorePath(stored.narHash);
  return {
    hashPart: hashPartOf(storePath),
    storePath,
    narHash: encodeNix32(stored.narHash.digest),
    narSize: stored.narSize,
  };
}

export function sourceRow(releaseId: string, s: SourceNar) {
  return {
    release_id: releaseId,
    hash_part: s.hashPart,
    store_path: s.storePath,
    nar_hash: s.narHash,
    nar_size: s.narSize,
    created_at: new Date().toISOString(),
  };
}

const QUIET = { quiet: true };
/** How long a probe's answer is believed without a change notice (the notices make it sooner). */
const PROBE_MEMO_MS = 10_000;
const PROBE_MEMO_MAX = 100_000;

/** Tells every process that `hashParts` are now sources (their misses may be memoized there). */
export async function announceSources(storage: Storage, hashParts: readonly string[]): Promise<void> {
  if (hashParts.length) await storage.changes.notify('paths', hashParts.join(',')).catch(() => undefined);
}

interface SourceRowRead {
  store_path: string;
  nar_hash: string;
  nar_size: number;
  file_hash: string;
  file_size: number;
  flake_name: string;
  visibility: FlakeResource['flake']['visibility'];
  org_id: string;
  org_name: string;
}

function flakeOf(r: SourceRowRead): FlakeResource {
  return {
    type: 'flake',
    org: { id: r.org_id, name: r.org_name },
    flake: { name: r.flake_name, visibility: r.visibility },
  };
}

/** The /cache side: narinfos and NAR access for release sources, decided by `flake.read`. */
export class ReleaseSources implements ReleaseSourceReads {
  private readonly q;
  /**
   * The probe's answers by hash part: nearly every narinfo miss of the unified view asks, and a
   * query per miss was most of a miss's cost. "Not a source" is kept only while this process hears
   * every write before its writer answers (`changes.acknowledgedEpoch`, as the narinfo miss memo);
   * a publish or backfill notifies `paths` with the source's hash part, which drops it here at once.
   */
  private readonly probes: ReadCache<unknown[]>;

  constructor(
    db: Db,
    private readonly authorizer: Authorizer,
    private readonly keys: OrgKeyService,
    memo: { changes: ChangeFeed },
  ) {
    this.probes = new ReadCache(PROBE_MEMO_MS, PROBE_MEMO_MAX, () => memo.changes.acknowledgedEpoch());
    memo.changes.subscribe('paths', (payload) => {
      if (payload === '*') this.probes.clear();
      else for (const h of payload.split(',')) this.probes.invalidate(h);
    });
    // Only sources whose NAR is stored: a row waiting for the backfill is a miss.
    const rows = () =>
      db
        .selectFrom('release_sources')
        .innerJoin('releases', 'releases.id', 'release_sources.release_id')
        .innerJoin('flakes', 'flakes.id', 'releases.flake_id')
        .innerJoin('orgs', 'orgs.id', 'flakes.org_id')
        .innerJoin('nars', 'nars.nar_hash', 'release_sources.nar_hash')
        .select([
          'release_sources.store_path',
          'release_sources.nar_hash',
          'release_sources.nar_size',
          'nars.file_hash',
          'nars.file_size',
          'flakes.name as flake_name',
          'flakes.visibility',
          'orgs.id as org_id',
          'orgs.name as org_name',
        ]);
    // On every narinfo miss of the unified view: compiled once. Most misses are not sources: the
    // one-index probe answers them (the join costs several times more even when it finds nothing).
    this.q = {
      probe: prepareQuery(db, db.selectFrom('release_sources').select('release_id').where('hash_part', '=', '?')),
      byHash: prepareQuery(db, rows().where('release_sources.hash_part', '=', '?')),
      byNar: prepareQuery(db, rows().where('release_sources.nar_hash', '=', '?')),
    };
  }

  async narInfo(p: Principal, hashPart: StorePathHash) {
    if ((await this.probes.get(hashPart, '', () => this.q.probe(hashPart))).length === 0) return undefined;
    const row = this.readable(p, (await this.q.byHash(hashPart)) as SourceRowRead[]);
    if (!row) return undefined;
    const narHash = parseDigest('sha256', row.nar_hash);
    const narinfo = renderNarInfo(
      {
        storePath: row.store_path as StorePathBase,
        narHash,
        narSize: Number(row.nar_size),
        references: [],
        ca: `fixed:r:sha256:${row.nar_hash}`,
        sigs: [],
      },
      row,
      await this.keys.signing(row.org_id),
    );
    return { narinfo, orgId: row.org_id, storePath: row.store_path };
  }

  async readableNar(p: Principal, narHash: string) {
    const row = this.readable(p, (await this.q.byNar(narHash)) as SourceRowRead[]);
    return row && { orgId: row.org_id, storePath: row.store_path };
  }

  /** The first row whose flake the caller may read (its own org's first: signed with its keys). */
  private readable(p: Principal, rows: SourceRowRead[]): SourceRowRead | undefined {
    const own = p.kind === 'token' ? p.org.id : undefined;
    const ordered = [...rows].sort((a, b) => Number(b.org_id === own) - Number(a.org_id === own));
    const row = ordered.find((r) => this.authorizer.authorize(p, 'flake.read', flakeOf(r), {}, QUIET).allowed);
    if (!row && ordered[0]) this.authorizer.authorize(p, 'flake.read', flakeOf(ordered[0]), {});
    return row;
  }
}

/**
 * Gives releases published before sources were stored (or whose source NAR went missing) their
 * source, one release at a time from its stored tarball. Run by the leader after start; idempotent,
 * so a crash or a second run only continues. Returns how many sources it stored.
 */
export async function backfillReleaseSources(storage: Storage, log?: Logger): Promise<number> {
  const { db } = storage;
  const missing = await db
    .selectFrom('releases')
    .leftJoin('release_sources', 'release_sources.release_id', 'releases.id')
    .leftJoin('nars', 'nars.nar_hash', 'release_sources.nar_hash')
    .select(['releases.id', 'releases.nar_hash', 'releases.tarball_key'])
    .where('nars.nar_hash', 'is', null)
    .execute();
  let stored = 0;
  // Releases sharing a tarball (the same tree published again) share its source.
  const byTarball = new Map<string, SourceNar>();
  for (const r of missing) {
    try {
      const known = byTarball.get(r.tarball_key);
      if (known) {
        await db
          .insertInto('release_sources')
          .values(sourceRow(r.id, known))
          .onConflict((oc) => oc.column('release_id').doNothing())
          .execute();
        await announceSources(storage, [known.hashPart]);
        continue;
      }
      const read = await storage.blobs.get(r.tarball_key);
      if (!read) {
        log?.warn({ release: r.id, tarball: r.tarball_key }, 'release source: the tarball is missing');
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const c of read.body) chunks.push(c as Buffer);
      const verified = await verifyFlakeTarball(Buffer.concat(chunks));
      if (verified.narHash !== r.nar_hash) {
        log?.warn({ release: r.id }, 'release source: the tarball no longer hashes to the release narHash');
        continue;
      }
      const source = await storeSourceNar(storage, verified.nar);
      byTarball.set(r.tarball_key, source);
      await db
        .insertInto('release_sources')
        .values(sourceRow(r.id, source))
        .onConflict((oc) => oc.column('release_id').doNothing())
        .execute();
      await announceSources(storage, [source.hashPart]);
      stored++;
    } catch (err) {
      log?.warn({ err, release: r.id }, 'release source: backfill failed');
    }
  }
  if (stored) log?.info({ stored }, 'release sources stored for earlier releases');
  return stored;
}
