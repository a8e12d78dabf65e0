/**
 * The sources of views and links, as org admins and the server admin configure them:
 * - which of an org's slices are in its unified view, and in which order (`in_view`, `priority`);
 * - which other orgs' public slices an org follows (`org_follows`);
 * - which slices anonymous callers get on `/cache` (`global_priority`, server admin only);
 * - which slices a slice trusts as link sources besides its org's `default` (`slice_trusts`).
 * `viewOf` turns them into the ordered view of one caller (see view.ts), memoized briefly and
 * dropped at once on a change notice from any replica.
 */
import { InvalidInput, NotFound } from '../errors.js';
import type { Principal } from '../identity/principal.js';
import { DEFAULT_SLICE, type Org } from '../org/service.js';
import type { ChangeFeed } from '../storage/changes.js';
import type { Db } from '../storage/types.js';
import type { SliceResource } from '../policy/actions.js';
import { type ViewSources, viewOrder } from './view.js';
import type { Follow, SliceViewSettings } from '../wire/slices.js';

const MAX_FOLLOWS = 50;
const MEMO_MS = 2_000;
const PRIORITY = (n: number, what: string) => {
  if (!Number.isSafeInteger(n) || n < 0 || n > 1_000_000)
    throw new InvalidInput(what, 'must be an integer from 0 to 1000000');
  return n;
};

export class SourceService {
  private readonly memo = new Map<string, { at: number; order: Map<string, number> }>();
  private globals: { at: number; value: ViewSources['globals'] } | undefined;

  constructor(
    private readonly db: Db,
    private readonly changes?: ChangeFeed,
  ) {
    changes?.subscribe('views', () => this.dropMemos());
  }

  private dropMemos(): void {
    this.memo.clear();
    this.globals = undefined;
  }

  /** A slice of the org is gone (OrgService.deleteSlice): views and follows naming it are stale. */
  async sliceDeleted(orgId: string): Promise<void> {
    await this.changed(orgId);
  }

  private async changed(orgId: string): Promise<void> {
    this.dropMemos();
    await this.changes?.notify('views', orgId).catch(() => undefined);
  }

  /** Slice id -> rank in the caller's unified view (lower is consulted first). */
  async viewOf(p: Principal): Promise<Map<string, number>> {
    const key = p.kind === 'token' ? `${p.org.id}|${p.deploy ? 'deploy' : (p.slices ?? ['*']).join(',')}` : '-';
    const hit = this.memo.get(key);
    if (hit && Date.now() - hit.at < MEMO_MS) return hit.order;
    const order = new Map(viewOrder(p, await this.sourcesFor(p)).map((id, i) => [id, i]));
    if (this.memo.size > 10_000) this.memo.clear();
    this.memo.set(key, { at: Date.now(), order });
    return order;
  }

  private async sourcesFor(p: Principal): Promise<ViewSources> {
    const globals = await this.globalSources();
    if (p.kind !== 'token') return { own: [], follows: [], globals };
    const own = await this.db
      .selectFrom('slices')
      .select(['id', 'org_id', 'name', 'in_view', 'priority'])
      .where('org_id', '=', p.org.id)
      .execute();
    const follows = await this.db
      .selectFrom('org_follows')
      .select(['slice_id', 'priority'])
      .where('org_id', '=', p.org.id)
      .execute();
    return {
      own: own.map((s) => ({
        id: s.id,
        orgId: s.org_id,
        name: s.name,
        inView: Number(s.in_view) === 1,
        priority: Number(s.priority ?? 100),
      })),
      follows: follows.map((f) => ({ sliceId: f.slice_id, priority: Number(f.priority) })),
      globals,
    };
  }

  private async globalSources(): Promise<ViewSources['globals']> {
    if (this.globals && Date.now() - this.globals.at < MEMO_MS) return this.globals.value;
    const rows = await this.db
      .selectFrom('slices')
      .select(['id', 'global_priority'])
      .where('global_priority', 'is not', null)
      .execute();
    const value = rows.map((r) => ({ sliceId: r.id, priority: Number(r.global_priority) }));
    this.globals = { at: Date.now(), value };
    return value;
  }

  /** Org ids whose slices are in the caller's view, in view order (for the keys a client should trust). */
  async orgsInView(p: Principal): Promise<string[]> {
    const order = await this.viewOf(p);
    if (order.size === 0) return [];
    const rows = await this.db
      .selectFrom('slices')
      .select(['id', 'org_id'])
      .where('id', 'in', [...order.keys()])
      .execute();
    const orgOf = new Map(rows.map((r) => [r.id, r.org_id]));
    return [...new Set([...order.keys()].map((id) => orgOf.get(id)).filter((x): x is string => x !== undefined))];
  }

  // ---- org admins ---------------------------------------------------------------------------

  /**
   * Adds another org's slice to the org's view. The caller (an admin of `org`) must be able to
   * read it (a public slice, or one the other org's policy shares); the one answer for missing,
   * private and unreadable slices never reveals that a private slice exists.
   */
  async follow(
    org: Org,
    name: { org: string; slice: string },
    slice: SliceResource | undefined,
    priority: number,
    by: string,
    mayRead: (slice: SliceResource) => boolean,
  ): Promise<Follow> {
    PRIORITY(priority, 'priority');
    if (!slice || (slice.org.id !== org.id && !mayRead(slice)))
      throw new InvalidInput('source', `there is no slice ${name.org}/${name.slice} that you may read`);
    if (slice.org.id === org.id)
      throw new InvalidInput(
        'source',
        `${name.org}/${name.slice} is ${org.name}'s own slice: put it in the view with "floe slice set ${org.name} ${name.slice} --in-view"`,
      );
    const count = await this.db
      .selectFrom('org_follows')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('org_id', '=', org.id)
      .executeTakeFirstOrThrow();
    if (Number(count.n) >= MAX_FOLLOWS)
      throw new InvalidInput('source', `an org follows at most ${MAX_FOLLOWS} slices`);
    await this.db
      .insertInto('org_follows')
      .values({
        org_id: org.id,
        slice_id: slice.slice.id,
        priority,
        created_by: by,
        created_at: new Date().toISOString(),
      })
      .onConflict((oc) => oc.columns(['org_id', 'slice_id']).doUpdateSet({ priority }))
      .execute();
    await this.changed(org.id);
    return { org: name.org, slice: name.slice, priority };
  }

  async unfollow(org: Org, slice: SliceResource | undefined): Promise<void> {
    const res = slice
      ? await this.db
          .deleteFrom('org_follows')
          .where('org_id', '=', org.id)
          .where('slice_id', '=', slice.slice.id)
          .executeTakeFirst()
      : undefined;
    if (!res || Number(res.numDeletedRows) === 0) throw new NotFound();
    await this.changed(org.id);
  }

  async listFollows(org: Org): Promise<Follow[]> {
    const rows = await this.db
      .selectFrom('org_follows')
      .innerJoin('slices', 'slices.id', 'org_follows.slice_id')
      .innerJoin('orgs', 'orgs.id', 'slices.org_id')
      .select(['orgs.name as org_name', 'slices.name as slice_name', 'org_follows.priority'])
      .where('org_follows.org_id', '=', org.id)
      .orderBy('org_follows.priority')
      .execute();
    return rows.map((r) => ({ org: r.org_name, slice: r.slice_name, priority: Number(r.priority) }));
  }

  private async sliceOf(org: Org, name: string): Promise<{ id: string; public: number }> {
    const row = await this.db
      .selectFrom('slices')
      .select(['id', 'public'])
      .where('org_id', '=', org.id)
      .where('name', '=', name)
      .executeTakeFirst();
    if (!row) throw new NotFound();
    return { id: row.id, public: Number(row.public) };
  }

  async setSliceView(org: Org, sliceName: string, settings: { inView?: boolean; priority?: number }): Promise<void> {
    const slice = await this.sliceOf(org, sliceName);
    if (sliceName === DEFAULT_SLICE && settings.inView === false)
      throw new InvalidInput('in-view', "the default slice is always in its org's view");
    const set: { in_view?: number; priority?: number } = {};
    if (settings.inView !== undefined) set.in_view = settings.inView ? 1 : 0;
    if (settings.priority !== undefined) set.priority = PRIORITY(settings.priority, 'priority');
    if (Object.keys(set).length > 0) await this.db.updateTable('slices').set(set).where('id', '=', slice.id).execute();
    await this.changed(org.id);
  }

  /** Server admin: serve this public slice to anonymous callers on `/cache` (null: stop). */
  async setGlobal(org: Org, sliceName: string, priority: number | null): Promise<void> {
    const slice = await this.sliceOf(org, sliceName);
    if (priority !== null && slice.public !== 1)
      throw new InvalidInput(
        'slice',
        `${org.name}/${sliceName} is private: only public slices can be served to everyone`,
      );
    await this.db
      .updateTable('slices')
      .set({ global_priority: priority === null ? null : PRIORITY(priority, 'priority') })
      .where('id', '=', slice.id)
      .execute();
    await this.changed(org.id);
  }

  async trustSlice(org: Org, sliceName: string, sourceName: string, by: string): Promise<void> {
    const slice = await this.sliceOf(org, sliceName);
    const source = await this.sliceOf(org, sourceName);
    if (slice.id === source.id) throw new InvalidInput('source', 'a slice always holds its own paths');
    await this.db
      .insertInto('slice_trusts')
      .values({ slice_id: slice.id, trusted_slice_id: source.id, created_by: by, created_at: new Date().toISOString() })
      .onConflict((oc) => oc.columns(['slice_id', 'trusted_slice_id']).doNothing())
      .execute();
    await this.changed(org.id);
  }

  async untrustSlice(org: Org, sliceName: string, sourceName: string): Promise<void> {
    const slice = await this.sliceOf(org, sliceName);
    const source = await this.sliceOf(org, sourceName);
    const res = await this.db
      .deleteFrom('slice_trusts')
      .where('slice_id', '=', slice.id)
      .where('trusted_slice_id', '=', source.id)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new NotFound();
    await this.changed(org.id);
  }

  /** The slices of `target`'s org whose paths may be linked into it: its org's default and what it trusts. */
  async trustedLinkSources(db: Db, target: { orgId: string; sliceId: string }): Promise<Set<string>> {
    const rows = await db
      .selectFrom('slice_trusts')
      .select('trusted_slice_id')
      .where('slice_id', '=', target.sliceId)
      .execute();
    const def = await db
      .selectFrom('slices')
      .select('id')
      .where('org_id', '=', target.orgId)
      .where('name', '=', DEFAULT_SLICE)
      .executeTakeFirst();
    const out = new Set(rows.map((r) => r.trusted_slice_id));
    if (def && def.id !== target.sliceId) out.add(def.id);
    return out;
  }

  async sliceSettings(org: Org): Promise<SliceViewSettings[]> {
    const slices = await this.db
      .selectFrom('slices')
      .selectAll()
      .where('org_id', '=', org.id)
      .orderBy('name')
      .execute();
    const trusts = await this.db
      .selectFrom('slice_trusts')
      .innerJoin('slices', 'slices.id', 'slice_trusts.trusted_slice_id')
      .select(['slice_trusts.slice_id', 'slices.name'])
      .where('slices.org_id', '=', org.id)
      .execute();
    return slices.map((s) => ({
      name: s.name,
      public: Number(s.public) === 1,
      inView: s.name === DEFAULT_SLICE || Number(s.in_view) === 1,
      priority: s.name === DEFAULT_SLICE ? 0 : Number(s.priority ?? 100),
      globalPriority: s.global_priority == null ? null : Number(s.global_priority),
      trusts: trusts
        .filter((t) => t.slice_id === s.id)
        .map((t) => t.name)
        .sort(),
    }));
  }
}
