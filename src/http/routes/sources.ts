/**
 * Views, link sources and org signing keys (`/api/v1`): what each org's unified substituter
 * consults (its slices in view, the public slices it follows), what anonymous callers get (global
 * slices, server admin), which slices a slice takes references from, and the org's Nix keys
 * (list, rotate, retire; every change re-signs the org's narinfos).
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import type { OrgAdmin } from '../../admin/orgs.js';
import type { Org } from '../../org/service.js';
import type { OrgKeyService } from '../../org/keys.js';
import type { SourceService } from '../../cache/sources.js';
import type { Limits } from '../../config.js';
import type { AppEnv } from '../context.js';
import { NotFound } from '../../errors.js';
import { readJson } from '../body.js';
import { parseBody } from '../validate.js';
import { adminOrg, type RouteGuards } from '../admin-guards.js';
import type { OrgSources } from '../../wire/slices.js';

export interface SourceRouteDeps {
  sources: SourceService;
  keys: OrgKeyService;
  admin: OrgAdmin;
  limits: Limits;
  guards: Pick<RouteGuards, 'orgAdmin' | 'serverAdmin'>;
  findOrg: (name: string) => Promise<Org | undefined>;
}

const priority = z.number().int().min(0).max(1_000_000);
const followBody = z.object({ org: z.string().max(100), slice: z.string().max(100), priority: priority.optional() });
const trustBody = z.object({ from: z.string().max(100) });
const globalBody = z.object({ priority: priority.nullable() });

export function sourceRoutes(api: Hono<AppEnv>, deps: SourceRouteDeps): void {
  const { orgAdmin, serverAdmin } = deps.guards;
  const body = async <T>(c: import('hono').Context<AppEnv>, schema: z.ZodType<T>): Promise<T> =>
    parseBody(schema, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));

  api.get('/orgs/:org/sources', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    return c.json({
      slices: await deps.sources.sliceSettings(org),
      follows: await deps.sources.listFollows(org),
    } satisfies OrgSources);
  });

  api.post('/orgs/:org/follows', orgAdmin(), async (c) => {
    const b = await body(c, followBody);
    const follow = await deps.admin.follow(c.get('principal'), adminOrg(c), b, b.priority ?? 100);
    return c.json(follow, 201);
  });

  api.delete('/orgs/:org/follows/:sourceOrg/:slice', orgAdmin(), async (c) => {
    const source = { org: c.req.param('sourceOrg'), slice: c.req.param('slice') };
    await deps.admin.unfollow(c.get('principal'), adminOrg(c), source);
    return c.json({ removed: true });
  });

  // Slice trusts concern two slices: a slice-limited admin sets them only between its own (the
  // guard checks the first before the body, the service both).
  api.post('/orgs/:org/slices/:slice/trusts', orgAdmin('slice'), async (c) => {
    const b = await body(c, trustBody);
    await deps.admin.trustSlice(c.get('principal'), adminOrg(c), c.req.param('slice'), b.from);
    return c.json({ slice: c.req.param('slice'), trusts: b.from }, 201);
  });

  api.delete('/orgs/:org/slices/:slice/trusts/:from', orgAdmin('slice', 'from'), async (c) => {
    await deps.admin.untrustSlice(c.get('principal'), adminOrg(c), c.req.param('slice'), c.req.param('from'));
    return c.json({ removed: true });
  });

  // Server admin: what anonymous callers get on /cache (nothing unless listed here).
  api.put('/orgs/:org/slices/:slice/global', serverAdmin('serving a slice to everyone on /cache'), async (c) => {
    if (!(await deps.findOrg(c.req.param('org')))) throw new NotFound();
    const b = await body(c, globalBody);
    const org = await deps.admin.setGlobal(c.get('principal'), c.req.param('org'), c.req.param('slice'), b.priority);
    return c.json({ org: org.name, slice: c.req.param('slice'), globalPriority: b.priority });
  });

  // ---- org signing keys ----
  // Public keys are public: anyone may list an org's (what its narinfos are signed with).
  api.get('/orgs/:org/keys', async (c) => {
    const org = await deps.findOrg(c.req.param('org'));
    if (!org) throw new NotFound();
    const keys = await deps.keys.list(org);
    return c.json({
      org: org.name,
      keys: keys.map((k) => ({
        name: k.name,
        publicKey: k.publicKey,
        state: k.state,
        createdAt: k.createdAt,
        retiredAt: k.retiredAt,
      })),
    });
  });

  api.post('/orgs/:org/keys/rotate', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const { key, resigned } = await deps.admin.rotateKey(c.get('principal'), org);
    return c.json({
      org: org.name,
      active: key,
      resigned,
      keys: (await deps.keys.list(org)).filter((k) => k.state !== 'retired').map((k) => k.publicKey),
    });
  });

  api.post('/orgs/:org/keys/:name/retire', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const { resigned } = await deps.admin.retireKey(c.get('principal'), org, c.req.param('name'));
    return c.json({
      org: org.name,
      retired: c.req.param('name'),
      resigned,
      keys: (await deps.keys.list(org)).filter((k) => k.state !== 'retired').map((k) => k.publicKey),
    });
  });
}
