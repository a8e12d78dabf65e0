/**
 * Route guards as scoped middleware, so each route line shows what it requires: `orgAdmin()`
 * resolves `:org` and refuses before the handler (and before any body is read), `serverAdmin(what)`
 * likewise. The admin services authorize again when they act (defence in depth); both ask the
 * same AdminGuard, so the early answer and the final one agree.
 */
import type { Context } from 'hono';
import { createMiddleware } from 'hono/factory';
import type { AdminGuard } from '../admin/guard.js';
import { Unauthenticated } from '../errors.js';
import type { Org } from '../org/service.js';
import type { AppEnv } from './context.js';

export function routeGuards(guard: AdminGuard) {
  return {
    /** The caller administers `:org` (only the slices named by these route parameters, if any). */
    orgAdmin: (...sliceParams: string[]) =>
      createMiddleware<AppEnv>(async (c, next) => {
        const slices = sliceParams.map((name) => c.req.param(name) ?? '');
        c.set(
          'org',
          await guard.orgAdmin(c.get('principal'), c.req.param('org') ?? '', slices.length ? slices : undefined),
        );
        await next();
      }),
    serverAdmin: (what: string) =>
      createMiddleware<AppEnv>(async (c, next) => {
        guard.serverAdmin(c.get('principal'), what);
        await next();
      }),
    /** Anyone but the anonymous (for routes whose org is only known from the body). */
    signedIn: (message: string) =>
      createMiddleware<AppEnv>(async (c, next) => {
        if (c.get('principal').kind === 'anonymous') throw new Unauthenticated(message);
        await next();
      }),
  };
}

export type RouteGuards = ReturnType<typeof routeGuards>;

/** The org the `orgAdmin` middleware resolved for this request. */
export function adminOrg(c: Context<AppEnv>): Org {
  const org = c.get('org');
  if (!org) throw new Error(`route ${c.req.routePath} has no orgAdmin guard`);
  return org;
}
