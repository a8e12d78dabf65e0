/**
 * Uploading: the entry points of writes (`nix copy`'s `PUT nar/…` and `PUT <hash>.narinfo`,
 * Floe's batch upload, the push plan) and their admission. A write is decided in two steps, each
 * once: `writeTarget` decides whether the caller may write to the slice at all (before any body is
 * read, so a refused upload is answered before it is sent) and hands out a `WriteTarget`, which the
 * entry points take instead of deciding again; the commit then decides the one path, now that its
 * narinfo (and so its verified signers) is known (committing.ts).
 * Over 350 lines: every write entry point shares the admission, receive and refused-hold steps,
 * and the batch upload must run through exactly those (not a copy of them).
 */
import { FloeError, Forbidden, InvalidInput, NotFound, TooLarge, Unauthenticated } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { formatNix32Hash, hashesEqual } from '../nix/hash.js';
import { parseNarInfo } from '../nix/narinfo.js';
import { encodeNix32 } from '../nix/nix32.js';
import { type StorePathBase, type StorePathHash, hashPartOf } from '../nix/store-path.js';
import { DEFAULT_SLICE, type OrgService } from '../org/service.js';
import type { SliceResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import type { Storage } from '../storage/types.js';
import { orgBytesWithPending } from './accounting.js';
import { type CommitResult, type Committer, type PathMetadata, metadataOf } from './committing.js';
import { type Compression, compressionFromName } from './compression.js';
import { type IngestLimits, type IngestedNar, type UploadRecord, ingestNar, ingestMember } from './ingest.js';
import type { Mirroring } from './mirroring.js';
import { quotaFull } from './quota.js';
import type { Reading } from './reading.js';
import type { FairSemaphore } from './semaphore.js';
import type { CacheView } from './view.js';

declare const ADMITTED: unique symbol;
/** A slice the caller may write to, as `Uploads.writeTarget` decided; nothing else makes one. */
export type WriteTarget = SliceResource & { readonly [ADMITTED]: true };

/** The answer to "which of these paths must I upload?" */
export interface PushPlan {
  /** Absent from the target slice: the client uploads these. */
  missing: StorePathBase[];
  /** Were absent, and the server fetched verified copies from a trusted upstream into the slice. */
  mirrored: StorePathBase[];
  /** An upstream offered these but its copy failed verification (they stay in `missing`). */
  refused: Array<{ path: StorePathBase; reason: string }>;
}

export interface UploadsDeps {
  storage: Storage;
  orgs: OrgService;
  authorizer: Authorizer;
  limits: IngestLimits;
  reading: Reading;
  committer: Committer;
  mirroring: Mirroring;
  /**
   * Uploads wait for a slot rather than fail: a 5xx or 429 would make old Nix retry without a body.
   * Slots are shared fairly between orgs, so one org's stalled uploads cannot block another's.
   */
  ingestSlots: FairSemaphore;
  /** The slots of batch uploads that declare a small NAR (SMALL_UPLOAD_NAR_BYTES), kept apart. */
  smallIngestSlots: FairSemaphore;
  /**
   * The slots of whole batch requests (`POST …/paths/batch`), held from before the body is read to
   * the answer: a batch body is held in memory whole, so these bound that memory per org, per token
   * and in all. Apart from the ingest slots, which a batch's entries take while holding one of
   * these (one pool for both would deadlock once every slot held a batch waiting for its entries).
   */
  batchSlots: FairSemaphore;
  uploadRecord: (target: SliceResource, fileName: (narHashNix32: string) => string) => UploadRecord;
  /** How long the NAR of a refused batch upload still counts against its org's quota before GC may take it. */
  refusedHoldMs: number;
}

/** A NAR this slice uploaded and may still commit. */
interface PendingUpload {
  narHash: string;
  narSize: number;
}

/**
 * A batch upload declaring a NAR up to this size is small: it queues for a slot of its own pool,
 * with SMALL_UPLOAD_SLOT_FACTOR times the slots. Its cost is bounded by what it declared (decoding
 * stops once the NAR passes its declared size, and its body may not be much larger either), while
 * its time in a slot is mostly waiting (a thread hop, two commits, fsyncs): with a pool shared
 * with large uploads, a push of many small paths ran three at a time and left the cores idle.
 */
export const SMALL_UPLOAD_NAR_BYTES = 256 << 10;
export const SMALL_UPLOAD_SLOT_FACTOR = 4;
/** The body of a small upload: its NAR, compressed or not, with room for a codec's overhead. */
const SMALL_UPLOAD_BODY_BYTES = 2 * SMALL_UPLOAD_NAR_BYTES + (64 << 10);

/** The upload record's name of a batch upload's NAR. */
const batchFileName = (narHashNix32: string) => `batch/${narHashNix32}`;

/** A body already held whole. */
async function* once(buf: Buffer): AsyncGenerator<Buffer> {
  yield buf;
}

const CLIENT_NAR_FILE = /^[0-9a-zA-Z][0-9a-zA-Z._+-]{0,200}$/;
const NEEDS_WRITE_TOKEN = 'uploading needs a token with the write scope (netrc password or Bearer)';

export class Uploads {
  constructor(private readonly deps: UploadsDeps) {}

  /**
   * The slice a write goes to, decided once per request. Slice URLs name it; on the unified URL it
   * is the token's only slice if it is limited to one, else its org's default slice.
   */
  async writeTarget(p: Principal, view: CacheView): Promise<WriteTarget> {
    let target: SliceResource | undefined;
    if (view.kind === 'slice') {
      target = view.slice;
    } else {
      if (p.kind === 'anonymous') throw new Unauthenticated(NEEDS_WRITE_TOKEN);
      if (p.kind === 'server-admin') {
        const why = 'the server admin token has no org: upload to <server>/cache/<org>/<slice>';
        throw new InvalidInput('cache URL', why);
      }
      const sliceName = p.slices?.length === 1 ? p.slices[0]! : DEFAULT_SLICE;
      target = await this.deps.orgs.findSlice(p.org.name, sliceName);
      if (!target) {
        const why = `the token's slice ${JSON.stringify(sliceName)} does not exist in org ${p.org.name}`;
        throw new InvalidInput('slice', why);
      }
    }
    const decision = this.deps.authorizer.authorize(p, 'cache.write', target);
    if (!decision.allowed) {
      if (p.kind === 'anonymous') throw new Unauthenticated(NEEDS_WRITE_TOKEN);
      throw new Forbidden(`not allowed to write to ${target.org.name}/${target.slice.name}: ${decision.reason}`);
    }
    return target as WriteTarget;
  }

  /**
   * The write target named by a slice URL (`undefined`: the URL names no slice), decided once: a
   * caller allowed to write gets it on that one decision; a refused caller gets the refusal with its
   * reason if it may see the slice, else the same 404 as for a slice that does not exist.
   */
  async writeTargetAt(p: Principal, slice: SliceResource | undefined): Promise<WriteTarget> {
    if (slice && this.deps.authorizer.authorize(p, 'cache.write', slice, {}, { quiet: true }).allowed)
      return slice as WriteTarget;
    if (!slice || !this.deps.reading.mayUseSlice(p, slice)) throw new NotFound();
    return this.writeTarget(p, { kind: 'slice', slice }); // refused again, recorded, with the reason
  }

  /**
   * The write target of a NAR upload whose body has not been read yet, refused (413) when its org
   * is already at its quota, counting the NARs it uploaded that still wait for a narinfo.
   */
  async admitNarUpload(p: Principal, view: CacheView): Promise<WriteTarget> {
    const target = await this.writeTarget(p, view);
    await this.refuseIfFull(target, 'NARs uploaded without a narinfo (they count until committed or expired) included');
    return target;
  }

  /**
   * HEAD on a NAR file, answered for the caller: true if it is a NAR the caller may read, or a file
   * the caller's target slice uploaded (Nix's `nix copy` skips re-uploading those). Knowing a hash
   * gives nothing: another org's upload of the same file is not reported.
   */
  async hasNarFile(p: Principal, view: CacheView, fileName: string): Promise<boolean> {
    if (await this.deps.reading.readableNar(p, view, fileName)) return true;
    const target = await this.writeTarget(p, view).catch(() => undefined);
    if (!target) return false;
    return (await this.pendingUpload(target, fileName)) !== undefined;
  }

  /** `PUT nar/<file>` from `nix copy`: verify and store, remember that this slice uploaded the file. */
  async uploadNarFile(
    p: Principal,
    target: WriteTarget,
    fileName: string,
    body: AsyncIterable<Buffer>,
    signal?: AbortSignal,
    sizeHint?: number,
  ): Promise<IngestedNar> {
    if (!CLIENT_NAR_FILE.test(fileName)) {
      throw new InvalidInput('NAR file name', `${JSON.stringify(fileName.slice(0, 80))} is not a valid file name`);
    }
    const ext = fileName.includes('.nar.') ? fileName.slice(fileName.lastIndexOf('.') + 1) : 'none';
    const { storage, limits, ingestSlots, uploadRecord } = this.deps;
    // The upload record is written with the NAR's row, in one transaction: no GC can slip between.
    const record = uploadRecord(target, () => fileName);
    const compression = compressionFromName(ext);
    return ingestSlots.run(
      target.org.id,
      () => ingestNar(body, compression, storage, limits, signal, undefined, sizeHint, record),
      ingestMember(p),
    );
  }

  /** `PUT <hash>.narinfo` from `nix copy`: the NAR must be one this slice uploaded, or one the caller can read. */
  async uploadNarInfo(p: Principal, target: WriteTarget, hashPart: StorePathHash, text: string): Promise<CommitResult> {
    const info = parseNarInfo(text);
    if (hashPartOf(info.storePath) !== hashPart) {
      throw new InvalidInput('narinfo', `StorePath ${info.storePath} does not match the file name ${hashPart}.narinfo`);
    }
    const url = info.url.split('?')[0]!;
    if (!url.startsWith('nar/')) {
      throw new InvalidInput('URL', `expected "nar/<file>", got ${JSON.stringify(info.url.slice(0, 80))}`);
    }
    const fileName = url.slice(4);
    const claimed = encodeNix32(info.narHash.digest);
    let have = await this.pendingUpload(target, fileName);
    const readable = have ? undefined : await this.deps.reading.readableNar(p, { kind: 'unified' }, fileName);
    if (readable) {
      const nar = await this.deps.storage.db
        .selectFrom('nars')
        .select(['nar_hash', 'nar_size'])
        .where('nar_hash', '=', readable.narHash)
        .executeTakeFirst();
      have = nar && { narHash: nar.nar_hash, narSize: Number(nar.nar_size) };
    }
    if (!have) {
      const where = `${target.org.name}/${target.slice.name}`;
      const why = `no NAR was uploaded as ${JSON.stringify(url)} to ${where}; upload the NAR before its narinfo`;
      throw new InvalidInput('URL', why);
    }
    if (have.narHash !== claimed) {
      const claims = formatNix32Hash(info.narHash);
      const has = `sha256:${have.narHash}`;
      throw new InvalidInput('NarHash', `mismatch: narinfo claims ${claims}, the uploaded NAR has ${has}`);
    }
    if (have.narSize !== info.narSize) {
      const why = `mismatch: narinfo claims ${info.narSize}, the uploaded NAR has ${have.narSize} bytes`;
      throw new InvalidInput('NarSize', why);
    }
    const meta = metadataOf(info);
    await this.deps.mirroring.ensureReferences(p, target, meta);
    return this.deps.committer.commit(p, target, meta);
  }

  /** Floe's batch upload: metadata and NAR in one request, verified against each other. */
  async uploadPath(
    p: Principal,
    target: WriteTarget,
    meta: PathMetadata,
    body: AsyncIterable<Buffer>,
    declared: Compression | undefined,
    signal?: AbortSignal,
  ): Promise<{ result: CommitResult; nar: IngestedNar }> {
    const nar = await this.receivePath(p, target, meta, body, declared, signal);
    return { result: await this.commitReceived(p, target, meta, nar), nar };
  }

  /**
   * Runs `work` (reading a batch body, then `uploadPaths`) holding a batch slot of the target's
   * org, as this token: queued, not refused, when the org's or the server's slots are all held.
   */
  inBatchSlot<T>(p: Principal, target: WriteTarget, work: () => Promise<T>): Promise<T> {
    return this.deps.batchSlots.run(target.org.id, work, ingestMember(p));
  }

  /**
   * Several small paths of one request (`POST …/paths/batch`), each verified and committed as
   * `uploadPath` does it, by the same steps: their NARs are received concurrently (each in a
   * small-upload slot, pending for the slice from the moment it is stored, its blob committed
   * before its step ends), then their references ensured and their commits made in the order given
   * (a path may reference one before it), in one transaction when none is refused
   * (`Committer.commitAll`). An entry refused at any step is refused alone, with its error; the
   * others go on. Errors that are not the client's (not a FloeError) end the batch.
   */
  async uploadPaths(
    p: Principal,
    target: WriteTarget,
    entries: Array<{ meta: PathMetadata; nar: Buffer }>,
    signal?: AbortSignal,
  ): Promise<Array<{ result: CommitResult; nar: IngestedNar } | { refused: FloeError }>> {
    const refusal = (err: unknown): FloeError => {
      if (err instanceof FloeError) return err;
      throw err;
    };
    const received = await Promise.all(
      entries.map((e) => this.receivePath(p, target, e.meta, once(e.nar), 'none', signal).catch(refusal)),
    );
    // References to earlier entries are committed with them: only the others may need an upstream.
    const earlier = new Set<string>();
    const ready: Array<{ i: number; nar: IngestedNar }> = [];
    for (const [i, e] of entries.entries()) {
      const nar = received[i]!;
      if (!(nar instanceof FloeError)) {
        const outside = e.meta.references.filter((r) => !earlier.has(r));
        const ensured = await this.deps.mirroring
          .ensureReferences(p, target, { ...e.meta, references: outside })
          .catch(refusal);
        if (ensured instanceof FloeError) {
          received[i] = ensured;
          await this.holdRefused(target, nar);
        } else ready.push({ i, nar });
        earlier.add(e.meta.storePath);
      }
    }
    const committed = await this.deps.committer.commitAll(
      p,
      target,
      ready.map((x) => entries[x.i]!.meta),
    );
    // Every entry is either refused before its commit (a FloeError in `received`) or ready.
    const outcomes = new Map<number, { result: CommitResult; nar: IngestedNar } | { refused: FloeError }>();
    for (const [k, x] of ready.entries()) {
      const r = committed[k]!;
      if (r instanceof FloeError) {
        await this.holdRefused(target, x.nar);
        outcomes.set(x.i, { refused: r });
      } else outcomes.set(x.i, { result: r, nar: x.nar });
    }
    return received.map((x, i) => (x instanceof FloeError ? { refused: x } : outcomes.get(i)!));
  }

  /**
   * The first step of a batch upload: refuse when the org is full, then verify and store the NAR
   * (pending for this slice from the moment it is stored, so GC leaves it alone until its commit or
   * the record's expiry) and check it against the metadata. A refusal here holds it as refused.
   */
  private async receivePath(
    p: Principal,
    target: WriteTarget,
    meta: PathMetadata,
    body: AsyncIterable<Buffer>,
    declared: Compression | undefined,
    signal?: AbortSignal,
  ): Promise<IngestedNar> {
    const { storage, uploadRecord } = this.deps;
    // Refuse before reading the body when the org is already full and this path is new to the slice.
    // (Re-pushing a path the slice holds adds nothing: it passes even over quota.)
    const adds = async () => (await this.absentFrom(target, [meta.storePath])).length > 0;
    await this.refuseIfFull(target, 'NARs uploaded without a narinfo and recently refused uploads included', adds);
    // Pending from the moment it is stored (so GC leaves it alone until the commit below).
    const record = uploadRecord(target, batchFileName);
    const small = meta.narSize <= SMALL_UPLOAD_NAR_BYTES;
    const slots = small ? this.deps.smallIngestSlots : this.deps.ingestSlots;
    const limits = small
      ? { ...this.deps.limits, maxUploadBytes: Math.min(this.deps.limits.maxUploadBytes, SMALL_UPLOAD_BODY_BYTES) }
      : this.deps.limits;
    const nar = await slots.run(
      target.org.id,
      () => ingestNar(body, declared, storage, limits, signal, meta.narSize, undefined, record),
      ingestMember(p),
    );
    try {
      if (!hashesEqual(nar.narHash, meta.narHash)) {
        const [claimed, has] = [formatNix32Hash(meta.narHash), formatNix32Hash(nar.narHash)];
        const why = `mismatch: claimed ${claimed}, the uploaded NAR has ${has}`;
        throw new InvalidInput('narHash', why);
      }
      if (nar.narSize !== meta.narSize) {
        const why = `mismatch: claimed ${meta.narSize}, the uploaded NAR has ${nar.narSize} bytes`;
        throw new InvalidInput('narSize', why);
      }
    } catch (err) {
      await this.holdRefused(target, nar);
      throw err;
    }
    return nar;
  }

  /** The second step: the references, then the commit (which authorizes the path); a refusal holds the NAR. */
  private async commitReceived(
    p: Principal,
    target: WriteTarget,
    meta: PathMetadata,
    nar: IngestedNar,
  ): Promise<CommitResult> {
    try {
      await this.deps.mirroring.ensureReferences(p, target, meta);
      return await this.deps.committer.commit(p, target, meta);
    } catch (err) {
      await this.holdRefused(target, nar);
      throw err;
    }
  }

  /**
   * A refused upload's NAR still counts against the org for a while (else refused uploads would
   * store bytes free of quota until GC), then GC takes it.
   */
  private async holdRefused(target: WriteTarget, nar: IngestedNar): Promise<void> {
    const expires = new Date(Date.now() + this.deps.refusedHoldMs).toISOString();
    await this.deps.storage.db
      .updateTable('nar_uploads')
      .set({ expires_at: expires })
      .where('slice_id', '=', target.slice.id)
      .where('file_name', '=', batchFileName(encodeNix32(nar.narHash.digest)))
      .execute()
      .catch(() => undefined);
  }

  /**
   * Store paths (base names) absent from the target. Paths a trusted upstream serves (with a valid
   * signature and the signed NAR) are fetched by the server into the target first, and reported as
   * `mirrored` instead of `missing`: the client uploads only its own paths.
   */
  async missingPaths(p: Principal, target: WriteTarget, paths: StorePathBase[]): Promise<PushPlan> {
    const absent = await this.absentFrom(target, paths);
    if (absent.length === 0 || !(await this.deps.mirroring.available())) {
      return { missing: absent, mirrored: [], refused: [] };
    }
    const result = await this.deps.mirroring.forWriter(p, target, absent);
    const mirrored = new Set<string>(result.mirrored);
    return {
      missing: absent.filter((x) => !mirrored.has(x)),
      mirrored: absent.filter((x) => mirrored.has(x)),
      refused: result.refused.filter((r) => absent.includes(r.path)),
    };
  }

  /** Hash parts absent from the target (Attic's get-missing-paths sends no names). */
  async missingHashes(target: WriteTarget, hashes: StorePathHash[]): Promise<StorePathHash[]> {
    const present = new Set((await this.storedIn(target, hashes)).map((r) => r.hash_part));
    return hashes.filter((h) => !present.has(h));
  }

  private async absentFrom(target: SliceResource, paths: StorePathBase[]): Promise<StorePathBase[]> {
    const stored = await this.storedIn(
      target,
      paths.map((x) => hashPartOf(x)),
    );
    const present = new Set(stored.map((r) => r.store_path));
    return paths.filter((x) => !present.has(x));
  }

  /** The target's paths among these hash parts (in chunks: the limit on query parameters). */
  private async storedIn(
    target: SliceResource,
    hashes: string[],
  ): Promise<Array<{ hash_part: string; store_path: string }>> {
    const rows: Array<{ hash_part: string; store_path: string }> = [];
    for (let i = 0; i < hashes.length; i += 500) {
      const chunk = await this.deps.storage.db
        .selectFrom('paths')
        .select(['hash_part', 'store_path'])
        .where('slice_id', '=', target.slice.id)
        .where('hash_part', 'in', hashes.slice(i, i + 500))
        .execute();
      rows.push(...chunk);
    }
    return rows;
  }

  /** What `target` uploaded as `fileName` and may still commit. */
  private async pendingUpload(target: SliceResource, fileName: string): Promise<PendingUpload | undefined> {
    const row = await this.deps.storage.db
      .selectFrom('nar_uploads')
      .select(['nar_hash', 'nar_size'])
      .where('slice_id', '=', target.slice.id)
      .where('file_name', '=', fileName)
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    return row && { narHash: row.nar_hash, narSize: Number(row.nar_size) };
  }

  /**
   * 413 when the org has a quota and is at it, pending uploads counted (`what` says which, for the
   * message); `adds` is asked only when there is a quota: whether this upload would add anything.
   */
  private async refuseIfFull(target: SliceResource, what: string, adds = async () => true): Promise<void> {
    const db = this.deps.storage.db;
    const settings = await db
      .selectFrom('org_settings')
      .select('quota_bytes')
      .where('org_id', '=', target.org.id)
      .executeTakeFirst();
    if (settings?.quota_bytes == null || !(await adds())) return;
    const full = quotaFull(target.org.name, Number(settings.quota_bytes), await orgBytesWithPending(db, target.org.id));
    if (full) throw new TooLarge(`${full}, ${what}`);
  }
}
