/**
 * Assembles the HTTP application for everything but `/cache` (see cache-handler.ts). Every request
 * is authenticated once (a bad credential is a 401, never silently anonymous); every route then asks
 * the authorizer, directly or through its service.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { type Context, Hono } from 'hono';
import { routePath } from 'hono/route';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { Forbidden, NotFound } from '../errors.js';
import { isRawCiToken, requestCredential } from './credential.js';
import type { ClientResolver } from './client-address.js';
import type { TokenService } from '../identity/tokens.js';
import type { Logger } from '../log.js';
import type { AppEnv } from './context.js';
import type { RateLimiter } from './rate-limit.js';
import { CLIENT_CLOSED, missResponse } from './errors.js';
import type { Edge } from './edge.js';
import { contentEncoding, refuseContentEncoding } from './body.js';
import { type ApiDeps, apiRoutes } from './routes/api.js';
import { routeGuards } from './admin-guards.js';
import { areaOf } from './metrics.js';
import { registryRoutes } from './routes/registry.js';
import { compatRoutes, RAW_CI_TOKEN_PATHS } from './routes/compat/index.js';
import { PeerIds } from '../org/uuid-v7.js';
import { NotFoundWithReason, type RegistryService } from '../registry/service.js';
import type { UsageService } from '../cache/usage.js';

/**
 * A browser-facing surface mounted on the same app (the web interface): the HTTP layer knows it
 * only through this seam, so http/ never imports web/ (the composition root plugs it in).
 */
export interface WebSurface {
  /** Paths it answers: their errors get its HTML page when the client accepts HTML. */
  isPath(path: string): boolean;
  errorPage(c: Context<AppEnv>, status: number, message: string): Promise<Response>;
  /** Mounts its routes (before /api/v1's catch-all). */
  mount(app: Hono<AppEnv>): void;
}

export interface AppDeps extends ApiDeps {
  /** The web interface, if served. */
  web?: WebSurface;
  /** Authentication, error table, access log and metrics, shared with the /cache handler. */
  edge: Edge;
  registry: RegistryService;
  usage: UsageService;
  tokens: TokenService;
  log: Logger;
  jwks: () => unknown;
  rotateKeys: () => Promise<string>;
  /** Database and blob store checks for /readyz. */
  readiness: () => Promise<ReadinessCheck[]>;
  /** Serve /metrics without authentication (for a scraper on a private network). */
  publicMetrics: boolean;
  /** FLOE_METRICS_TOKEN: a secret that opens /metrics and nothing else (least privilege for scrapers). */
  metricsToken?: string | undefined;
  /** Process metrics appended to /metrics (memory, event loop, GC, handles). */
  processMetrics?: { render(): Promise<string> };
  /** Logins and identity exchanges per client address (shared with /cache's raw CI tokens). */
  loginLimiter: RateLimiter;
  /** A raw CI token traded for a Floe token, under `loginLimiter` (credential.ts, shared with /cache). */
  exchangeRawCiToken: (jwt: string, clientIp: string | undefined) => Promise<string>;
  resolveClient: ClientResolver;
  /** nix-cache-info's Priority (Attic's cache priority too). */
  cachePriority?: number;
}

/** What a readiness probe found out about one backend (`disk`: free space; `server`: shutting down). */
export interface ReadinessCheck {
  backend: 'database' | 'blobs' | 'disk' | 'server';
  ok: boolean;
  ms: number;
  error?: string;
}

/** The matched route's template (`/api/v1/orgs/:org`), or "unmatched": never the raw path. */
function routeTemplate(c: Context<AppEnv>): string {
  const r = routePath(c, -1);
  return r === '*' || r === '/*' || r === '' ? 'unmatched' : r;
}

/** Sets a header on the response, copying it first if its headers are immutable (a fetched Response). */
function setResponseHeader(c: Context<AppEnv>, name: string, value: string): void {
  try {
    c.res.headers.set(name, value);
  } catch {
    c.res = new Response(c.res.body, c.res);
    c.res.headers.set(name, value);
  }
}

/** Constant-time comparison of the presented credential with FLOE_METRICS_TOKEN (digests: equal lengths). */
function isMetricsToken(expected: string | undefined, presented: string | undefined): boolean {
  if (!expected || presented === undefined) return false;
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(expected), digest(presented));
}

export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use('*', async (c, next) => {
    const start = deps.edge.begin(c.env.incoming);
    c.set('requestId', start.requestId);
    c.set('principal', start.principal);
    c.set('edge', start);
    await next();
    const headersSent = Boolean(c.env?.outgoing?.headersSent);
    const status = headersSent ? c.env.outgoing.statusCode : c.res.status;
    if (!headersSent) {
      setResponseHeader(c, 'X-Request-Id', start.requestId);
      // Answered before the body was read (a 400/413/401 on a large upload): the unread rest would
      // be parsed as the next request, or the drain give up and cut the connection under it. Say
      // so, and close, as /cache does.
      if (c.env?.incoming && !c.env.incoming.complete) setResponseHeader(c, 'Connection', 'close');
    }
    const { path, method } = c.req;
    deps.edge.finish(start, {
      area: areaOf(path),
      method,
      route: routeTemplate(c),
      path,
      status,
      principal: c.get('principal'),
    });
  });

  // No route of this app decodes a request body (see body.ts): refuse a compressed one outright
  // rather than misread it.
  app.use('*', async (c, next) => {
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD')
      refuseContentEncoding(contentEncoding(c.env.incoming.headers));
    await next();
  });

  // Logins and exchanges are rate limited per client address (they reach out to IdPs and STS).
  const limitLogin = (c: import('hono').Context<AppEnv>) => deps.loginLimiter.limitLogin(c.get('principal').client?.ip);
  app.use('*', async (c, next) => {
    const path = c.req.path;
    if (
      (c.req.method === 'POST' && path.startsWith('/api/v1/auth/')) ||
      path === '/login/start' ||
      path === '/login/callback' ||
      path === '/login/token'
    )
      limitLogin(c);
    // The metrics token is no Floe token: it is checked by /metrics alone, never verified as one.
    if (path === '/metrics' && isMetricsToken(deps.metricsToken, requestCredential(c.req.header('authorization'))))
      return next();
    // flakehub-push and magic-nix-cache send the CI identity token itself, on every call.
    const exchangeCiToken = async (credential: string) =>
      RAW_CI_TOKEN_PATHS.test(path) && isRawCiToken(credential)
        ? deps.exchangeRawCiToken(credential, c.get('principal').client?.ip)
        : credential;
    c.set('principal', await deps.edge.authenticate(c.get('edge'), c.req.header('authorization'), exchangeCiToken));
    await next();
  });

  app.onError((err, c) => {
    const failure = deps.edge.fail(c.get('edge'), err, c.env.incoming, c.env.outgoing);
    if (failure.kind === 'client-gone') return new Response(null, { status: CLIENT_CLOSED });
    if (err instanceof NotFoundWithReason && c.req.path.startsWith('/api/')) {
      // Said only after the caller was allowed to see the flake itself.
      return c.json({ error: 'not_found', message: err.message }, 404, { 'Cache-Control': 'no-store' });
    }
    if (failure.kind === 'miss') return missResponse();
    const { body, headers } = failure;
    const status = body.status as ContentfulStatusCode;
    if (c.req.path.startsWith('/api/')) return c.json({ error: body.code, message: body.message }, status, headers);
    if (deps.web?.isPath(c.req.path) && (c.req.header('accept') ?? '').includes('text/html')) {
      return deps.web.errorPage(c, body.status, body.message);
    }
    return c.text(`${body.message}\n`, status, headers);
  });

  app.notFound(() => missResponse());

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const checks = await deps.readiness();
    const failed = checks.filter((x) => !x.ok);
    return c.json(
      {
        status: failed.length ? 'unavailable' : 'ready',
        checks,
        ...(failed.length ? { failed: failed.map((x) => x.backend) } : {}),
      },
      failed.length ? 503 : 200,
      { 'Cache-Control': 'no-store' },
    );
  });
  app.get('/metrics', async (c) => {
    if (!deps.publicMetrics && !isMetricsToken(deps.metricsToken, requestCredential(c.req.header('authorization')))) {
      const d = deps.authorizer.authorize(c.get('principal'), 'server.admin', { type: 'server' });
      if (!d.allowed)
        throw new Forbidden('metrics need FLOE_METRICS_TOKEN or the server admin token (or FLOE_METRICS_PUBLIC=1)');
    }
    const processText = deps.processMetrics ? await deps.processMetrics.render() : '';
    return c.text(deps.metrics.render() + processText, 200, { 'Content-Type': 'text/plain; version=0.0.4' });
  });
  app.get('/.well-known/jwks.json', (c) =>
    c.json(deps.jwks() as object, 200, { 'Cache-Control': 'public, max-age=300' }),
  );
  // The keys to put in trusted-public-keys: an org's (`?org=`), or those of the caller's view.
  app.get('/.well-known/nix-cache-key', async (c) => {
    const org = c.req.query('org');
    const keys =
      org !== undefined ? await deps.cache.orgPublicKeys(org) : await deps.cache.publicKeysFor(c.get('principal'));
    if (!keys || keys.length === 0) {
      const why =
        org !== undefined
          ? `no org ${JSON.stringify(org.slice(0, 80))}`
          : "no keys for this caller: its view holds no slice (authenticate, or ask for an org's keys with ?org=<org>)";
      return c.text(`${why}\n`, 404, { 'Cache-Control': 'no-store' });
    }
    return c.text(`${keys.join(' ')}\n`, 200, { 'Cache-Control': 'no-store' });
  });
  app.post('/api/v1/keys/rotate', routeGuards(deps.admin.guard).serverAdmin('rotating keys'), async (c) =>
    c.json({ kid: await deps.rotateKeys() }),
  );
  compatRoutes(app, {
    cache: deps.cache,
    orgs: deps.orgs,
    registry: deps.registry,
    peerIds: new PeerIds(deps.storage.db),
    limits: deps.limits,
    publicUrl: deps.publicUrl,
    priority: deps.cachePriority ?? 40,
    upstreamKeyNames: async () => [
      ...new Set(
        (await deps.storage.upstreams.list()).flatMap((u) => u.publicKeys.map((k) => k.slice(0, k.indexOf(':')))),
      ),
    ],
    log: deps.log,
    oidcAudience: () => deps.exchange.defaultAudience,
    tokens: deps.tokens,
    audit: deps.audit,
  });
  registryRoutes(app, { registry: deps.registry, limits: deps.limits, publicUrl: deps.publicUrl });
  deps.web?.mount(app);
  app.route('/api/v1', apiRoutes(deps));
  app.all('/api/*', () => {
    throw new NotFound();
  });
  return app;
}
