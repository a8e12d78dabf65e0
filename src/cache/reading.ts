/**
 * Reading: narinfos and NARs for the caller's view. Every answer is `undefined` for both
 * "missing" and "not allowed", so no caller above this layer can leak the difference. The first
 * slice in view order that the authorizer lets the caller read wins (view.ts), so the same store
 * path with different content is decided by configuration, never by upload order.
 */
import type { Principal } from '../identity/principal.js';
import type { StorePathHash } from '../nix/store-path.js';
import type { RequestFacts, SliceResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import { prepareQuery } from '../storage/prepared.js';
import type { BlobRead, Storage } from '../storage/types.js';
import { type Candidate, candidateQuery, resourceOf } from './candidates.js';
import { narBlobKey } from './ingest.js';
import type { CacheView } from './view.js';
import { ReadCache } from './read-cache.js';
import type { SourceService } from './sources.js';
import { inViewOrder } from './view.js';

/** Which paths a deploy-only token may read (see registry/deploy.ts). */
export interface DeployClosures {
  closureOf(p: Principal, wanted?: string): Promise<ReadonlySet<string> | undefined>;
}

/** What reads tell the audit trail: one read per served narinfo or NAR, for the per-day summary. */
export interface ReadAudit {
  recordRead(p: Principal, orgId: string, storePath: string, kind: 'narinfo' | 'nar', bytes?: number): void;
}

/**
 * Release source trees (registry/sources.ts): `<hash>-source` paths of published releases, served
 * on the unified view to callers who may read the flake; undefined for missing and denied alike.
 */
export interface ReleaseSourceReads {
  narInfo(
    p: Principal,
    hashPart: StorePathHash,
  ): Promise<{ narinfo: string; orgId: string; storePath: string } | undefined>;
  readableNar(p: Principal, narHashNix32: string): Promise<{ orgId: string; storePath: string } | undefined>;
}

export interface ServingSlice {
  sliceId: string;
  /** Its place in the caller's view (0 first). */
  rank: number;
}

export interface ReadableNar {
  narHash: string;
  orgId: string;
  storePath: string;
}

export interface FoundNar {
  size: number;
  open(range?: { start: number; end: number }): Promise<BlobRead | undefined>;
  /** A direct download URL, when the blob store offers presigned URLs. */
  redirectUrl(): Promise<string | undefined>;
}

export interface ReadingDeps {
  storage: Storage;
  authorizer: Authorizer;
  sources: SourceService;
  audit: ReadAudit;
  deploy?: DeployClosures | undefined;
  releaseSources?: ReleaseSourceReads | undefined;
}

const NO_FACTS: RequestFacts = {};
/** Candidates are probed quietly: one request records at most one denial (the first candidate's). */
const QUIET = { quiet: true };
const SERVED_NAR = /^([0-9a-df-np-sv-z]{52})\.nar\.zst$/;

export class Reading {
  private readonly q;
  private readonly narinfoCache: ReadCache<Array<Candidate & { narinfo: string; store_path: string }>>;

  constructor(private readonly deps: ReadingDeps) {
    const { storage } = deps;
    const candidates = () => candidateQuery(storage.db);
    // Misses are memoized while the change feed says every writer waits for this process's
    // acknowledgement (embedded workers; PostgreSQL replicas whose feed is connected): a path
    // pushed through any of them is a hit here by the time its push answers. docs/ARCHITECTURE.md,
    // "Replicas share only PostgreSQL and S3".
    this.narinfoCache = new ReadCache(2_000, 50_000, () => storage.changes.acknowledgedEpoch());
    // The read path runs on every substitution: these are compiled once.
    const narinfo = () => candidates().select(['paths.narinfo', 'paths.store_path']).where('paths.hash_part', '=', '?');
    const byNarHash = () =>
      candidates().select(['paths.hash_part', 'paths.store_path']).where('paths.nar_hash', '=', '?');
    this.q = {
      narinfoByHash: prepareQuery(storage.db, narinfo()),
      narinfoByHashInSlice: prepareQuery(storage.db, narinfo().where('paths.slice_id', '=', '?')),
      byNarHash: prepareQuery(storage.db, byNarHash()),
      byNarHashInSlice: prepareQuery(storage.db, byNarHash().where('paths.slice_id', '=', '?')),
    };
  }

  /** The narinfo this caller is served for `hashPart` in `view` (pull-through is the caller's next step). */
  async findNarInfo(p: Principal, view: CacheView, hashPart: StorePathHash): Promise<string | undefined> {
    const found = await this.servedRow(p, view, hashPart);
    if (found) {
      this.deps.audit.recordRead(p, found.row.org_id, found.row.store_path, 'narinfo');
      return found.row.narinfo;
    }
    // Slice URLs hold only their slice's paths; release sources are on the unified view.
    const source = view.kind === 'unified' ? await this.deps.releaseSources?.narInfo(p, hashPart) : undefined;
    if (!source) return undefined;
    this.deps.audit.recordRead(p, source.orgId, source.storePath, 'narinfo');
    return source.narinfo;
  }

  /**
   * The slice whose copy of the path `findNarInfo` would serve this caller, with its place in the
   * caller's view: what a realisation of that path may be served from.
   */
  async servingSlice(p: Principal, view: CacheView, hashPart: StorePathHash): Promise<ServingSlice | undefined> {
    const found = await this.servedRow(p, view, hashPart);
    return found && { sliceId: found.row.slice_id, rank: found.rank };
  }

  /** The first row holding `hashPart`, in the view's order, that the caller may read, and its rank. */
  private async servedRow(p: Principal, view: CacheView, hashPart: StorePathHash) {
    const { authorizer, sources, deploy } = this.deps;
    const order = view.kind === 'slice' ? undefined : await sources.viewOf(p);
    const rows =
      view.kind === 'slice'
        ? await this.narinfoCache.get(hashPart, view.slice.slice.id, () =>
            this.q.narinfoByHashInSlice(hashPart, view.slice.slice.id),
          )
        : inViewOrder(await this.narinfoCache.get(hashPart, '*', () => this.q.narinfoByHash(hashPart)), order!);
    // Deploy-only tokens read exactly their outputs' closures (computed from stored references).
    const closure = p.kind === 'token' && p.deploy && deploy ? await deploy.closureOf(p, hashPart) : undefined;
    const facts = closure ? { inDeployClosure: closure.has(hashPart) } : NO_FACTS;
    const row = rows.find((r) => authorizer.authorize(p, 'cache.read', resourceOf(r), facts, QUIET).allowed);
    if (row) return { row, rank: order?.get(row.slice_id) ?? 0 };
    if (rows[0]) authorizer.authorize(p, 'cache.read', resourceOf(rows[0]), facts);
    return undefined;
  }

  /** A NAR by its served name, if the caller may read some path that has this content. */
  async findNar(p: Principal, view: CacheView, fileName: string): Promise<FoundNar | undefined> {
    const readable = await this.readableNar(p, view, fileName);
    if (!readable) return undefined;
    const blobs = this.deps.storage.blobs;
    const key = narBlobKey(readable.narHash);
    const size = await blobs.size(key);
    if (size === undefined) return undefined;
    this.deps.audit.recordRead(p, readable.orgId, readable.storePath, 'nar', size);
    return {
      size,
      open: (range) => blobs.get(key, range),
      redirectUrl: async () => (blobs.redirectUrl ? blobs.redirectUrl(key) : undefined),
    };
  }

  /** The NAR hash of a served NAR file name the caller may read (NAR reads and narinfo uploads). */
  async readableNar(p: Principal, view: CacheView, fileName: string): Promise<ReadableNar | undefined> {
    const { authorizer, sources, deploy } = this.deps;
    const m = SERVED_NAR.exec(fileName);
    if (!m) return undefined;
    const narHash = m[1]!;
    const rows =
      view.kind === 'slice'
        ? await this.q.byNarHashInSlice(narHash, view.slice.slice.id)
        : inViewOrder(await this.q.byNarHash(narHash), await sources.viewOf(p));
    const closure = p.kind === 'token' && p.deploy && deploy ? await deploy.closureOf(p) : undefined;
    const factsOf = (row: (typeof rows)[number]) =>
      closure ? { inDeployClosure: closure.has(row.hash_part) } : NO_FACTS;
    for (const row of rows) {
      if (authorizer.authorize(p, 'cache.read', resourceOf(row), factsOf(row), QUIET).allowed) {
        return { narHash, orgId: row.org_id, storePath: row.store_path };
      }
    }
    const source = view.kind === 'unified' ? await this.deps.releaseSources?.readableNar(p, narHash) : undefined;
    if (source) return { narHash, ...source };
    if (rows[0]) authorizer.authorize(p, 'cache.read', resourceOf(rows[0]), factsOf(rows[0]));
    return undefined;
  }

  /**
   * Whether the caller may read this NAR through a path of one given slice, that slice being in
   * the view (what a debug info entry of that slice may be served on).
   */
  async readableNarInSlice(p: Principal, view: CacheView, sliceId: string, narHash: string): Promise<boolean> {
    const { authorizer, sources, deploy } = this.deps;
    if (view.kind === 'slice' ? view.slice.slice.id !== sliceId : !(await sources.viewOf(p)).has(sliceId)) return false;
    const rows = await this.q.byNarHashInSlice(narHash, sliceId);
    const closure = p.kind === 'token' && p.deploy && deploy ? await deploy.closureOf(p) : undefined;
    return rows.some((row) => {
      const facts = closure ? { inDeployClosure: closure.has(row.hash_part) } : NO_FACTS;
      return authorizer.authorize(p, 'cache.read', resourceOf(row), facts, QUIET).allowed;
    });
  }

  /** Whether the caller may read or write this slice (slice URLs of others' slices look missing). */
  mayUseSlice(p: Principal, slice: SliceResource): boolean {
    // Deploy-only tokens are decided per path (their closures); their own org's slice URLs exist for them.
    if (p.kind === 'token' && p.deploy && p.org.id === slice.org.id) return true;
    const { authorizer } = this.deps;
    if (authorizer.authorize(p, 'cache.write', slice, NO_FACTS, QUIET).allowed) return true;
    return authorizer.authorize(p, 'cache.read', slice).allowed;
  }

  /** Drops every memoized lookup (a notice too large to name its paths). */
  forgetAll(): void {
    this.narinfoCache.clear();
  }

  /** Drops memoized narinfo lookups (after a commit or GC changed these hash parts). */
  forget(hashParts: Iterable<string>): void {
    for (const h of hashParts) this.narinfoCache.invalidate(h);
  }
}
