/**
 * Package independence and storage management (`/api/v1`): upstream caches (server admin), pins,
 * retention and quota settings, usage per org and slice (and per day: `usage/history`), and garbage
 * collection (server admin).
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import { InvalidInput } from '../../errors.js';
import type { Principal } from '../../identity/principal.js';
import type { Action } from '../../policy/actions.js';
import type { Org } from '../../org/service.js';
import type { UpstreamService } from '../../cache/upstream.js';
import type { RetentionService } from '../../cache/retention.js';
import type { UsageHistory } from '../../cache/usage-history.js';
import type { GarbageCollector } from '../../cache/gc.js';
import { orgStorage } from '../../cache/accounting.js';
import type { Db } from '../../storage/types.js';
import { parseStorePath, parseStorePathBase } from '../../nix/store-path.js';
import type { Limits } from '../../config.js';
import { parseDuration, parseSize } from '../../units.js';
import type { AppEnv } from '../context.js';
import type { AuditLog } from '../../audit/log.js';
import { readJson } from '../body.js';
import { parseBody } from '../validate.js';

export interface StorageDeps {
  db: Db;
  upstreams: UpstreamService;
  retention: RetentionService;
  history: UsageHistory;
  gc: GarbageCollector;
  gcGraceSeconds: number;
  limits: Limits;
  requireOrg: (p: Principal, org: string, action: Action, slices?: readonly string[]) => Promise<Org>;
  requireServerAdmin: (p: Principal, what: string) => void;
  audit: AuditLog;
}

const upstreamBody = z.object({
  name: z.string(),
  url: z.string().max(2000),
  publicKeys: z.array(z.string().max(200)).min(1).max(20),
  pullThrough: z.boolean().optional(),
  priority: z.number().int().min(0).max(1000).optional(),
});
const pinBody = z.object({ name: z.string(), storePath: z.string(), ttl: z.string().optional() });
const amount = z.union([z.string(), z.number().int().nonnegative(), z.null()]);
const settingsBody = z.object({ retention: amount.optional(), quota: amount.optional() });
const gcBody = z.object({
  dryRun: z.boolean().optional(),
  grace: z.union([z.string(), z.number().int().nonnegative()]).optional(),
});

export function storageRoutes(api: Hono<AppEnv>, deps: StorageDeps): void {
  const requireAdmin = deps.requireServerAdmin;
  const body = async <T>(c: import('hono').Context<AppEnv>, schema: z.ZodType<T>): Promise<T> =>
    parseBody(schema, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));

  // ---- upstreams (server-wide) ----
  api.get('/upstreams', async (c) => {
    requireAdmin(c.get('principal'), 'listing upstreams');
    const list = await deps.upstreams.list();
    return c.json({
      upstreams: list.map((u) => ({
        name: u.name,
        url: u.url,
        publicKeys: u.publicKeys,
        pullThrough: u.pullThrough,
        priority: u.priority,
      })),
    });
  });
  api.post('/upstreams', async (c) => {
    requireAdmin(c.get('principal'), 'adding upstreams');
    const b = await body(c, upstreamBody);
    const u = await deps.upstreams.add({
      name: b.name,
      url: b.url,
      publicKeys: b.publicKeys,
      ...(b.pullThrough !== undefined ? { pullThrough: b.pullThrough } : {}),
      ...(b.priority !== undefined ? { priority: b.priority } : {}),
    });
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'upstream.add',
      target: `upstream ${u.name}`,
      orgId: null,
      detail: { url: u.url, publicKeys: u.publicKeys, pullThrough: u.pullThrough },
    });
    return c.json(
      { name: u.name, url: u.url, publicKeys: u.publicKeys, pullThrough: u.pullThrough, priority: u.priority },
      201,
    );
  });
  api.delete('/upstreams/:name', async (c) => {
    requireAdmin(c.get('principal'), 'removing upstreams');
    await deps.upstreams.remove(c.req.param('name'));
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'upstream.remove',
      target: `upstream ${c.req.param('name')}`,
      orgId: null,
    });
    return c.json({ name: c.req.param('name'), removed: true });
  });

  // ---- pins ----
  api.get('/orgs/:org/pins', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    return c.json({ pins: await deps.retention.listPins(org) });
  });
  api.post('/orgs/:org/pins', async (c) => {
    const p = c.get('principal');
    const org = await deps.requireOrg(p, c.req.param('org'), 'org.admin');
    const b = await body(c, pinBody);
    const storePath = b.storePath.startsWith('/') ? parseStorePath(b.storePath) : parseStorePathBase(b.storePath);
    const pin = await deps.retention.pin(org, {
      name: b.name,
      storePath,
      ...(b.ttl ? { ttlSeconds: parseDuration(b.ttl, 'ttl') } : {}),
      createdBy: p.kind === 'token' ? p.subject : p.kind,
    });
    await deps.audit.appendNow({
      principal: p,
      action: 'pin.add',
      target: `pin ${org.name}/${b.name}`,
      orgId: org.id,
      detail: { storePath: `/nix/store/${storePath}`, ...(b.ttl ? { ttl: b.ttl } : {}) },
    });
    return c.json(pin, 201);
  });
  api.delete('/orgs/:org/pins/:name', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    await deps.retention.unpin(org, c.req.param('name'));
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'pin.remove',
      target: `pin ${org.name}/${c.req.param('name')}`,
      orgId: org.id,
    });
    return c.json({ name: c.req.param('name'), removed: true });
  });

  // ---- settings and usage ----
  api.get('/orgs/:org/usage', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    return c.json(await orgStorage(deps.db, org));
  });
  api.get('/orgs/:org/usage/history', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    const days = Number(c.req.query('days') ?? 30);
    if (!Number.isInteger(days) || days < 1 || days > 3660)
      throw new InvalidInput('days', 'a whole number of days from 1 to 3660');
    return c.json({ org: org.name, days: await deps.history.history(org, days) });
  });
  api.patch('/orgs/:org/settings', async (c) => {
    const p = c.get('principal');
    const org = await deps.requireOrg(p, c.req.param('org'), 'org.admin');
    const b = await body(c, settingsBody);
    // Org admins choose how long their pushes stay; only the server admin hands out storage.
    if (b.quota !== undefined) requireAdmin(p, 'setting a quota');
    const seconds = (v: string | number | null) =>
      v === null ? null : typeof v === 'number' ? v : parseDuration(v, 'retention');
    const bytes = (v: string | number | null) =>
      v === null ? null : typeof v === 'number' ? v : parseSize(v, 'quota');
    const settings = await deps.retention.updateSettings(org, {
      ...(b.retention !== undefined ? { retentionSeconds: seconds(b.retention) } : {}),
      ...(b.quota !== undefined ? { quotaBytes: bytes(b.quota) } : {}),
    });
    await deps.audit.appendNow({
      principal: p,
      action: 'org.settings',
      target: `org ${org.name}`,
      orgId: org.id,
      detail: { ...settings },
    });
    return c.json({ org: org.name, ...settings });
  });

  // ---- garbage collection ----
  api.post('/gc', async (c) => {
    requireAdmin(c.get('principal'), 'garbage collection');
    const b = await body(c, gcBody);
    const grace =
      b.grace === undefined
        ? deps.gcGraceSeconds
        : typeof b.grace === 'number'
          ? b.grace
          : parseDuration(b.grace, 'grace');
    if (grace > 365 * 86400) throw new InvalidInput('grace', 'at most a year');
    const report = await deps.gc.run({ dryRun: Boolean(b.dryRun), graceMs: grace * 1000 });
    if (!b.dryRun)
      await deps.audit.appendNow({
        principal: c.get('principal'),
        action: 'gc.run',
        target: 'garbage collection',
        orgId: null,
        detail: {
          graceSeconds: grace,
          roots: report.roots,
          paths: report.paths,
          nars: report.nars,
          orphanBlobs: report.orphanBlobs,
          expired: report.expired,
        },
      });
    return c.json(report);
  });
}
