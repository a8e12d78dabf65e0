/**
 * Storage administration: upstream caches and garbage collection (server admin), pins and the
 * org's retention (org admins) and quota (server admin only: it hands out storage). Each method
 * authorizes (AdminGuard), acts, then appends the audit entry.
 */
import type { AuditLog } from '../audit/log.js';
import { parseDuration, parseSize } from '../units.js';
import type { GarbageCollector } from '../cache/gc.js';
import type { OrgSettings, Pin, RetentionService } from '../cache/retention.js';
import type { Upstream, UpstreamService } from '../cache/upstream.js';
import type { Principal } from '../identity/principal.js';
import type { StorePathBase } from '../nix/store-path.js';
import type { Org } from '../org/service.js';
import type { GcReport } from '../wire/gc.js';
import type { AdminGuard } from './guard.js';

export class StorageAdmin {
  constructor(
    private readonly deps: {
      guard: AdminGuard;
      upstreams: UpstreamService;
      retention: RetentionService;
      gc: GarbageCollector;
      audit: AuditLog;
    },
  ) {}

  async addUpstream(p: Principal, input: Parameters<UpstreamService['add']>[0]): Promise<Upstream> {
    this.deps.guard.serverAdmin(p, 'adding upstreams');
    const u = await this.deps.upstreams.add(input);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'upstream.add',
      target: `upstream ${u.name}`,
      orgId: null,
      detail: { url: u.url, publicKeys: u.publicKeys, pullThrough: u.pullThrough },
    });
    return u;
  }

  async removeUpstream(p: Principal, name: string): Promise<void> {
    this.deps.guard.serverAdmin(p, 'removing upstreams');
    await this.deps.upstreams.remove(name);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'upstream.remove',
      target: `upstream ${name}`,
      orgId: null,
    });
  }

  /** `ttl`: as the caller wrote it, for the audit entry. Refused when no slice of the org holds the path. */
  async pin(
    p: Principal,
    org: Org,
    input: { name: string; storePath: StorePathBase; ttlSeconds?: number; ttl?: string },
  ): Promise<Pin> {
    this.deps.guard.assertOrgAdmin(p, org);
    const pin = await this.deps.retention.pin(org, {
      name: input.name,
      storePath: input.storePath,
      ...(input.ttlSeconds ? { ttlSeconds: input.ttlSeconds } : {}),
      createdBy: p.kind === 'token' ? p.subject : p.kind,
    });
    await this.deps.audit.appendNow({
      principal: p,
      action: 'pin.add',
      target: `pin ${org.name}/${input.name}`,
      orgId: org.id,
      detail: { storePath: `/nix/store/${input.storePath}`, ...(input.ttl ? { ttl: input.ttl } : {}) },
    });
    return pin;
  }

  async unpin(p: Principal, org: Org, name: string): Promise<void> {
    this.deps.guard.assertOrgAdmin(p, org);
    await this.deps.retention.unpin(org, name);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'pin.remove',
      target: `pin ${org.name}/${name}`,
      orgId: org.id,
    });
  }

  /**
   * Org admins choose how long their pushes stay; only the server admin hands out storage (refused
   * before the amounts are read). Amounts: seconds or bytes, a text (`30d`, `10G`), or null for none.
   */
  async updateSettings(
    p: Principal,
    org: Org,
    change: { retention?: string | number | null; quota?: string | number | null },
  ): Promise<OrgSettings> {
    this.deps.guard.assertOrgAdmin(p, org);
    if (change.quota !== undefined) this.deps.guard.serverAdmin(p, 'setting a quota');
    const seconds = (v: string | number | null) =>
      v === null ? null : typeof v === 'number' ? v : parseDuration(v, 'retention');
    const bytes = (v: string | number | null) =>
      v === null ? null : typeof v === 'number' ? v : parseSize(v, 'quota');
    const settings = await this.deps.retention.updateSettings(org, {
      ...(change.retention !== undefined ? { retentionSeconds: seconds(change.retention) } : {}),
      ...(change.quota !== undefined ? { quotaBytes: bytes(change.quota) } : {}),
    });
    await this.deps.audit.appendNow({
      principal: p,
      action: 'org.settings',
      target: `org ${org.name}`,
      orgId: org.id,
      detail: { ...settings },
    });
    return settings;
  }

  /** A dry run changes nothing and is not audited. */
  async runGc(p: Principal, opts: { dryRun: boolean; graceSeconds: number }): Promise<GcReport> {
    this.deps.guard.serverAdmin(p, 'garbage collection');
    const report = await this.deps.gc.run({ dryRun: opts.dryRun, graceMs: opts.graceSeconds * 1000 });
    if (!opts.dryRun)
      await this.deps.audit.appendNow({
        principal: p,
        action: 'gc.run',
        target: 'garbage collection',
        orgId: null,
        detail: {
          graceSeconds: opts.graceSeconds,
          roots: report.roots,
          paths: report.paths,
          nars: report.nars,
          orphanBlobs: report.orphanBlobs,
          expired: report.expired,
        },
      });
    return report;
  }
}
