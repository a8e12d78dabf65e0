/**
 * Views, link sources and org signing keys (`/api/v1`): what each org's unified substituter
 * consults (its slices in view, the public slices it follows), what anonymous callers get (global
 * slices, server admin), which slices a slice takes references from, and the org's Nix keys
 * (list, rotate, retire; every change re-signs the org's narinfos).
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import { describePrincipal, type Principal } from '../../identity/principal.js';
import type { Action, SliceResource } from '../../policy/actions.js';
import type { Org } from '../../org/service.js';
import type { OrgKeyService } from '../../org/keys.js';
import type { SourceService } from '../../cache/sources.js';
import type { CacheService } from '../../cache/service.js';
import type { Limits } from '../../config.js';
import type { AppEnv } from '../context.js';
import type { AuditLog } from '../../audit/log.js';
import { NotFound } from '../../errors.js';
import { readJson } from '../body.js';
import { parseBody } from '../validate.js';
import type { OrgSources } from '../../wire/slices.js';

export interface SourceRouteDeps {
  sources: SourceService;
  keys: OrgKeyService;
  cache: CacheService;
  limits: Limits;
  audit: AuditLog;
  requireOrg: (p: Principal, org: string, action: Action, slices?: readonly string[]) => Promise<Org>;
  requireServerAdmin: (p: Principal, what: string) => void;
  findOrg: (name: string) => Promise<Org | undefined>;
  findSlice: (org: string, slice: string) => Promise<SliceResource | undefined>;
  /** Whether the caller may read a slice (a quiet probe of the authorizer). */
  mayRead: (p: Principal, slice: SliceResource) => boolean;
}

const priority = z.number().int().min(0).max(1_000_000);
const followBody = z.object({ org: z.string().max(100), slice: z.string().max(100), priority: priority.optional() });
const trustBody = z.object({ from: z.string().max(100) });
const globalBody = z.object({ priority: priority.nullable() });

export function sourceRoutes(api: Hono<AppEnv>, deps: SourceRouteDeps): void {
  const body = async <T>(c: import('hono').Context<AppEnv>, schema: z.ZodType<T>): Promise<T> =>
    parseBody(schema, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
  const audit = (
    c: import('hono').Context<AppEnv>,
    org: Org,
    action: string,
    target: string,
    detail?: Record<string, unknown>,
  ) =>
    deps.audit.appendNow({
      principal: c.get('principal'),
      action,
      target,
      orgId: org.id,
      ...(detail ? { detail } : {}),
    });

  api.get('/orgs/:org/sources', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    return c.json({
      slices: await deps.sources.sliceSettings(org),
      follows: await deps.sources.listFollows(org),
    } satisfies OrgSources);
  });

  api.post('/orgs/:org/follows', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    const b = await body(c, followBody);
    const p = c.get('principal');
    const follow = await deps.sources.follow(
      org,
      b,
      await deps.findSlice(b.org, b.slice),
      b.priority ?? 100,
      describePrincipal(p),
      (slice) => deps.mayRead(p, slice),
    );
    await audit(c, org, 'view.follow', `slice ${b.org}/${b.slice}`, { priority: follow.priority });
    return c.json(follow, 201);
  });

  api.delete('/orgs/:org/follows/:sourceOrg/:slice', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    await deps.sources.unfollow(org, await deps.findSlice(c.req.param('sourceOrg'), c.req.param('slice')));
    await audit(c, org, 'view.unfollow', `slice ${c.req.param('sourceOrg')}/${c.req.param('slice')}`);
    return c.json({ removed: true });
  });

  // Slice trusts concern two slices: a slice-limited admin sets them only between its own.
  api.post('/orgs/:org/slices/:slice/trusts', async (c) => {
    await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin', [c.req.param('slice')]); // before the body
    const b = await body(c, trustBody);
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin', [
      c.req.param('slice'),
      b.from,
    ]);
    await deps.sources.trustSlice(org, c.req.param('slice'), b.from, describePrincipal(c.get('principal')));
    await audit(c, org, 'slice.trust', `slice ${org.name}/${c.req.param('slice')}`, { from: b.from });
    return c.json({ slice: c.req.param('slice'), trusts: b.from }, 201);
  });

  api.delete('/orgs/:org/slices/:slice/trusts/:from', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin', [
      c.req.param('slice'),
      c.req.param('from'),
    ]);
    await deps.sources.untrustSlice(org, c.req.param('slice'), c.req.param('from'));
    await audit(c, org, 'slice.untrust', `slice ${org.name}/${c.req.param('slice')}`, { from: c.req.param('from') });
    return c.json({ removed: true });
  });

  // Server admin: what anonymous callers get on /cache (nothing unless listed here).
  api.put('/orgs/:org/slices/:slice/global', async (c) => {
    deps.requireServerAdmin(c.get('principal'), 'serving a slice to everyone on /cache');
    const org = await deps.findOrg(c.req.param('org'));
    if (!org) throw new NotFound();
    const b = await body(c, globalBody);
    await deps.sources.setGlobal(org, c.req.param('slice'), b.priority);
    await audit(c, org, 'slice.global', `slice ${org.name}/${c.req.param('slice')}`, { priority: b.priority });
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

  api.post('/orgs/:org/keys/rotate', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    const key = await deps.keys.rotate(org);
    const resigned = await deps.cache.resignOrg(org.id);
    await audit(c, org, 'key.rotate', `org ${org.name}`, { key: key.name, resigned });
    return c.json({
      org: org.name,
      active: key,
      resigned,
      keys: (await deps.keys.list(org)).filter((k) => k.state !== 'retired').map((k) => k.publicKey),
    });
  });

  api.post('/orgs/:org/keys/:name/retire', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    await deps.keys.retire(org, c.req.param('name'));
    const resigned = await deps.cache.resignOrg(org.id);
    await audit(c, org, 'key.retire', `org ${org.name}`, { key: c.req.param('name'), resigned });
    return c.json({
      org: org.name,
      retired: c.req.param('name'),
      resigned,
      keys: (await deps.keys.list(org)).filter((k) => k.state !== 'retired').map((k) => k.publicKey),
    });
  });
}
