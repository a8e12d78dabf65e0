/**
 * What every route group of the web interface shares: its dependencies and the helpers built on
 * them once (the page context, rendering, the one 404, the org-admin check of /manage pages).
 */
import type { Context, MiddlewareHandler } from 'hono';
import type { AuditLog } from '../audit/log.js';
import type { RetentionService } from '../cache/retention.js';
import type { CacheService } from '../cache/service.js';
import type { SourceService } from '../cache/sources.js';
import type { UsageHistory } from '../cache/usage-history.js';
import type { UsageService } from '../cache/usage.js';
import type { AppEnv } from '../http/context.js';
import type { Metrics } from '../http/metrics.js';
import type { ExchangeService } from '../identity/exchange.js';
import type { TokenService } from '../identity/tokens.js';
import type { Logger } from '../log.js';
import type { OrgKeyService } from '../org/keys.js';
import type { AdminServices } from '../admin/index.js';
import type { PolicyStore } from '../org/policies.js';
import type { Org, OrgService } from '../org/service.js';
import type { Authorizer } from '../policy/authorize.js';
import type { RegistryService } from '../registry/service.js';
import type { Html, PageContext } from './layout.js';
import { notFoundPage } from './pages/discover.js';
import type { ManageTab } from './pages/manage.js';
import { csrfToken } from './session.js';

export interface WebDeps {
  registry: RegistryService;
  orgs: OrgService;
  tokens: TokenService;
  exchange: ExchangeService;
  authorizer: Authorizer;
  usage: UsageService;
  retention: RetentionService;
  history: UsageHistory;
  metrics: Metrics;
  log: Logger;
  publicUrl: () => string;
  audit: AuditLog;
  policies: PolicyStore;
  /** For the keys a signed-in viewer should trust (the docs page). */
  cache: Pick<CacheService, 'publicKeysFor'>;
  /** The org's view and link sources, and its signing keys (the slices tab). */
  sources: SourceService;
  orgKeys: OrgKeyService;
  /** Every change made on the org pages: authorize → act → audit, as for the API. */
  admin: AdminServices;
}

export type Ctx = Context<AppEnv>;

export interface RouteKit {
  base: () => string;
  ctxOf: (c: Ctx) => Promise<PageContext>;
  page: (c: Ctx, body: Html, status?: number) => Promise<Response>;
  notFound: (c: Ctx) => Promise<Response>;
  /** The org of a /manage/:org page when the caller administers it, else undefined. */
  /** Every /manage/<org> page is for the org's admins: the guard as scoped middleware (the admin services authorize each change again). */
  manageGuard: MiddlewareHandler<AppEnv>;
  /** The org of a /manage page, set by manageGuard. */
  managedOrg: (c: Ctx) => Org;
  denied: (c: Ctx) => Promise<Response>;
  tabs: () => ManageTab[];
}

export function routeKit(deps: WebDeps): RouteKit {
  const base = () => deps.publicUrl();
  const ctxOf = async (c: Ctx): Promise<PageContext> => {
    const principal = c.get('principal');
    let adminOrg: string | undefined;
    if (
      principal.kind === 'token' &&
      deps.authorizer.authorize(principal, 'org.admin', { type: 'org', org: principal.org }).allowed
    )
      adminOrg = principal.org.name;
    return { principal, csrf: csrfToken(c, base()), path: c.req.path, ...(adminOrg ? { adminOrg } : {}) };
  };
  const page = async (c: Ctx, body: Html, status = 200) => c.html(await body, status as 200);
  const notFound = async (c: Ctx) => page(c, notFoundPage(await ctxOf(c)), 404);
  const tabs = (): ManageTab[] => ['usage', 'storage', 'members', 'tokens', 'slices', 'policies', 'audit'];
  /** Signed out: sign in first. Signed in without admin rights: the same 404 as a missing org. */
  const denied = async (c: Ctx) =>
    c.get('principal').kind === 'anonymous' && c.req.method === 'GET'
      ? c.redirect(`/login?return=${encodeURIComponent(c.req.path)}`, 303)
      : notFound(c);
  const manageGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
    const org = await deps.orgs.findOrg(c.req.param('org') ?? '');
    if (!org || !deps.admin.guard.mayAdminOrg(c.get('principal'), org)) return denied(c);
    c.set('org', org);
    await next();
  };
  const managedOrg = (c: Ctx): Org => c.get('org')!;
  return { base, ctxOf, page, notFound, manageGuard, managedOrg, denied, tabs };
}
