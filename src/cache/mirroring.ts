/**
 * Mirroring: the server fetches paths from trusted upstreams into a slice itself (upstream.ts
 * talks to the upstreams; upstream-verify.ts checks what they send). Two reasons to fetch:
 * - for a writer (`floe push`'s missing query, or a commit's references nobody uploaded): each
 *   fetched path is committed as that writer's write, decided by `cache.write` like an upload;
 * - pull-through, on an org member's narinfo miss: the server's own fill (`Committer.fillOnMiss`),
 *   which the reader's write rights do not decide, because the reader only asked to read.
 * A path is mirrored only if its whole closure can be; commits go dependencies first.
 */
import { InvalidInput } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import type { NarInfo } from '../nix/narinfo.js';
import { inClosureOrder } from '../nix/closure-order.js';
import type { StorePathBase, StorePathHash } from '../nix/store-path.js';
import { DEFAULT_SLICE, type OrgService } from '../org/service.js';
import type { SliceResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import type { Storage } from '../storage/types.js';
import { type CommitResult, type Committer, type PathMetadata, metadataOf } from './committing.js';
import { compressionFromName } from './compression.js';
import { type IngestLimits, type UploadRecord, ingestNar, ingestMember } from './ingest.js';
import type { Linker } from './links.js';
import type { FairSemaphore } from './semaphore.js';
import type { Upstream, UpstreamService } from './upstream.js';
import { checkFetchedNar } from './upstream-verify.js';
import type { CacheView } from './view.js';

export interface MirrorResult {
  mirrored: StorePathBase[];
  refused: Array<{ path: StorePathBase; reason: string }>;
}

export interface MirroringDeps {
  storage: Storage;
  orgs: OrgService;
  authorizer: Authorizer;
  limits: IngestLimits;
  linker: Linker;
  committer: Committer;
  ingestSlots: FairSemaphore;
  /** The record that keeps a fetched NAR this slice's pending upload until its commit. */
  uploadRecord: (target: SliceResource, fileName: (narHashNix32: string) => string) => UploadRecord;
  upstreams?: UpstreamService | undefined;
}

/** How a fetched path enters the target: as the writer's write, or as the server's own fill. */
type Commit = (meta: PathMetadata) => Promise<CommitResult>;

/** How long a pull-through miss is remembered, so a substituter's probing does not hammer upstreams. */
const MISS_MEMO_MS = 60_000;

export class Mirroring {
  private readonly upstreamMisses = new Map<string, number>();

  constructor(private readonly deps: MirroringDeps) {}

  /** Whether any upstream is configured (else there is nothing to ask). */
  async available(): Promise<boolean> {
    return this.deps.upstreams !== undefined && (await this.deps.upstreams.list()).length > 0;
  }

  /** Fetches `wanted` (and what of their closures the target lacks) for a writer, as its writes. */
  async forWriter(p: Principal, target: SliceResource, wanted: StorePathBase[]): Promise<MirrorResult> {
    const upstreams = this.deps.upstreams ? await this.deps.upstreams.list() : [];
    return this.fetchInto(p, target, wanted, upstreams, (meta) => this.deps.committer.commit(p, target, meta));
  }

  /** Before a commit: references neither in the slice nor linkable into it are fetched from upstreams. */
  async ensureReferences(p: Principal, target: SliceResource, meta: PathMetadata): Promise<void> {
    if (!(await this.available())) return;
    const refs = [...new Set(meta.references)].filter((r) => r !== meta.storePath);
    const there = await this.deps.linker.presentOrLinkable(p, target, refs, await this.deps.linker.context(target));
    const lacking = refs.filter((r) => !there.has(r));
    if (lacking.length > 0) await this.forWriter(p, target, lacking);
  }

  /**
   * Pull-through: on a miss for an org member, a path a pull-through upstream serves is stored in
   * the member's org (the default slice, the token's only slice, or the org's own slice in the
   * URL) and its narinfo returned. Anonymous and deploy-only readers never make the server fetch.
   */
  async pullThrough(p: Principal, view: CacheView, hashPart: StorePathHash): Promise<string | undefined> {
    const { upstreams: service, orgs, authorizer, storage } = this.deps;
    if (p.kind !== 'token' || p.deploy || !service) return undefined;
    const upstreams = (await service.list()).filter((u) => u.pullThrough);
    if (upstreams.length === 0) return undefined;
    const missedAt = this.upstreamMisses.get(hashPart);
    if (missedAt !== undefined && Date.now() - missedAt < MISS_MEMO_MS) return undefined;
    let target: SliceResource | undefined;
    if (view.kind === 'slice') target = view.slice.org.id === p.org.id ? view.slice : undefined;
    else target = await orgs.findSlice(p.org.name, p.slices?.length === 1 ? p.slices[0]! : DEFAULT_SLICE);
    if (!target || !authorizer.authorize(p, 'cache.read', target).allowed) return undefined;
    const found = await service.lookup(hashPart, upstreams);
    if (found.kind !== 'found') {
      if (this.upstreamMisses.size > 100_000) this.upstreamMisses.clear();
      this.upstreamMisses.set(hashPart, Date.now());
      return undefined;
    }
    const into = target;
    const fill = (meta: PathMetadata) => this.deps.committer.fillOnMiss(p, into, meta);
    const result = await this.fetchInto(p, into, [found.info.storePath], upstreams, fill);
    if (!result.mirrored.includes(found.info.storePath)) return undefined;
    const row = await storage.db
      .selectFrom('paths')
      .select('narinfo')
      .where('slice_id', '=', into.slice.id)
      .where('hash_part', '=', hashPart)
      .executeTakeFirst();
    return row?.narinfo;
  }

  /**
   * Discovers the closure of `wanted` on the upstreams (paths present in the target or linkable
   * into it stop the walk), verifies each narinfo's signature and NAR hash, and commits each path
   * with `commit`, dependencies first.
   */
  private async fetchInto(
    p: Principal,
    target: SliceResource,
    wanted: StorePathBase[],
    upstreams: Upstream[],
    commit: Commit,
  ): Promise<MirrorResult> {
    const service = this.deps.upstreams;
    if (upstreams.length === 0 || !service) return { mirrored: [], refused: [] };
    const refused = new Map<StorePathBase, string>();
    const found = new Map<StorePathBase, { upstream: Upstream; info: NarInfo }>();
    const failed = new Set<StorePathBase>();
    const settled = new Set<StorePathBase>();
    // What may be linked into the target is decided once for the whole walk.
    const linkCtx = await this.deps.linker.context(target);
    const isWanted = new Set<StorePathBase>(wanted);
    // Breadth-first over the closure, one query per level for what the target has or can link.
    let frontier = [...new Set(wanted)];
    while (frontier.length > 0) {
      for (const path of frontier) settled.add(path);
      const probe = frontier.filter((x) => !isWanted.has(x));
      const there = await this.deps.linker.presentOrLinkable(p, target, probe, linkCtx);
      const next: StorePathBase[] = [];
      await mapLimit(
        frontier.filter((x) => !there.has(x)),
        8,
        async (path) => {
          const r = await service.lookup(path, upstreams);
          if (r.kind === 'found') {
            found.set(path, r);
            for (const ref of r.info.references) if (ref !== path && !settled.has(ref)) next.push(ref);
          } else {
            failed.add(path);
            if (r.kind === 'refused') refused.set(path, r.reason);
          }
        },
      );
      frontier = [...new Set(next)].filter((x) => !settled.has(x));
    }
    // A path whose closure has a hole cannot be mirrored: failed lookups give up their dependents.
    const mirrored: StorePathBase[] = [];
    const nodes = [...found].map(([path, { info }]) => [path, info.references] as const);
    await inClosureOrder(
      nodes,
      4,
      async (path) => {
        const { upstream, info } = found.get(path as StorePathBase)!;
        try {
          await this.fetchOne(p, target, upstream, info, commit);
          mirrored.push(path as StorePathBase);
          return true;
        } catch (err) {
          refused.set(path as StorePathBase, `from upstream ${upstream.name}: ${(err as Error).message}`);
          return false;
        }
      },
      undefined,
      failed,
    );
    return { mirrored, refused: [...refused].map(([path, reason]) => ({ path, reason })) };
  }

  private async fetchOne(
    p: Principal,
    target: SliceResource,
    upstream: Upstream,
    info: NarInfo,
    commit: Commit,
  ): Promise<void> {
    const { storage, limits, ingestSlots, uploadRecord } = this.deps;
    const body = await this.deps.upstreams!.openNar(upstream, info);
    const record = uploadRecord(target, (h) => `upstream/${h}`);
    const compression = compressionFromName(info.compression);
    const nar = await ingestSlots.run(
      target.org.id,
      () => ingestNar(body, compression, storage, limits, undefined, info.narSize, undefined, record),
      ingestMember(p),
    );
    const bad = checkFetchedNar(info, nar);
    if (bad) throw new InvalidInput('upstream', bad);
    await commit({ ...metadataOf(info), origin: `upstream:${upstream.name}` });
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
