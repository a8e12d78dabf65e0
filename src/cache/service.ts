/**
 * The identity-aware cache. Reads return `undefined` for both "missing" and "not allowed", so no
 * caller above this layer can leak the difference. Writes go to exactly one slice, which must be
 * closure-complete: a path becomes visible only with its NAR stored and all its references present
 * in that slice (references the writer can already read elsewhere are linked in, never re-uploaded).
 */
import { Conflict, Forbidden, InvalidInput, TooLarge, Unauthenticated } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { type Hash, formatNix32Hash, hashesEqual } from '../nix/hash.js';
import { type NarInfo, parseNarInfo } from '../nix/narinfo.js';
import { parseContentAddress } from '../nix/content-address.js';
import { encodeNix32 } from '../nix/nix32.js';
import { parseSignature, type SigningKey } from '../nix/signing.js';
import { type StorePathBase, type StorePathHash, hashPartOf } from '../nix/store-path.js';
import type { OrgKeyService } from '../org/keys.js';
import type { SourceService } from './sources.js';
import { inViewOrder } from './view.js';
import { renderNarInfo } from './render.js';
import { type LinkContext, verifiedSignerNames } from './link-policy.js';
import { type Candidate, candidateQuery, resourceOf } from './candidates.js';
import { type Linking, Linker } from './links.js';
import { resignOrg } from './resign.js';
import type { RequestFacts, SliceResource } from '../policy/actions.js';
import type { AuditEvent } from '../audit/log.js';
import type { SignerService } from './signers.js';
import type { Authorizer } from '../policy/authorize.js';
import type { OrgService } from '../org/service.js';
import { DEFAULT_SLICE, isUniqueViolation } from '../org/service.js';
import type { BlobRead, Storage } from '../storage/types.js';
import { prepareQuery } from '../storage/prepared.js';
import { ReadCache } from './read-cache.js';
import { FairSemaphore } from './semaphore.js';
import { type Compression, compressionFromName } from './compression.js';
import { type IngestLimits, type IngestedNar, type UploadRecord, ingestNar, narBlobKey } from './ingest.js';
import { lockSharedAgainstGc } from '../storage/locks.js';
import { quotaFull, quotaViolation } from './quota.js';
import type { Upstream, UpstreamService } from './upstream.js';
import { checkFetchedNar } from './upstream-verify.js';
import { orgStoredBytes } from './accounting.js';
import { RealisationService } from './realisations.js';

/** What the cache tells the audit trail: committed writes, and reads for the per-day summary. */
export interface CacheAudit {
  append(e: AuditEvent): void;
  recordRead(p: Principal, orgId: string, storePath: string, kind: 'narinfo' | 'nar', bytes?: number): void;
}
const NO_AUDIT: CacheAudit = { append() {}, recordRead() {} };
const NO_FACTS: RequestFacts = {};
/** Reference probes at upload are decided like reads but not audited one by one. */
const QUIET = { quiet: true };

/** Which paths a deploy-only token may read (see registry/deploy.ts). */
export interface DeployClosures {
  closureOf(p: Principal, wanted?: string): Promise<ReadonlySet<string> | undefined>;
}

/** Where a request looks: the caller's unified view (see view.ts) or one slice. */
export type CacheView = { kind: 'unified' } | { kind: 'slice'; slice: SliceResource };

export interface CacheDeps {
  storage: Storage;
  orgs: OrgService;
  authorizer: Authorizer;
  /** Per-org Nix signing keys: narinfos of a slice are signed with its org's keys. */
  keys: OrgKeyService;
  /** Views (which slices `/cache` consults for whom) and link sources. */
  sources: SourceService;
  limits: IngestLimits;
  audit?: CacheAudit;
  deploy?: DeployClosures;
  upstreams?: UpstreamService;
  signers?: SignerService;
  /** Concurrent NAR ingestions in all and per org (default 16 and 4). */
  ingestSlots?: { slots: number; slotsPerOrg: number };
  /**
   * How long an uploaded NAR waits for its narinfo (default 24 h), and how long the NAR of a refused
   * batch upload still counts against its org's quota before GC may take it (default 1 h, the GC grace).
   */
  uploads?: { expiryMs: number; refusedHoldMs: number };
}

export interface PathMetadata {
  storePath: StorePathBase;
  narHash: Hash;
  narSize: number;
  references: StorePathBase[];
  deriver?: StorePathBase;
  ca?: string;
  sigs: string[];
  /** Where the path came from when the server fetched it itself (e.g. `upstream:cache-nixos-org`). */
  origin?: string;
}

/** The answer to "which of these paths must I upload?" */
export interface PushPlan {
  /** Absent from the target slice: the client uploads these. */
  missing: StorePathBase[];
  /** Were absent, and the server fetched verified copies from a trusted upstream into the slice. */
  mirrored: StorePathBase[];
  /** An upstream offered these but its copy failed verification (they stay in `missing`). */
  refused: Array<{ path: StorePathBase; reason: string }>;
}

export type CommitResult = 'created' | 'exists';

export interface FoundNar {
  size: number;
  open(range?: { start: number; end: number }): Promise<BlobRead | undefined>;
  /** A direct download URL, when the blob store offers presigned URLs. */
  redirectUrl(): Promise<string | undefined>;
}

const SERVED_NAR = /^([0-9a-df-np-sv-z]{52})\.nar\.zst$/;
const CLIENT_NAR_FILE = /^[0-9a-zA-Z][0-9a-zA-Z._+-]{0,200}$/;
const UPLOAD_RECORD_TTL_MS = 24 * 3600 * 1000;

/**
 * What counts against an org's quota: the stored bytes of the distinct NARs its paths use, and of
 * those its slices uploaded and may still commit (unexpired `nar_uploads` rows). Without the
 * second part, NARs uploaded without a narinfo would be stored free of any quota.
 */
async function orgBytesWithPending(db: Storage['db'], orgId: string): Promise<number> {
  const row = await db
    .selectFrom('nars')
    .select((eb) => eb.fn.sum<number | string | null>('nars.file_size').as('bytes'))
    .where((eb) =>
      eb.or([
        eb('nars.nar_hash', 'in', eb.selectFrom('paths').innerJoin('slices', 'slices.id', 'paths.slice_id').select('paths.nar_hash').where('slices.org_id', '=', orgId)),
        eb(
          'nars.nar_hash',
          'in',
          eb.selectFrom('nar_uploads').innerJoin('slices', 'slices.id', 'nar_uploads.slice_id').select('nar_uploads.nar_hash').where('slices.org_id', '=', orgId).where('nar_uploads.expires_at', '>', new Date().toISOString()),
        ),
      ]),
    )
    .executeTakeFirst();
  return Number(row?.bytes ?? 0);
}

/** What a commit needs from a narinfo (uploaded or fetched from an upstream). */
function metadataOf(info: NarInfo): PathMetadata {
  return {
    storePath: info.storePath,
    narHash: info.narHash,
    narSize: info.narSize,
    references: info.references,
    ...(info.deriver ? { deriver: info.deriver } : {}),
    ...(info.ca ? { ca: info.ca } : {}),
    sigs: info.sigs,
  };
}

export class CacheService {
  private readonly q;
  /** narinfo candidates by hash part (and slice), for the hot path. */
  /**
   * Uploads wait for a slot rather than fail: a 5xx or 429 would make old Nix retry without a body.
   * Slots are shared fairly between orgs, so one org's stalled uploads cannot block another's.
   */
  private readonly ingestSlots: FairSemaphore;
  private readonly uploadExpiryMs: number;
  private readonly refusedHoldMs: number;
  private readonly narinfoCache: ReadCache<Array<Candidate & { narinfo: string; store_path: string }>>;

  private readonly storage: Storage;
  private readonly orgs: OrgService;
  private readonly authorizer: Authorizer;
  private readonly keys: OrgKeyService;
  private readonly sources: SourceService;
  private readonly limits: IngestLimits;
  private readonly audit: CacheAudit;
  private readonly deploy: DeployClosures | undefined;
  private readonly upstreams: UpstreamService | undefined;
  private readonly signers: SignerService | undefined;
  private readonly linker: Linker;

  constructor(deps: CacheDeps) {
    const storage = deps.storage;
    this.storage = storage;
    this.orgs = deps.orgs;
    this.authorizer = deps.authorizer;
    this.keys = deps.keys;
    this.sources = deps.sources;
    this.limits = deps.limits;
    this.audit = deps.audit ?? NO_AUDIT;
    this.deploy = deps.deploy;
    this.upstreams = deps.upstreams;
    this.signers = deps.signers;
    this.linker = new Linker(storage.db, deps.authorizer, deps.sources, deps.signers, deps.upstreams);
    this.ingestSlots = new FairSemaphore(deps.ingestSlots?.slots ?? 16, deps.ingestSlots?.slotsPerOrg ?? 4);
    this.uploadExpiryMs = deps.uploads?.expiryMs ?? UPLOAD_RECORD_TTL_MS;
    this.refusedHoldMs = deps.uploads?.refusedHoldMs ?? 3600_000;
    const candidates = () => candidateQuery(storage.db);
    // Embedded SQLite has exactly one writer process (this one), so misses can be memoized too.
    this.narinfoCache = new ReadCache(2_000, 50_000, storage.dialect === 'sqlite');
    // The read path runs on every substitution: these are compiled once.
    this.q = {
      narinfoByHash: prepareQuery(storage.db, candidates().select(['paths.narinfo', 'paths.store_path']).where('paths.hash_part', '=', '?')),
      narinfoByHashInSlice: prepareQuery(storage.db, candidates().select(['paths.narinfo', 'paths.store_path']).where('paths.hash_part', '=', '?').where('paths.slice_id', '=', '?')),
      byNarHash: prepareQuery(storage.db, candidates().select(['paths.hash_part', 'paths.store_path']).where('paths.nar_hash', '=', '?')),
      byNarHashInSlice: prepareQuery(storage.db, candidates().select(['paths.hash_part', 'paths.store_path']).where('paths.nar_hash', '=', '?').where('paths.slice_id', '=', '?')),
    };
  }

  // ---- reads ----------------------------------------------------------------------------------

  async findNarInfo(p: Principal, view: CacheView, hashPart: StorePathHash): Promise<string | undefined> {
    const found = await this.servedRow(p, view, hashPart);
    if (found) {
      this.audit.recordRead(p, found.row.org_id, found.row.store_path, 'narinfo');
      return found.row.narinfo;
    }
    return this.pullThrough(p, view, hashPart);
  }

  /**
   * The slice whose copy of the path `findNarInfo` would serve this caller (no pull-through), with
   * its place in the caller's view: what a realisation of that path may be served from.
   */
  async servingSlice(p: Principal, view: CacheView, hashPart: StorePathHash): Promise<{ sliceId: string; rank: number } | undefined> {
    const found = await this.servedRow(p, view, hashPart);
    return found && { sliceId: found.row.slice_id, rank: found.rank };
  }

  /**
   * The first row holding `hashPart`, in the view's order, that the caller may read, and its rank.
   * Candidates are probed quietly: one request records at most one denial (the first candidate's).
   */
  private async servedRow(p: Principal, view: CacheView, hashPart: StorePathHash) {
    const order = view.kind === 'slice' ? undefined : await this.sources.viewOf(p);
    const rows =
      view.kind === 'slice'
        ? await this.narinfoCache.get(hashPart, view.slice.slice.id, () => this.q.narinfoByHashInSlice(hashPart, view.slice.slice.id))
        : inViewOrder(await this.narinfoCache.get(hashPart, '*', () => this.q.narinfoByHash(hashPart)), order!);
    // Deploy-only tokens read exactly their outputs' closures (computed from stored references).
    const closure = p.kind === 'token' && p.deploy && this.deploy ? await this.deploy.closureOf(p, hashPart) : undefined;
    const facts = closure ? { inDeployClosure: closure.has(hashPart) } : NO_FACTS;
    const row = rows.find((r) => this.authorizer.authorize(p, 'cache.read', resourceOf(r), facts, QUIET).allowed);
    if (row) return { row, rank: order?.get(row.slice_id) ?? 0 };
    if (rows[0]) this.authorizer.authorize(p, 'cache.read', resourceOf(rows[0]), facts);
    return undefined;
  }

  /** Upstream misses, remembered briefly so a substituter's probing does not hammer upstreams. */
  private readonly upstreamMisses = new Map<string, number>();

  /**
   * Pull-through: on a miss for an org member, a path a pull-through upstream serves (verified like
   * any mirrored path) is stored in the member's org (the default slice, the token's only slice, or
   * the org's own slice in the URL) and served. Anonymous readers never make the server fetch.
   */
  private async pullThrough(p: Principal, view: CacheView, hashPart: StorePathHash): Promise<string | undefined> {
    // Deploy-only tokens read exactly their outputs' closures: they never make the server fetch.
    if (p.kind !== 'token' || p.deploy || !this.upstreams) return undefined;
    const upstreams = (await this.upstreams.list()).filter((u) => u.pullThrough);
    if (upstreams.length === 0) return undefined;
    const missedAt = this.upstreamMisses.get(hashPart);
    if (missedAt !== undefined && Date.now() - missedAt < 60_000) return undefined;
    let target: SliceResource | undefined;
    if (view.kind === 'slice') target = view.slice.org.id === p.org.id ? view.slice : undefined;
    else target = await this.orgs.findSlice(p.org.name, p.slices?.length === 1 ? p.slices[0]! : DEFAULT_SLICE);
    if (!target || !this.authorizer.authorize(p, 'cache.read', target).allowed) return undefined;
    const found = await this.upstreams.lookup(hashPart, upstreams);
    if (found.kind !== 'found') {
      if (this.upstreamMisses.size > 100_000) this.upstreamMisses.clear();
      this.upstreamMisses.set(hashPart, Date.now());
      return undefined;
    }
    const result = await this.mirror(p, target, [found.info.storePath], upstreams, 'pull-through');
    if (!result.mirrored.includes(found.info.storePath)) return undefined;
    const row = await this.storage.db.selectFrom('paths').select('narinfo').where('slice_id', '=', target.slice.id).where('hash_part', '=', hashPart).executeTakeFirst();
    return row?.narinfo;
  }

  /** A NAR by its served name, if the caller may read some path that has this content. */
  async findNar(p: Principal, view: CacheView, fileName: string): Promise<FoundNar | undefined> {
    const readable = await this.readableNar(p, view, fileName);
    if (!readable) return undefined;
    const key = narBlobKey(readable.narHash);
    const size = await this.storage.blobs.size(key);
    if (size === undefined) return undefined;
    this.audit.recordRead(p, readable.orgId, readable.storePath, 'nar', size);
    const blobs = this.storage.blobs;
    return {
      size,
      open: (range) => blobs.get(key, range),
      redirectUrl: async () => (blobs.redirectUrl ? blobs.redirectUrl(key) : undefined),
    };
  }

  /**
   * HEAD on a NAR file, answered for the caller: true if it is a NAR the caller may read, or a file
   * the caller's target slice uploaded (Nix's `nix copy` skips re-uploading those). Knowing a hash
   * gives nothing: another org's upload of the same file is not reported.
   */
  async hasNarFile(p: Principal, view: CacheView, fileName: string): Promise<boolean> {
    if (await this.readableNar(p, view, fileName)) return true;
    const target = await this.writeTargetOrUndefined(p, view);
    if (!target) return false;
    const row = await this.storage.db
      .selectFrom('nar_uploads')
      .select('nar_hash')
      .where('slice_id', '=', target.slice.id)
      .where('file_name', '=', fileName)
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    return row !== undefined;
  }

  private async readableNar(p: Principal, view: CacheView, fileName: string): Promise<{ narHash: string; orgId: string; storePath: string } | undefined> {
    const m = SERVED_NAR.exec(fileName);
    if (!m) return undefined;
    const narHash = m[1]!;
    const rows = view.kind === 'slice' ? await this.q.byNarHashInSlice(narHash, view.slice.slice.id) : inViewOrder(await this.q.byNarHash(narHash), await this.sources.viewOf(p));
    const closure = p.kind === 'token' && p.deploy && this.deploy ? await this.deploy.closureOf(p) : undefined;
    const factsOf = (row: (typeof rows)[number]) => (closure ? { inDeployClosure: closure.has(row.hash_part) } : NO_FACTS);
    for (const row of rows) {
      if (this.authorizer.authorize(p, 'cache.read', resourceOf(row), factsOf(row), QUIET).allowed) return { narHash, orgId: row.org_id, storePath: row.store_path };
    }
    if (rows[0]) this.authorizer.authorize(p, 'cache.read', resourceOf(rows[0]), factsOf(rows[0]));
    return undefined;
  }

  /**
   * Store paths (base names) absent from the caller's write target. Paths a trusted upstream
   * serves (with a valid signature and the signed NAR) are fetched by the server into the target
   * first, and reported as `mirrored` instead of `missing`: the client uploads only its own paths.
   */
  async missingPaths(p: Principal, view: CacheView, paths: StorePathBase[]): Promise<PushPlan> {
    const target = await this.writeTarget(p, view);
    const absent = await this.absentFrom(target, paths);
    if (absent.length === 0 || !this.upstreams || (await this.upstreams.list()).length === 0) return { missing: absent, mirrored: [], refused: [] };
    const result = await this.mirror(p, target, absent);
    const mirrored = new Set<string>(result.mirrored);
    return { missing: absent.filter((x) => !mirrored.has(x)), mirrored: absent.filter((x) => mirrored.has(x)), refused: result.refused.filter((r) => absent.includes(r.path)) };
  }

  /** Hash parts absent from the caller's write target (Attic's get-missing-paths sends no names). */
  async missingHashes(p: Principal, view: CacheView, hashes: StorePathHash[]): Promise<StorePathHash[]> {
    const target = await this.writeTarget(p, view);
    const present = new Set<string>();
    for (let i = 0; i < hashes.length; i += 500) {
      const rows = await this.storage.db.selectFrom('paths').select('hash_part').where('slice_id', '=', target.slice.id).where('hash_part', 'in', hashes.slice(i, i + 500)).execute();
      for (const r of rows) present.add(r.hash_part);
    }
    return hashes.filter((h) => !present.has(h));
  }

  private async absentFrom(target: SliceResource, paths: StorePathBase[]): Promise<StorePathBase[]> {
    const present = new Set<string>();
    const hashes = paths.map((x) => hashPartOf(x));
    for (let i = 0; i < hashes.length; i += 500) {
      const rows = await this.storage.db
        .selectFrom('paths')
        .select('store_path')
        .where('slice_id', '=', target.slice.id)
        .where('hash_part', 'in', hashes.slice(i, i + 500))
        .execute();
      for (const r of rows) present.add(r.store_path);
    }
    return paths.filter((x) => !present.has(x));
  }


  /**
   * Fetches `wanted` (and whatever of their closures is neither in `target` nor readable elsewhere)
   * from the trusted upstreams, verifies each narinfo signature and NAR hash, and commits them to
   * `target`, dependencies first. A path is mirrored only if its whole closure can be.
   */
  async mirror(
    p: Principal,
    target: SliceResource,
    wanted: StorePathBase[],
    only?: Upstream[],
    fill?: 'pull-through',
  ): Promise<{ mirrored: StorePathBase[]; refused: Array<{ path: StorePathBase; reason: string }> }> {
    const upstreams = only ?? (this.upstreams ? await this.upstreams.list() : []);
    const refused = new Map<StorePathBase, string>();
    if (upstreams.length === 0) return { mirrored: [], refused: [] };
    const found = new Map<StorePathBase, { upstream: Upstream; info: import('../nix/narinfo.js').NarInfo }>();
    const failed = new Set<StorePathBase>();
    const settled = new Set<StorePathBase>();
    // What may be linked into the target is decided once for the whole walk.
    const linkCtx = await this.linker.context(target);
    // Discovery: breadth-first over the closure, 8 lookups at a time.
    let frontier = [...new Set(wanted)];
    const isWanted = new Set<StorePathBase>(wanted);
    while (frontier.length > 0) {
      const next: StorePathBase[] = [];
      await mapLimit(frontier, 8, async (path) => {
        if (settled.has(path)) return;
        settled.add(path);
        if (!isWanted.has(path) && (await this.linker.presentOrLinkable(p, target, path, linkCtx))) return;
        const r = await this.upstreams!.lookup(path, upstreams);
        if (r.kind === 'found') {
          found.set(path, r);
          for (const ref of r.info.references) if (ref !== path && !settled.has(ref)) next.push(ref);
        } else {
          failed.add(path);
          if (r.kind === 'refused') refused.set(path, r.reason);
        }
      });
      frontier = [...new Set(next)];
    }
    // A path whose closure has a hole cannot be mirrored; propagate failures to dependents.
    let changed = true;
    while (changed) {
      changed = false;
      for (const [path, { info }] of found) {
        if (info.references.some((r) => r !== path && failed.has(r))) {
          found.delete(path);
          failed.add(path);
          changed = true;
        }
      }
    }
    // Commit in dependency order, several fetches at a time.
    const done = new Set<StorePathBase>();
    const mirrored: StorePathBase[] = [];
    let pending = [...found.keys()];
    while (pending.length > 0) {
      const ready = pending.filter((path) => found.get(path)!.info.references.every((r) => r === path || done.has(r) || !found.has(r)));
      if (ready.length === 0) break; // a reference cycle between distinct paths: Nix never makes one
      await mapLimit(ready, 4, async (path) => {
        const { upstream, info } = found.get(path)!;
        try {
          const body = await this.upstreams!.openNar(upstream, info);
          const nar = await this.ingestSlots.run(target.org.id, () =>
            ingestNar(body, compressionFromName(info.compression), this.storage, this.limits, undefined, info.narSize, undefined, this.uploadRecord(target, (h) => `upstream/${h}`)),
          );
          const bad = checkFetchedNar(info, nar);
          if (bad) throw new InvalidInput('upstream', bad);
          await this.commitPath(p, target, { ...metadataOf(info), origin: `upstream:${upstream.name}` }, fill);
          done.add(path);
          mirrored.push(path);
        } catch (err) {
          refused.set(path, `from upstream ${upstream.name}: ${(err as Error).message}`);
          failed.add(path);
        }
      });
      const readySet = new Set(ready);
      pending = pending.filter((x) => !readySet.has(x));
      for (const path of pending) {
        if (found.get(path)!.info.references.some((r) => r !== path && failed.has(r))) {
          failed.add(path);
          readySet.add(path);
        }
      }
      pending = pending.filter((x) => !failed.has(x));
    }
    return { mirrored, refused: [...refused].map(([path, reason]) => ({ path, reason })) };
  }

  /** Before a commit: references neither in the slice nor readable elsewhere are fetched from upstreams. */
  private async ensureReferences(p: Principal, target: SliceResource, meta: PathMetadata): Promise<void> {
    if (!this.upstreams || (await this.upstreams.list()).length === 0) return;
    const lacking: StorePathBase[] = [];
    const ctx = await this.linker.context(target);
    for (const ref of new Set(meta.references)) {
      if (ref !== meta.storePath && !(await this.linker.presentOrLinkable(p, target, ref, ctx))) lacking.push(ref);
    }
    if (lacking.length > 0) await this.mirror(p, target, lacking);
  }

  /** Whether the caller may read or write this slice (slice URLs of others' slices look missing). */
  mayUseSlice(p: Principal, slice: SliceResource): boolean {
    // Deploy-only tokens are decided per path (their closures); their own org's slice URLs exist for them.
    if (p.kind === 'token' && p.deploy && p.org.id === slice.org.id) return true;
    return this.authorizer.authorize(p, 'cache.write', slice, NO_FACTS, QUIET).allowed || this.authorizer.authorize(p, 'cache.read', slice).allowed;
  }

  /**
   * The Nix public keys a caller should trust for its unified view: the keys of every org whose
   * slices are in it, in view order. Exactly these: a client that trusts only them refuses any
   * other tenant's content, whatever a view says.
   */
  async publicKeysFor(p: Principal): Promise<string[]> {
    const keys: string[] = [];
    for (const orgId of await this.sources.orgsInView(p)) keys.push(...(await this.keys.published(orgId)));
    return [...new Set(keys)];
  }

  /** An org's published keys (public information, like a public key on a key server). */
  async orgPublicKeys(orgName: string): Promise<string[] | undefined> {
    const org = await this.orgs.findOrg(orgName);
    return org ? this.keys.published(org.id) : undefined;
  }

  private realisationService: RealisationService | undefined;
  /** Realisations of CA derivation outputs, decided by the access to the paths they name. */
  get realisations(): RealisationService {
    return (this.realisationService ??= new RealisationService({ storage: this.storage, cache: this, audit: this.audit }));
  }

  /** Drops memoized narinfo lookups (after GC deleted these hash parts). */
  forget(hashParts: Iterable<string>): void {
    for (const h of hashParts) this.narinfoCache.invalidate(h);
  }

  // ---- writes ---------------------------------------------------------------------------------

  /**
   * The slice a write goes to. Slice URLs name it; on the unified URL it is the token's only slice
   * if it is limited to one, else its org's default slice.
   */
  async writeTarget(p: Principal, view: CacheView): Promise<SliceResource> {
    let target: SliceResource | undefined;
    if (view.kind === 'slice') {
      target = view.slice;
    } else {
      if (p.kind === 'anonymous') throw new Unauthenticated('uploading needs a token with the write scope (netrc password or Bearer)');
      if (p.kind === 'server-admin') throw new InvalidInput('cache URL', 'the server admin token has no org: upload to <server>/cache/<org>/<slice>');
      const sliceName = p.slices?.length === 1 ? p.slices[0]! : DEFAULT_SLICE;
      target = await this.orgs.findSlice(p.org.name, sliceName);
      if (!target) throw new InvalidInput('slice', `the token's slice ${JSON.stringify(sliceName)} does not exist in org ${p.org.name}`);
    }
    const decision = this.authorizer.authorize(p, 'cache.write', target);
    if (!decision.allowed) {
      if (p.kind === 'anonymous') throw new Unauthenticated('uploading needs a token with the write scope (netrc password or Bearer)');
      throw new Forbidden(`not allowed to write to ${target.org.name}/${target.slice.name}: ${decision.reason}`);
    }
    return target;
  }

  private async writeTargetOrUndefined(p: Principal, view: CacheView): Promise<SliceResource | undefined> {
    try {
      return await this.writeTarget(p, view);
    } catch {
      return undefined;
    }
  }

  /** The record that makes an ingested NAR this slice's pending upload (see ingestNar). */
  private uploadRecord(target: SliceResource, fileName: (narHashNix32: string) => string): UploadRecord {
    return { sliceId: target.slice.id, fileName, expiresAt: new Date(Date.now() + this.uploadExpiryMs) };
  }

  /**
   * 413 when the org has a quota and is at it, pending uploads counted (`what` says which, for the
   * message); `adds` is asked only when there is a quota: whether this upload would add anything.
   */
  private async refuseIfFull(target: SliceResource, what: string, adds: () => Promise<boolean> = async () => true): Promise<void> {
    const settings = await this.storage.db.selectFrom('org_settings').select('quota_bytes').where('org_id', '=', target.org.id).executeTakeFirst();
    if (settings?.quota_bytes == null || !(await adds())) return;
    const full = quotaFull(target.org.name, Number(settings.quota_bytes), await orgBytesWithPending(this.storage.db, target.org.id));
    if (full) throw new TooLarge(`${full}, ${what}`);
  }

  /**
   * The write target of an upload whose body has not been read yet, refused (413) when its org is
   * already at its quota, counting the NARs it uploaded that still wait for a narinfo.
   */
  async admitUpload(p: Principal, view: CacheView): Promise<SliceResource> {
    const target = await this.writeTarget(p, view);
    await this.refuseIfFull(target, 'NARs uploaded without a narinfo (they count until committed or expired) included');
    return target;
  }

  /** `PUT nar/<file>` from `nix copy`: verify and store, remember that this slice uploaded the file. */
  async uploadNarFile(p: Principal, view: CacheView, fileName: string, body: AsyncIterable<Buffer>, signal?: AbortSignal, sizeHint?: number): Promise<IngestedNar> {
    const target = await this.admitUpload(p, view);
    if (!CLIENT_NAR_FILE.test(fileName)) throw new InvalidInput('NAR file name', `${JSON.stringify(fileName.slice(0, 80))} is not a valid file name`);
    const ext = fileName.includes('.nar.') ? fileName.slice(fileName.lastIndexOf('.') + 1) : 'none';
    // The upload record is written with the NAR's row, in one transaction: no GC can slip between.
    return this.ingestSlots.run(target.org.id, () => ingestNar(body, compressionFromName(ext), this.storage, this.limits, signal, undefined, sizeHint, this.uploadRecord(target, () => fileName)));
  }

  /** `PUT <hash>.narinfo` from `nix copy`: the NAR must be one this slice uploaded, or one the caller can read. */
  async uploadNarInfo(p: Principal, view: CacheView, hashPart: StorePathHash, text: string): Promise<CommitResult> {
    const target = await this.writeTarget(p, view);
    const info = parseNarInfo(text);
    if (hashPartOf(info.storePath) !== hashPart) {
      throw new InvalidInput('narinfo', `StorePath ${info.storePath} does not match the file name ${hashPart}.narinfo`);
    }
    const url = info.url.split('?')[0]!;
    if (!url.startsWith('nar/')) throw new InvalidInput('URL', `expected "nar/<file>", got ${JSON.stringify(info.url.slice(0, 80))}`);
    const fileName = url.slice(4);
    const claimed = encodeNix32(info.narHash.digest);
    const upload = await this.storage.db
      .selectFrom('nar_uploads')
      .select(['nar_hash', 'nar_size'])
      .where('slice_id', '=', target.slice.id)
      .where('file_name', '=', fileName)
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    let have: { narHash: string; narSize: number } | undefined = upload && { narHash: upload.nar_hash, narSize: Number(upload.nar_size) };
    if (!have) {
      const served = SERVED_NAR.exec(fileName);
      if (served && (await this.readableNar(p, { kind: 'unified' }, fileName))) {
        const nar = await this.storage.db.selectFrom('nars').select(['nar_hash', 'nar_size']).where('nar_hash', '=', served[1]!).executeTakeFirst();
        have = nar && { narHash: nar.nar_hash, narSize: Number(nar.nar_size) };
      }
    }
    if (!have) {
      throw new InvalidInput('URL', `no NAR was uploaded as ${JSON.stringify(url)} to ${target.org.name}/${target.slice.name}; upload the NAR before its narinfo`);
    }
    if (have.narHash !== claimed) {
      throw new InvalidInput('NarHash', `mismatch: narinfo claims ${formatNix32Hash(info.narHash)}, the uploaded NAR has sha256:${have.narHash}`);
    }
    if (have.narSize !== info.narSize) {
      throw new InvalidInput('NarSize', `mismatch: narinfo claims ${info.narSize}, the uploaded NAR has ${have.narSize} bytes`);
    }
    const meta = metadataOf(info);
    await this.ensureReferences(p, target, meta);
    return this.commitPath(p, target, meta);
  }

  /** Floe's batch upload: metadata and NAR in one request, verified against each other. */
  async uploadPath(p: Principal, view: CacheView, meta: PathMetadata, body: AsyncIterable<Buffer>, declared: Compression | undefined, signal?: AbortSignal) {
    const target = await this.writeTarget(p, view);
    // Refuse before reading the body when the org is already full and this path is new to the slice.
    // (Re-pushing a path the slice holds adds nothing: it passes even over quota.)
    await this.refuseIfFull(target, 'NARs uploaded without a narinfo and recently refused uploads included', async () => (await this.absentFrom(target, [meta.storePath])).length > 0);
    // Pending from the moment it is stored (so GC leaves it alone until the commit below).
    const fileName = (h: string) => `batch/${h}`;
    const nar = await this.ingestSlots.run(target.org.id, () => ingestNar(body, declared, this.storage, this.limits, signal, meta.narSize, undefined, this.uploadRecord(target, fileName)));
    try {
      if (!hashesEqual(nar.narHash, meta.narHash)) {
        throw new InvalidInput('narHash', `mismatch: claimed ${formatNix32Hash(meta.narHash)}, the uploaded NAR has ${formatNix32Hash(nar.narHash)}`);
      }
      if (nar.narSize !== meta.narSize) throw new InvalidInput('narSize', `mismatch: claimed ${meta.narSize}, the uploaded NAR has ${nar.narSize} bytes`);
      await this.ensureReferences(p, target, meta);
      const result = await this.commitPath(p, target, meta);
      return { result, nar };
    } catch (err) {
      // A refused upload's NAR still counts against the org for a while (else refused uploads
      // would store bytes free of quota until GC), then GC takes it.
      const expires = new Date(Date.now() + this.refusedHoldMs).toISOString();
      await this.storage.db
        .updateTable('nar_uploads')
        .set({ expires_at: expires })
        .where('slice_id', '=', target.slice.id)
        .where('file_name', '=', fileName(encodeNix32(nar.narHash.digest)))
        .execute()
        .catch(() => undefined);
      throw err;
    }
  }

  /**
   * Makes a verified path visible in `target`, atomically, once all its references are there.
   * Re-uploading identical content only merges new signatures; different content is a conflict
   * (paths are immutable, and a write token must never replace what others substitute).
   * Every path that enters the slice, linked references included, is decided by `cache.write`
   * with its own verified signers; one refusal fails the whole commit.
   */
  private async commitPath(p: Principal, target: SliceResource, meta: PathMetadata, fill?: 'pull-through'): Promise<CommitResult> {
    const hashPart = hashPartOf(meta.storePath);
    const narHashNix32 = encodeNix32(meta.narHash.digest);
    for (const sig of meta.sigs) parseSignature(sig);
    if (meta.ca) parseContentAddress(meta.ca);
    // Nix never lists a reference twice; a list that does is an attempt to multiply work.
    if (new Set(meta.references).size !== meta.references.length) throw new InvalidInput('References', 'the same store path is listed more than once');
    // Signatures under the org's own key names are the server's to make, never the uploader's.
    const ownNames = await this.keys.ownNames(target.org.id);
    const uploaderSigs = meta.sigs.filter((s) => !ownNames.has(parseSignature(s).keyName));
    const ctx = await this.linker.context(target);
    const signingKeys = await this.keys.signing(target.org.id);
    // Read before the transaction: on SQLite a query outside it would wait for it forever.
    const viewOrder = await this.sources.viewOf(p);
    // Now that the narinfo is known, policies may judge it (e.g. "writes require a signed narinfo").
    // A pull-through fill is the server's own write on a reader's miss (verified against the
    // upstream's trusted keys), not the reader's: it is not judged as theirs.
    // Only signatures that verify against a key the org trusts count.
    const decision =
      fill === 'pull-through'
        ? { allowed: true, reason: 'pull-through' }
        : this.authorizer.authorize(p, 'cache.write', target, { narinfoSignatures: verifiedSignerNames({ ...meta, sigs: uploaderSigs }, ctx.orgSigners) });
    if (!decision.allowed) throw new Forbidden(`not allowed to write ${meta.storePath} to ${target.org.name}/${target.slice.name}: ${decision.reason}`);

    // Any commit can change what a hash resolves to (new path, merged signatures, linked closure).
    const touched = new Set<string>([hashPart]);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const result = await this.commitTransaction(p, target, { ...meta, sigs: uploaderSigs }, hashPart, narHashNix32, touched, { ctx, signingKeys, viewOrder });
          if (result === 'created') {
            this.audit.append({ principal: p, action: 'cache.write', target: `${target.org.name}/${target.slice.name}:/nix/store/${meta.storePath}`, orgId: target.org.id, detail: { narHash: `sha256:${narHashNix32}`, narSize: meta.narSize, ...(meta.origin ? { origin: fill ? `${meta.origin} (${fill})` : meta.origin } : {}) } });
          }
          return result;
        } catch (err) {
          // Another replica committed the same path (or linked the same closure) concurrently:
          // run again, and the transaction sees their row.
          if (!isUniqueViolation(err) || attempt >= 3) throw err;
        }
      }
    } finally {
      this.invalidate(touched);
    }
  }

  private invalidate(hashes: Set<string>): void {
    for (const h of hashes) this.narinfoCache.invalidate(h);
  }

  private commitTransaction(
    p: Principal,
    target: SliceResource,
    meta: PathMetadata,
    hashPart: StorePathHash,
    narHashNix32: string,
    touched: Set<string>,
    linking: Linking,
  ): Promise<CommitResult> {
    const { signingKeys } = linking;
    return this.storage.db.transaction().execute(async (trx) => {
      await lockSharedAgainstGc(trx, this.storage.dialect);
      const nar = await trx.selectFrom('nars').selectAll().where('nar_hash', '=', narHashNix32).executeTakeFirst();
      if (!nar) throw new InvalidInput('NAR', 'the NAR for this path is not stored; upload it first');

      const existing = await trx.selectFrom('paths').selectAll().where('slice_id', '=', target.slice.id).where('hash_part', '=', hashPart).executeTakeFirst();
      if (existing) {
        if (existing.nar_hash !== narHashNix32 || existing.store_path !== meta.storePath) {
          throw new Conflict(`${meta.storePath} is already in ${target.org.name}/${target.slice.name} with different content (sha256:${existing.nar_hash}); store paths are immutable`);
        }
        const merged = [...new Set([...existing.sigs.split('\n').filter(Boolean), ...meta.sigs])];
        if (merged.length !== existing.sigs.split('\n').filter(Boolean).length) {
          await trx
            .updateTable('paths')
            .set({ sigs: merged.join('\n'), narinfo: renderNarInfo({ ...meta, sigs: merged }, nar, signingKeys) })
            .where('slice_id', '=', target.slice.id)
            .where('hash_part', '=', hashPart)
            .execute();
        }
        await this.consumeUploadRecords(trx, target, narHashNix32);
        return 'exists';
      }

      // Closure completeness: every reference must be in the target slice, or be linked in from a
      // source the target may take it from (link-policy.ts); nothing else enters.
      const refs = meta.references.filter((r) => r !== meta.storePath);
      const present = new Map<string, string>();
      for (let i = 0; i < refs.length; i += 500) {
        const rows = await trx.selectFrom('paths').select(['hash_part', 'store_path']).where('slice_id', '=', target.slice.id).where('hash_part', 'in', refs.slice(i, i + 500).map((r) => hashPartOf(r))).execute();
        for (const r of rows) present.set(r.hash_part, r.store_path);
      }
      const missing: string[] = [];
      for (const ref of refs) {
        const inTarget = present.get(hashPartOf(ref));
        if (inTarget !== undefined) {
          if (inTarget !== ref) missing.push(ref);
          continue;
        }
        const linked = await this.linker.linkClosure(trx, p, target, ref, touched, linking, describeUploader(p));
        if (!linked) missing.push(ref);
      }
      if (missing.length > 0) {
        const shown = missing.slice(0, 50).join(' ') + (missing.length > 50 ? ` and ${missing.length - 50} more` : '');
        throw new InvalidInput(
          'References',
          `${missing.length} missing from ${target.org.name}/${target.slice.name} (not present, not linkable from a source this slice trusts, and not available from a trusted upstream): ${shown}; upload the closure in dependency order to ${target.org.name}/${target.slice.name}'s own URL (nix copy --to <server>/cache/${target.org.name}/${target.slice.name}, or floe push, upload exactly what is missing)`,
        );
      }
      const settings = await trx.selectFrom('org_settings').select('quota_bytes').where('org_id', '=', target.org.id).executeTakeFirst();
      const quota = settings?.quota_bytes == null ? null : Number(settings.quota_bytes);
      const before = quota === null ? 0 : await orgStoredBytes(trx, target.org.id);

      await trx
        .insertInto('paths')
        .values({
          slice_id: target.slice.id,
          hash_part: hashPart,
          store_path: meta.storePath,
          nar_hash: narHashNix32,
          nar_size: meta.narSize,
          refs: meta.references.join(' '),
          deriver: meta.deriver ?? null,
          ca: meta.ca ?? null,
          sigs: meta.sigs.join('\n'),
          narinfo: renderNarInfo(meta, nar, signingKeys),
          uploaded_by: meta.origin ? `${meta.origin} for ${describeUploader(p)}` : describeUploader(p),
          created_at: new Date().toISOString(),
        })
        .execute();
      if (quota !== null) {
        // Checked after the inserts (linked closures count too); throwing rolls everything back.
        const violation = quotaViolation(target.org.name, quota, before, await orgStoredBytes(trx, target.org.id));
        if (violation) throw new TooLarge(violation);
      }
      await this.consumeUploadRecords(trx, target, narHashNix32);
      return 'created';
    });
  }

  /**
   * Once a path row holds the NAR, the server's own upload records for it (batch uploads and
   * mirrored NARs, which only keep it from GC until the commit) have served their purpose: left in
   * place they would keep a collected path's NAR, and count against the quota, until they expire.
   * Records of files a client uploaded (`nix copy`'s `PUT nar/<file>`) stay: they are that client's
   * proof of possession and what `HEAD nar/<file>` answers, for concurrent pushes of the same path.
   */
  private async consumeUploadRecords(trx: Storage['db'], target: SliceResource, narHashNix32: string): Promise<void> {
    await trx
      .deleteFrom('nar_uploads')
      .where('slice_id', '=', target.slice.id)
      .where('nar_hash', '=', narHashNix32)
      .where((eb) => eb.or([eb('file_name', 'like', 'batch/%'), eb('file_name', 'like', 'upstream/%')]))
      .execute();
  }

  /** Re-renders every narinfo of an org with its current signing keys (resign.ts). */
  async resignOrg(orgId: string, onProgress?: (done: number) => void): Promise<number> {
    return resignOrg(this.storage.db, orgId, await this.keys.signing(orgId), (hashes) => this.forget(hashes), onProgress);
  }
}

function describeUploader(p: Principal): string {
  switch (p.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'server-admin':
      return `server-admin:${p.tokenId}`;
    case 'token':
      return `${p.subject}:${p.tokenId}`;
  }
}



/** Runs `fn` over `items`, at most `limit` at a time. */
async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  const worker = async () => {
    while (i < items.length) await fn(items[i++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
