/**
 * The identity-aware cache, assembled from its rooms: reading.ts (narinfos and NARs, missing and
 * denied alike), uploading.ts (write entry points and their admission), committing.ts (a path
 * into one slice, closure-complete), mirroring.ts (fetches from upstreams, pull-through), links.ts
 * and resign.ts. This class only wires them and is what the HTTP layer and the registry hold.
 */
import type { AuditEvent } from '../audit/log.js';
import type { Principal } from '../identity/principal.js';
import type { StorePathHash } from '../nix/store-path.js';
import type { OrgKeyService } from '../org/keys.js';
import type { OrgService } from '../org/service.js';
import type { SliceResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import type { Storage } from '../storage/types.js';
import { Committer } from './committing.js';
import type { IngestLimits, UploadRecord } from './ingest.js';
import { Linker } from './links.js';
import { Mirroring } from './mirroring.js';
import { type DeployClosures, Reading, type ReleaseSourceReads } from './reading.js';
import { RealisationService } from './realisations.js';
import { BuildLogService } from './logs.js';
import { DebugInfoService } from './debuginfo.js';
import { ListingService } from './listings.js';
import { resignOrg } from './resign.js';
import { FairSemaphore } from './semaphore.js';
import type { SignerService } from './signers.js';
import type { SourceService } from './sources.js';
import type { UpstreamService } from './upstream.js';
import { SMALL_UPLOAD_SLOT_FACTOR, Uploads } from './uploading.js';
import { lockExclusiveForGc } from '../storage/locks.js';
import { referrersFirst } from '../nix/closure-order.js';
import type { CacheView } from './view.js';

export type { CommitResult, PathMetadata } from './committing.js';
export type { DeployClosures, FoundNar } from './reading.js';
export type { PushPlan, WriteTarget } from './uploading.js';
export type { CacheView } from './view.js';

/** What the cache tells the audit trail: committed writes, and reads for the per-day summary. */
export interface CacheAudit {
  append(e: AuditEvent): void;
  recordRead(p: Principal, orgId: string, storePath: string, kind: 'narinfo' | 'nar', bytes?: number): void;
}
const NO_AUDIT: CacheAudit = { append() {}, recordRead() {} };

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
  /** Release source trees, served on the unified view to readers of their flake. */
  releaseSources?: ReleaseSourceReads;
  upstreams?: UpstreamService;
  signers?: SignerService;
  /** Concurrent NAR ingestions in all, per org and per token (default 16, 4 and 3). */
  ingestSlots?: { slots: number; slotsPerOrg: number; slotsPerToken?: number };
  /**
   * How long an uploaded NAR waits for its narinfo (default 24 h), and how long the NAR of a refused
   * batch upload still counts against its org's quota before GC may take it (default 1 h, the GC grace).
   */
  uploads?: { expiryMs: number; refusedHoldMs: number };
}

const UPLOAD_RECORD_TTL_MS = 24 * 3600 * 1000;
/** Hash parts per `paths` notice (32 characters + comma each, under PostgreSQL's 8000 bytes). */
const MAX_HASHES_PER_NOTICE = 200;

/**
 * `slice delete --force` batches: 1000 paths a transaction, answering after ~10 s so no request
 * outlives a client's timeout (the CLI asks again). FLOE_TEST_SLICE_DELETE_BATCH (tests only):
 * that many a transaction and one batch a request, to see a delete proceed, and stop, in steps.
 */
const SLICE_EMPTYING = process.env.FLOE_TEST_SLICE_DELETE_BATCH
  ? { batch: Math.max(1, Number(process.env.FLOE_TEST_SLICE_DELETE_BATCH) || 1), budgetMs: 0 }
  : { batch: 1000, budgetMs: 10_000 };

export class CacheService {
  readonly reading: Reading;
  readonly uploads: Uploads;
  readonly realisations: RealisationService;
  /** Build logs, decided by the access to the outputs of their derivation. */
  readonly logs: BuildLogService;
  /** Debug info index entries, served once their NAR is committed, to readers of that NAR. */
  readonly debugInfo: DebugInfoService;
  /** NAR listings (`.ls`), generated from the stored NAR where its narinfo is served. */
  readonly listings: ListingService;
  private readonly mirroring: Mirroring;
  private readonly storage: Storage;
  private readonly orgs: OrgService;
  private readonly keys: OrgKeyService;
  private readonly sources: SourceService;

  constructor(deps: CacheDeps) {
    const { storage, authorizer, sources, keys, orgs, limits } = deps;
    this.storage = storage;
    this.orgs = orgs;
    this.keys = keys;
    this.sources = sources;
    const audit = deps.audit ?? NO_AUDIT;
    const expiryMs = deps.uploads?.expiryMs ?? UPLOAD_RECORD_TTL_MS;
    const uploadRecord = (target: SliceResource, fileName: (narHashNix32: string) => string): UploadRecord => ({
      sliceId: target.slice.id,
      fileName,
      expiresAt: new Date(Date.now() + expiryMs),
    });
    const perOrg = deps.ingestSlots?.slotsPerOrg ?? 4;
    // One less per token than per org: a token's stalled uploads always leave its org a slot.
    const perToken = deps.ingestSlots?.slotsPerToken ?? Math.max(1, perOrg - 1);
    const slots = deps.ingestSlots?.slots ?? 16;
    const ingestSlots = new FairSemaphore(slots, perOrg, perToken);
    // Small uploads (uploading.ts, SMALL_UPLOAD_NAR_BYTES) each hold little: four times as many run.
    const n = SMALL_UPLOAD_SLOT_FACTOR;
    const smallIngestSlots = new FairSemaphore(n * slots, n * perOrg, n * perToken);
    // Whole batch requests, each holding its body (BATCH_MAX_BODY_BYTES at most): as many as ingest
    // slots, so batches hold at most slots × 5 MiB, one org's at most perOrg × 5 MiB.
    const batchSlots = new FairSemaphore(slots, perOrg, perToken);
    const linker = new Linker(storage.db, authorizer, sources, deps.signers, deps.upstreams);
    const releaseSources = deps.releaseSources;
    this.reading = new Reading({ storage, authorizer, sources, audit, deploy: deps.deploy, releaseSources });
    // Writes through other workers (and replicas) drop the memo here at once.
    storage.changes.subscribe('paths', (payload) => {
      if (payload === '*') this.reading.forgetAll();
      else this.reading.forget(payload.split(','));
    });
    const changed = (hashParts: Iterable<string>) => this.forget(hashParts);
    const committer = new Committer({ storage, authorizer, keys, sources, linker, audit, changed });
    const upstreams = deps.upstreams;
    this.mirroring = new Mirroring({
      storage,
      orgs,
      authorizer,
      limits,
      linker,
      committer,
      ingestSlots,
      uploadRecord,
      upstreams,
    });
    this.uploads = new Uploads({
      storage,
      orgs,
      authorizer,
      limits,
      reading: this.reading,
      committer,
      mirroring: this.mirroring,
      ingestSlots,
      smallIngestSlots,
      batchSlots,
      uploadRecord,
      refusedHoldMs: deps.uploads?.refusedHoldMs ?? 3600_000,
    });
    this.realisations = new RealisationService({ storage, reading: this.reading, keys, signers: deps.signers, audit });
    this.logs = new BuildLogService({ storage, reading: this.reading, uploads: this.uploads, audit });
    this.debugInfo = new DebugInfoService({ storage, reading: this.reading, expiryMs, audit });
    this.listings = new ListingService({ storage, reading: this.reading });
  }

  /** The narinfo served to this caller, or on a miss what pull-through fetched; undefined = the one miss. */
  async findNarInfo(p: Principal, view: CacheView, hashPart: StorePathHash): Promise<string | undefined> {
    return (await this.reading.findNarInfo(p, view, hashPart)) ?? this.mirroring.pullThrough(p, view, hashPart);
  }

  /** Whether the caller may read or write this slice (slice URLs of others' slices look missing). */
  mayUseSlice(p: Principal, slice: SliceResource): boolean {
    return this.reading.mayUseSlice(p, slice);
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

  /**
   * Drops memoized narinfo lookups of these hash parts here and in every other worker or replica
   * (after a commit, GC or re-signing); resolves once the other workers have dropped theirs.
   */
  forget(hashParts: Iterable<string>): Promise<void> {
    const hashes = [...hashParts];
    this.reading.forget(hashes);
    if (hashes.length === 0) return Promise.resolve();
    // PostgreSQL notices carry at most 8000 bytes: a large set drops every memo instead.
    const payload = hashes.length > MAX_HASHES_PER_NOTICE ? '*' : hashes.join(',');
    return this.storage.changes.notify('paths', payload).catch(() => undefined);
  }

  /**
   * Removes the paths of one slice (with its realisations, build logs and debuginfo) for `floe
   * slice delete --force`, in bounded batches, each its own transaction under the GC lock as GC's
   * sweep does: a huge slice never holds the lock (or the SQLite writer) for long, and an
   * interrupted run leaves a smaller slice that the next run finishes. Paths go referrers first, so
   * what is left stays closed under references. Stops after the batch that passes `budgetMs` (0:
   * one batch) and says how many are left; the NARs and blobs left without a path are GC's to
   * collect after the grace period.
   */
  async emptySlice(
    sliceId: string,
    opts: { batch: number; budgetMs: number } = SLICE_EMPTYING,
  ): Promise<{ removed: number; remaining: number }> {
    const { db, dialect } = this.storage;
    const began = Date.now();
    const spent = () => Date.now() - began >= opts.budgetMs;
    // What hangs off the paths first, by primary key within the slice.
    const sides = [
      ['realisations', 'id'],
      ['build_logs', 'drv'],
      ['debuginfo', 'build_id'],
    ] as const;
    for (const [table, key] of sides) {
      for (;;) {
        const n = await db.transaction().execute(async (trx) => {
          await lockExclusiveForGc(trx, dialect);
          const batch = trx.selectFrom(table).select(key).where('slice_id', '=', sliceId).limit(opts.batch);
          const r = await trx
            .deleteFrom(table)
            .where('slice_id', '=', sliceId)
            .where(key, 'in', batch)
            .executeTakeFirst();
          return Number(r.numDeletedRows);
        });
        if (n < opts.batch) break;
        if (spent()) return { removed: 0, remaining: await this.slicePathCount(sliceId) };
      }
    }
    const rows = await db.selectFrom('paths').select(['hash_part', 'refs']).where('slice_id', '=', sliceId).execute();
    const order = referrersFirst(
      rows.map(
        (r) =>
          [
            r.hash_part,
            r.refs
              .split(' ')
              .filter(Boolean)
              .map((ref) => ref.slice(0, 32)),
          ] as const,
      ),
    );
    let removed = 0;
    for (let i = 0; i < order.length; i += opts.batch) {
      const hashes = order.slice(i, i + opts.batch);
      await db.transaction().execute(async (trx) => {
        await lockExclusiveForGc(trx, dialect);
        await trx.deleteFrom('paths').where('slice_id', '=', sliceId).where('hash_part', 'in', hashes).execute();
      });
      await this.forget(hashes);
      removed += hashes.length;
      if (removed < order.length && spent()) break;
    }
    return { removed, remaining: order.length - removed };
  }

  private async slicePathCount(sliceId: string): Promise<number> {
    const row = await this.storage.db
      .selectFrom('paths')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('slice_id', '=', sliceId)
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Re-renders every narinfo of an org with its current signing keys (resign.ts). */
  async resignOrg(orgId: string, onProgress?: (done: number) => void): Promise<number> {
    const keys = await this.keys.signing(orgId);
    return resignOrg(this.storage.db, orgId, keys, (hashes) => this.forget(hashes), onProgress);
  }
}
