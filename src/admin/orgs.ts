/**
 * Org administration: orgs (server admin), slices, the org's view and link sources, and its
 * signing keys. Each method authorizes (AdminGuard), acts, then appends the audit entry, so the
 * API and the web interface share one rule and one event name per change.
 */
import type { AuditLog } from '../audit/log.js';
import type { CacheService } from '../cache/service.js';
import type { SourceService } from '../cache/sources.js';
import type { Follow } from '../wire/slices.js';
import { NotFound } from '../errors.js';
import { describePrincipal, type Principal } from '../identity/principal.js';
import type { OrgKeyInfo, OrgKeyService } from '../org/keys.js';
import type { Org, OrgService, Slice } from '../org/service.js';
import type { Authorizer } from '../policy/authorize.js';
import type { AdminGuard } from './guard.js';

export interface SliceChange {
  public?: boolean;
  inView?: boolean;
  priority?: number;
}

export class OrgAdmin {
  constructor(
    private readonly deps: {
      guard: AdminGuard;
      orgs: OrgService;
      sources: SourceService;
      cache: Pick<CacheService, 'emptySlice' | 'resignOrg'>;
      authorizer: Pick<Authorizer, 'authorize'>;
      keys: OrgKeyService;
      audit: AuditLog;
    },
  ) {}

  async createOrg(p: Principal, name: string): Promise<Org> {
    this.deps.guard.serverAdmin(p, 'creating orgs');
    const org = await this.deps.orgs.createOrg(name);
    await this.deps.audit.appendNow({ principal: p, action: 'org.create', target: `org ${org.name}`, orgId: org.id });
    return org;
  }

  async createSlice(p: Principal, org: Org, input: { name: string; public: boolean; inView: boolean }): Promise<Slice> {
    this.deps.guard.assertOrgAdmin(p, org);
    const slice = await this.deps.orgs.createSlice(org, input.name, input.public, input.inView);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'slice.create',
      target: `slice ${org.name}/${slice.name}`,
      orgId: org.id,
      detail: { public: slice.public, inView: input.inView },
    });
    return slice;
  }

  /** Visibility, view membership, priority: a NotFound for a slice the org does not have. */
  async updateSlice(p: Principal, org: Org, name: string, change: SliceChange): Promise<void> {
    this.deps.guard.assertOrgAdmin(p, org, [name]);
    if (change.public !== undefined && !(await this.deps.orgs.setSliceVisibility(org, name, change.public)))
      throw await this.deps.guard.noSuchSlice(p, org, [name]);
    if (change.inView !== undefined || change.priority !== undefined) {
      await this.deps.sources.setSliceView(org, name, {
        ...(change.inView !== undefined ? { inView: change.inView } : {}),
        ...(change.priority !== undefined ? { priority: change.priority } : {}),
      });
    }
    await this.deps.audit.appendNow({
      principal: p,
      action: 'slice.update',
      target: `slice ${org.name}/${name}`,
      orgId: org.id,
      detail: { ...change },
    });
  }

  /**
   * `force`: the slice's paths go first (GC collects their blobs); a path landing meanwhile makes the
   * delete a 409. A huge slice is emptied in committed batches for a while: then the answer is
   * `{ deleted: false, remaining }` (this much is gone; the caller asks again to go on).
   */
  async deleteSlice(
    p: Principal,
    org: Org,
    name: string,
    force: boolean,
  ): Promise<{ deleted: false; paths: number; remaining: number } | ({ deleted: true; paths: number } & object)> {
    // Administration of this one slice: a token limited to other slices is refused by the guardrails.
    this.deps.guard.assertOrgAdmin(p, org, [name]);
    if (force) await this.deps.orgs.checkDeletable(org, name);
    const slice = force ? await this.deps.orgs.findSlice(org.name, name) : undefined;
    const { removed: paths, remaining } = slice
      ? await this.deps.cache.emptySlice(slice.slice.id)
      : { removed: 0, remaining: 0 };
    if (remaining > 0) {
      await this.deps.audit.appendNow({
        principal: p,
        action: 'slice.delete',
        target: `slice ${org.name}/${name}`,
        orgId: org.id,
        detail: { force: true, paths, remaining, partial: true },
      });
      return { deleted: false, paths, remaining };
    }
    const removed = await this.deps.orgs.deleteSlice(org, name);
    await this.deps.sources.sliceDeleted(org.id);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'slice.delete',
      target: `slice ${org.name}/${name}`,
      orgId: org.id,
      detail: { ...removed, ...(force ? { force: true, paths } : {}) },
    });
    return { deleted: true, paths, ...removed };
  }

  async follow(p: Principal, org: Org, source: { org: string; slice: string }, priority: number): Promise<Follow> {
    this.deps.guard.assertOrgAdmin(p, org);
    const follow = await this.deps.sources.follow(
      org,
      source,
      await this.deps.orgs.findSlice(source.org, source.slice),
      priority,
      describePrincipal(p),
      // A quiet probe: may the caller read the slice it wants to follow?
      (slice) => this.deps.authorizer.authorize(p, 'cache.read', slice, {}, { quiet: true }).allowed,
    );
    await this.audit(p, org, 'view.follow', `slice ${source.org}/${source.slice}`, { priority: follow.priority });
    return follow;
  }

  async unfollow(p: Principal, org: Org, source: { org: string; slice: string }): Promise<void> {
    this.deps.guard.assertOrgAdmin(p, org);
    await this.deps.sources.unfollow(org, await this.deps.orgs.findSlice(source.org, source.slice));
    await this.audit(p, org, 'view.unfollow', `slice ${source.org}/${source.slice}`);
  }

  /** Slice trusts concern two slices: a slice-limited admin sets them only between its own. */
  async trustSlice(p: Principal, org: Org, slice: string, from: string): Promise<void> {
    this.deps.guard.assertOrgAdmin(p, org, [slice, from]);
    await this.deps.sources.trustSlice(org, slice, from, describePrincipal(p));
    await this.audit(p, org, 'slice.trust', `slice ${org.name}/${slice}`, { from });
  }

  async untrustSlice(p: Principal, org: Org, slice: string, from: string): Promise<void> {
    this.deps.guard.assertOrgAdmin(p, org, [slice, from]);
    await this.deps.sources.untrustSlice(org, slice, from);
    await this.audit(p, org, 'slice.untrust', `slice ${org.name}/${slice}`, { from });
  }

  /** Server admin: what anonymous callers get on /cache (nothing unless listed). */
  async setGlobal(p: Principal, orgName: string, slice: string, priority: number | null): Promise<Org> {
    this.deps.guard.serverAdmin(p, 'serving a slice to everyone on /cache');
    const org = await this.deps.orgs.findOrg(orgName);
    if (!org) throw new NotFound();
    await this.deps.sources.setGlobal(org, slice, priority);
    await this.audit(p, org, 'slice.global', `slice ${org.name}/${slice}`, { priority });
    return org;
  }

  /** A new active key; every narinfo of the org is re-signed. */
  async rotateKey(p: Principal, org: Org): Promise<{ key: OrgKeyInfo; resigned: number }> {
    this.deps.guard.assertOrgAdmin(p, org);
    const key = await this.deps.keys.rotate(org);
    const resigned = await this.deps.cache.resignOrg(org.id);
    await this.audit(p, org, 'key.rotate', `org ${org.name}`, { key: key.name, resigned });
    return { key, resigned };
  }

  async retireKey(p: Principal, org: Org, name: string): Promise<{ resigned: number }> {
    this.deps.guard.assertOrgAdmin(p, org);
    await this.deps.keys.retire(org, name);
    const resigned = await this.deps.cache.resignOrg(org.id);
    await this.audit(p, org, 'key.retire', `org ${org.name}`, { key: name, resigned });
    return { resigned };
  }

  private audit(
    p: Principal,
    org: Org,
    action:
      | 'view.follow'
      | 'view.unfollow'
      | 'slice.trust'
      | 'slice.untrust'
      | 'slice.global'
      | 'key.rotate'
      | 'key.retire',
    target: string,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    return this.deps.audit.appendNow({ principal: p, action, target, orgId: org.id, ...(detail ? { detail } : {}) });
  }
}
