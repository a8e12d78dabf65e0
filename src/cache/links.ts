/**
 * Links: a reference the target slice lacks enters it from another slice, without an upload, only
 * on a ground `link-policy.ts` accepts, and only as a whole closure from one source the caller can
 * read. Each path that enters is decided by `cache.write` with its own verified signers, like an
 * upload; one refusal fails the commit that needed it.
 */
import { Forbidden } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import type { SigningKey } from '../nix/signing.js';
import { type StorePathBase, hashPartOf } from '../nix/store-path.js';
import type { SliceResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import type { Schema, Storage } from '../storage/types.js';
import { type Candidate, candidateQuery, resourceOf, slicesHolding } from './candidates.js';
import { type LinkContext, type LinkGround, linkGround, verifiedSignerNames } from './link-policy.js';
import { renderNarInfo, renderableRow } from './render.js';
import type { SignerService } from './signers.js';
import type { SourceService } from './sources.js';
import type { UpstreamService } from './upstream.js';

/** What a commit decides links with, read before its transaction (SQLite has one connection). */
export interface Linking {
  ctx: LinkContext;
  signingKeys: SigningKey[];
  viewOrder: ReadonlyMap<string, number>;
}

/** Reference probes are decided like reads but not audited one by one. */
const QUIET = { quiet: true };

/** A stored path row's columns, as `renderableRow` reads them. */
type Renderable = Parameters<typeof renderableRow>[0];

export class Linker {
  constructor(
    private readonly db: Storage['db'],
    private readonly authorizer: Authorizer,
    private readonly sources: SourceService,
    private readonly signers?: SignerService,
    private readonly upstreams?: UpstreamService,
  ) {}

  /** What decides links into `target`: its trusted source slices, its org's signers, the upstreams' keys. */
  async context(target: SliceResource): Promise<LinkContext> {
    return this.withSources(this.db, target, await this.signersAndUpstreams(target));
  }

  /**
   * The parts of the context a commit needs before its transaction (the org's signers decide the
   * write itself); the trusted sources are read inside it, and only if a reference must be linked
   * (`withSources`): most commits find every reference in the target already.
   */
  async signersAndUpstreams(target: SliceResource): Promise<Omit<LinkContext, 'trustedSources'>> {
    return {
      orgSigners: this.signers ? await this.signers.trustedKeys(target.org.id) : [],
      upstreamKeys: this.upstreams ? (await this.upstreams.list()).flatMap((u) => u.keys) : [],
    };
  }

  /** The whole context, its trusted sources read through `db` (a commit's transaction). */
  async withSources(
    db: Storage['db'],
    target: SliceResource,
    rest: Omit<LinkContext, 'trustedSources'>,
  ): Promise<LinkContext> {
    const trustedSources = await this.sources.trustedLinkSources(db, {
      orgId: target.org.id,
      sliceId: target.slice.id,
    });
    return { trustedSources, ...rest };
  }

  /**
   * Which of `paths` are in the target slice or linkable into it at commit: one query for all of
   * them (in chunks of 500, the bound on query parameters), then decided row by row.
   */
  async presentOrLinkable(
    p: Principal,
    target: SliceResource,
    paths: readonly StorePathBase[],
    ctx: LinkContext,
  ): Promise<Set<StorePathBase>> {
    const wanted = new Set(paths);
    const rowsOf = new Map<StorePathBase, Array<Candidate & Renderable>>();
    const hashes = [...new Set(paths.map((x) => hashPartOf(x)))];
    for (let i = 0; i < hashes.length; i += 500) {
      const rows = await candidateQuery(this.db)
        .select([
          'paths.store_path',
          'paths.nar_hash',
          'paths.nar_size',
          'paths.refs',
          'paths.deriver',
          'paths.ca',
          'paths.sigs',
        ])
        .where('paths.hash_part', 'in', hashes.slice(i, i + 500))
        .execute();
      for (const row of rows) {
        const path = row.store_path as StorePathBase;
        if (wanted.has(path)) rowsOf.set(path, [...(rowsOf.get(path) ?? []), row]);
      }
    }
    const found = new Set<StorePathBase>();
    for (const [path, rows] of rowsOf) {
      const linkable = (row: Candidate & Renderable) =>
        linkGround(renderableRow(row), row.slice_id, ctx) !== undefined &&
        this.authorizer.authorize(p, 'cache.read', resourceOf(row), {}, QUIET).allowed;
      if (rows.some((row) => row.slice_id === target.slice.id) || rows.some(linkable)) found.add(path);
    }
    return found;
  }

  /**
   * Links `ref` and the part of its closure the target lacks from the first source (trusted
   * sources first, then the caller's view order) from which every such path may enter. False
   * when no source qualifies: the reference is missing.
   */
  async linkClosure(
    trx: Storage['db'],
    p: Principal,
    target: SliceResource,
    ref: StorePathBase,
    touched: Set<string>,
    linking: Linking,
    uploader: string,
  ): Promise<boolean> {
    const { ctx, signingKeys, viewOrder } = linking;
    const holders = (await slicesHolding(trx, ref)).filter((row) => row.slice_id !== target.slice.id);
    if (holders.length === 0) return false;
    const rank = (row: Candidate) =>
      ctx.trustedSources.has(row.slice_id) ? -1 : (viewOrder.get(row.slice_id) ?? Number.MAX_SAFE_INTEGER);
    holders.sort((a, b) => rank(a) - rank(b));
    for (const source of holders) {
      if (!this.authorizer.authorize(p, 'cache.read', resourceOf(source), {}, QUIET).allowed) continue;
      const plan = await this.planLink(trx, target, source, ref, ctx);
      if (!plan) continue;
      for (const { row, ground } of plan) {
        const decision = this.authorizer.authorize(p, 'cache.write', target, {
          narinfoSignatures: verifiedSignerNames(renderableRow(row), ctx.orgSigners),
        });
        if (!decision.allowed) {
          const from = ground === 'trusted-source' ? `${source.org_name}/${source.slice_name}` : 'another slice';
          throw new Forbidden(
            `not allowed to write ${row.store_path} (a reference, linked from ${from}) to ${target.org.name}/${target.slice.name}: ${decision.reason}`,
          );
        }
      }
      for (const { row, ground } of plan) {
        touched.add(row.hash_part);
        const nar = await trx
          .selectFrom('nars')
          .select(['nar_hash', 'file_hash', 'file_size'])
          .where('nar_hash', '=', row.nar_hash)
          .executeTakeFirstOrThrow();
        // Unsigned fields (`Provenance:` …) are the uploader's word: a copy from a source the target
        // trusts keeps them; a path that is safe whatever its source enters without them, since
        // its content address or signature vouches for the content, not for what its uploader added.
        const extra_fields = ground === 'trusted-source' ? (row.extra_fields ?? null) : null;
        const renderable = { ...renderableRow(row), extraFields: undefined };
        const narinfo = renderNarInfo(extra_fields ? renderableRow(row) : renderable, nar, signingKeys);
        await trx
          .insertInto('paths')
          .values({
            ...row,
            extra_fields,
            slice_id: target.slice.id,
            narinfo,
            uploaded_by: `link:${ground}:${uploader}`,
            created_at: new Date().toISOString(),
          })
          .execute();
      }
      return true;
    }
    return false;
  }

  /** The rows of `ref`'s closure in `source` that `target` lacks, each with its link ground; undefined if one has none. */
  private async planLink(
    trx: Storage['db'],
    target: SliceResource,
    source: Candidate,
    ref: StorePathBase,
    ctx: LinkContext,
  ) {
    // Slices are closure-complete, so the whole closure of `ref` is in the source slice.
    const plan: Array<{ row: Schema['paths']; ground: LinkGround }> = [];
    const queue: string[] = [hashPartOf(ref)];
    const seen = new Set<string>(queue);
    while (queue.length > 0) {
      const hash = queue.shift()!;
      const already = await trx
        .selectFrom('paths')
        .select('hash_part')
        .where('slice_id', '=', target.slice.id)
        .where('hash_part', '=', hash)
        .executeTakeFirst();
      if (already) continue;
      const row = await trx
        .selectFrom('paths')
        .selectAll()
        .where('slice_id', '=', source.slice_id)
        .where('hash_part', '=', hash)
        .executeTakeFirst();
      if (!row) throw new Error(`slice ${source.slice_id} is not closure-complete: ${hash} missing`);
      const ground = linkGround(renderableRow(row), source.slice_id, ctx);
      if (!ground) return undefined;
      plan.push({ row, ground });
      for (const r of row.refs.split(' ').filter(Boolean)) {
        const h = r.slice(0, 32);
        if (!seen.has(h)) {
          seen.add(h);
          queue.push(h);
        }
      }
    }
    return plan;
  }
}
