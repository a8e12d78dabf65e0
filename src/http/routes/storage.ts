/**
 * Package independence and storage management (`/api/v1`): upstream caches (server admin), pins,
 * retention and quota settings, usage per org and slice (and per day: `usage/history`), and garbage
 * collection (server admin).
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import { InvalidInput } from '../../errors.js';
import type { StorageAdmin } from '../../admin/storage.js';
import { adminOrg, type RouteGuards } from '../admin-guards.js';
import type { UpstreamService } from '../../cache/upstream.js';
import type { RetentionService } from '../../cache/retention.js';
import type { UsageHistory } from '../../cache/usage-history.js';
import type { GarbageCollector } from '../../cache/gc.js';
import { orgStorage } from '../../cache/accounting.js';
import type { Db } from '../../storage/types.js';
import { parseStorePath, parseStorePathBase } from '../../nix/store-path.js';
import type { Limits } from '../../config.js';
import { parseDuration } from '../../units.js';
import type { AppEnv } from '../context.js';
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
  admin: StorageAdmin;
  guards: Pick<RouteGuards, 'orgAdmin' | 'serverAdmin'>;
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
  const { orgAdmin, serverAdmin } = deps.guards;
  const body = async <T>(c: import('hono').Context<AppEnv>, schema: z.ZodType<T>): Promise<T> =>
    parseBody(schema, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));

  // ---- upstreams (server-wide) ----
  api.get('/upstreams', serverAdmin('listing upstreams'), async (c) => {
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
  api.post('/upstreams', serverAdmin('adding upstreams'), async (c) => {
    const b = await body(c, upstreamBody);
    const u = await deps.admin.addUpstream(c.get('principal'), {
      name: b.name,
      url: b.url,
      publicKeys: b.publicKeys,
      ...(b.pullThrough !== undefined ? { pullThrough: b.pullThrough } : {}),
      ...(b.priority !== undefined ? { priority: b.priority } : {}),
    });
    return c.json(
      { name: u.name, url: u.url, publicKeys: u.publicKeys, pullThrough: u.pullThrough, priority: u.priority },
      201,
    );
  });
  api.delete('/upstreams/:name', serverAdmin('removing upstreams'), async (c) => {
    await deps.admin.removeUpstream(c.get('principal'), c.req.param('name'));
    return c.json({ name: c.req.param('name'), removed: true });
  });

  // ---- pins ----
  api.get('/orgs/:org/pins', orgAdmin(), async (c) => c.json({ pins: await deps.retention.listPins(adminOrg(c)) }));
  api.post('/orgs/:org/pins', orgAdmin(), async (c) => {
    const b = await body(c, pinBody);
    const storePath = b.storePath.startsWith('/') ? parseStorePath(b.storePath) : parseStorePathBase(b.storePath);
    const pin = await deps.admin.pin(c.get('principal'), adminOrg(c), {
      name: b.name,
      storePath,
      ...(b.ttl ? { ttlSeconds: parseDuration(b.ttl, 'ttl'), ttl: b.ttl } : {}),
    });
    return c.json(pin, 201);
  });
  api.delete('/orgs/:org/pins/:name', orgAdmin(), async (c) => {
    await deps.admin.unpin(c.get('principal'), adminOrg(c), c.req.param('name'));
    return c.json({ name: c.req.param('name'), removed: true });
  });

  // ---- settings and usage ----
  api.get('/orgs/:org/usage', orgAdmin(), async (c) => c.json(await orgStorage(deps.db, adminOrg(c))));
  api.get('/orgs/:org/usage/history', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const days = Number(c.req.query('days') ?? 30);
    if (!Number.isInteger(days) || days < 1 || days > 3660)
      throw new InvalidInput('days', 'a whole number of days from 1 to 3660');
    return c.json({ org: org.name, days: await deps.history.history(org, days) });
  });
  api.patch('/orgs/:org/settings', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const b = await body(c, settingsBody);
    const settings = await deps.admin.updateSettings(c.get('principal'), org, {
      ...(b.retention !== undefined ? { retention: b.retention } : {}),
      ...(b.quota !== undefined ? { quota: b.quota } : {}),
    });
    return c.json({ org: org.name, ...settings });
  });

  // ---- garbage collection ----
  api.post('/gc', serverAdmin('garbage collection'), async (c) => {
    const b = await body(c, gcBody);
    const grace =
      b.grace === undefined
        ? deps.gcGraceSeconds
        : typeof b.grace === 'number'
          ? b.grace
          : parseDuration(b.grace, 'grace');
    if (grace > 365 * 86400) throw new InvalidInput('grace', 'at most a year');
    return c.json(await deps.admin.runGc(c.get('principal'), { dryRun: Boolean(b.dryRun), graceSeconds: grace }));
  });
}
