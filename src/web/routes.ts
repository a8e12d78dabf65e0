/**
 * The web interface, served by `floe serve` on its own paths: `/` (search), `/flakes/...`,
 * `/docs`, `/login...`, `/logout`, `/manage/<org>/...` and `/static/...`. Server-rendered HTML,
 * no script (the Content-Security-Policy forbids it), forms with CSRF tokens. Every read goes
 * through the same services (and so the same authorizer) as the API.
 */
import type { Context, Hono, Next } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { html } from 'hono/html';
import { FloeError, Forbidden, NotFound, isClientError } from '../errors.js';
import type { ExchangeService } from '../identity/exchange.js';
import type { Principal, Scope } from '../identity/principal.js';
import { parseTtl, type TokenService } from '../identity/tokens.js';
import type { Authorizer } from '../policy/authorize.js';
import { type Org, type OrgService, parseName } from '../org/service.js';
import type { RegistryService } from '../registry/service.js';
import type { UsageService } from '../cache/usage.js';
import type { RetentionService } from '../cache/retention.js';
import type { UsageHistory } from '../cache/usage-history.js';
import { parseStorePath, parseStorePathBase } from '../nix/store-path.js';
import { parseDuration, parseSize } from '../config.js';
import type { AppEnv } from '../http/context.js';
import type { AuditLog } from '../audit/log.js';
import { InvalidPolicy, type PolicyStore } from '../org/policies.js';
import { decide, type OrgPolicySet } from '../policy/authorize.js';
import { ACTIONS, type Action } from '../policy/actions.js';
import { validatePolicyFile } from '../policy/cedar.js';
import { hypotheticalPrincipal, hypotheticalResource } from '../http/routes/policy.js';
import { withClient } from '../identity/principal.js';
import { EXAMPLE_POLICY, type PolicyForm, type PolicyTest, auditTab, policiesTab } from './pages/governance.js';
import type { Metrics } from '../http/metrics.js';
import type { Logger } from '../log.js';
import { type Html, type PageContext, csrfField, layout, notice } from './layout.js';
import { CSS, CSS_PATH } from './style.js';
import {
  clearSession,
  csrfFailure,
  csrfToken,
  loginCookie,
  readLoginCookie,
  safeReturnTo,
  sessionToken,
  setSession,
} from './session.js';
import {
  decodePending,
  encodePending,
  finishLogin,
  IDP_UNREACHABLE,
  type IdpFetch,
  startLogin,
} from './oidc-client.js';
import { docsPage, flakePage, homePage, latestRelease, notFoundPage, orgPage, releasePage } from './pages/discover.js';
import { type ManageTab, managePage, membersTab, slicesTab, tokensTab, usageTab } from './pages/manage.js';
import { type PinForm, type StorageForms, storageTab } from './pages/storage.js';

import type { CacheService } from '../cache/service.js';
import type { SourceService } from '../cache/sources.js';
import type { OrgKeyService } from '../org/keys.js';
import type { AdminServices } from '../admin/index.js';

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

/** Web sessions last at most this long, whatever the token they came from. */
const SESSION_TTL_SECONDS = 8 * 3600;
const WEB_PATHS = ['/', '/docs', '/flakes/*', '/login', '/login/*', '/logout', '/manage/*'];

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'same-origin',
};

type Ctx = Context<AppEnv>;

/** Paths the web interface answers (errors there get an HTML page, not text). */
export function isWebPath(path: string): boolean {
  return (
    path === '/' ||
    path === '/docs' ||
    path === '/logout' ||
    path === '/login' ||
    /^\/(flakes|login|manage)\//.test(path)
  );
}

/** An error on a web page, as a page: client errors say what to fix, server errors only the request id. */
export async function webErrorPage(c: Ctx, publicUrl: string, status: number, message: string): Promise<Response> {
  const ctx: PageContext = { principal: c.get('principal'), csrf: csrfToken(c, publicUrl), path: c.req.path };
  const title =
    status >= 500
      ? 'Something went wrong'
      : status === 403
        ? 'Not allowed'
        : status === 401
          ? 'Sign in again'
          : 'That did not work';
  const body = await layout(
    ctx,
    title,
    html`<div class="card empty"><h1>${title}</h1><p>${message}</p><p><a class="btn secondary" href="/">Back to flakes</a></p></div>`,
  );
  const res = await c.html(body, status as 200);
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.headers.set(k, v);
  res.headers.set('Cache-Control', 'no-store');
  return res;
}

export function webRoutes(app: Hono<AppEnv>, deps: WebDeps): void {
  const base = () => deps.publicUrl();
  const redirectUri = () => `${base()}/login/callback`;
  const idpFetch: IdpFetch = (url, req) => deps.exchange.verifier.fetchFromIdp(url, req);

  // Session cookie → principal (web paths only), security headers, CSRF on every POST.
  const session = async (c: Ctx, next: Next) => {
    const token = sessionToken(c);
    if (token !== undefined && c.get('principal').kind === 'anonymous') {
      try {
        c.set('principal', withClient(await deps.tokens.verify(token), c.get('principal').client!));
      } catch {
        clearSession(c, base()); // expired or revoked: simply signed out
      }
    }
    if (c.req.method === 'POST') {
      const form = await c.req.parseBody({ all: true });
      const failure = csrfFailure(c, base(), form._csrf);
      if (failure) {
        deps.log.info({ reqId: c.get('requestId'), reason: failure }, 'web form refused');
        return c.html(
          layout(
            await ctxOf(c),
            'Refused',
            html`<div class="card empty"><h1>This form has expired</h1><p>${failure}. Go back, reload the page and try again.</p></div>`,
          ),
          403,
          SECURITY_HEADERS,
        );
      }
    }
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) if (!c.res.headers.has(k)) c.res.headers.set(k, v);
    if (c.get('principal').kind !== 'anonymous' || c.req.method !== 'GET')
      c.res.headers.set('Cache-Control', 'no-store');
    else if (!c.res.headers.has('Cache-Control')) c.res.headers.set('Cache-Control', 'private, no-cache');
  };
  const limit = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.text('form too large\n', 413) });
  for (const p of WEB_PATHS) {
    app.use(p, limit);
    app.use(p, session);
  }

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

  app.get(CSS_PATH, (c) =>
    c.body(CSS, 200, {
      'Content-Type': 'text/css; charset=utf-8',
      'Cache-Control': 'public, max-age=31536000, immutable',
    }),
  );

  // ---- Discover --------------------------------------------------------------------------------
  app.get('/', async (c) => {
    const p = c.get('principal');
    const q = (c.req.query('q') ?? '').slice(0, 200);
    const all = await deps.registry.listFlakes(p, { limit: 500_000 });
    const counts = new Map<string, number>();
    for (const f of all) counts.set(f.org, (counts.get(f.org) ?? 0) + 1);
    const results = q.trim()
      ? await deps.registry.listFlakes(p, { query: q, limit: 60 })
      : [...all].sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1)).slice(0, 24);
    return page(
      c,
      homePage(
        await ctxOf(c),
        q,
        results,
        [...counts].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, flakes]) => ({ name, flakes })),
      ),
    );
  });
  app.get('/docs', async (c) =>
    page(c, docsPage(await ctxOf(c), base(), await deps.cache.publicKeysFor(c.get('principal')))),
  );
  app.get('/flakes/:org', async (c) => {
    const flakes = await deps.registry.listFlakes(c.get('principal'), { org: c.req.param('org'), limit: 500 });
    const ctx = await ctxOf(c);
    if (!flakes.length && ctx.adminOrg !== c.req.param('org')) return notFound(c);
    return page(c, orgPage(ctx, c.req.param('org'), flakes));
  });
  app.get('/flakes/:org/:flake', async (c) => {
    const d = await deps.registry.details(c.get('principal'), c.req.param('org'), c.req.param('flake'));
    if (!d) return notFound(c);
    const latest = latestRelease(d);
    const readme = latest ? await deps.registry.readmeHtml(latest) : undefined;
    return page(c, flakePage(await ctxOf(c), base(), d, readme));
  });
  app.get('/flakes/:org/:flake/releases/:version', async (c) => {
    const d = await deps.registry.details(c.get('principal'), c.req.param('org'), c.req.param('flake'));
    const body = d && releasePage(await ctxOf(c), base(), d, c.req.param('version'));
    if (!body) return notFound(c);
    return page(c, body);
  });

  // ---- Sign in / out -----------------------------------------------------------------------------
  app.get('/login', async (c) => {
    const ctx = await ctxOf(c);
    const returnTo = safeReturnTo(c.req.query('return'));
    const logins = await deps.exchange.interactiveLogins();
    const error = c.req.query('error');
    // form-action also governs the redirect that follows a submission: allow the providers' origins.
    const origins = [...new Set(logins.map((l) => new URL(l.issuer).origin))];
    c.header(
      'Content-Security-Policy',
      SECURITY_HEADERS['Content-Security-Policy']!.replace(
        "form-action 'self'",
        `form-action 'self' ${origins.join(' ')}`,
      ),
    );
    return page(
      c,
      layout(
        ctx,
        'Sign in',
        html`<div class="login-box">
        <h1>Sign in to Floe</h1>
        <p class="lead">With your organization's identity provider.</p>
        ${error ? notice('error', error.slice(0, 300)) : ''}
        <section class="card" aria-labelledby="providers-title">
          <h2 id="providers-title" class="sr-only">Identity providers</h2>
          ${
            logins.length
              ? logins.map(
                  (l) => html`<form method="post" action="/login/start" class="provider">
                ${csrfField(ctx)}<input type="hidden" name="org" value="${l.org}"><input type="hidden" name="issuer" value="${l.issuer}"><input type="hidden" name="return" value="${returnTo}">
                <div><strong>${l.org}</strong><div class="small muted">${new URL(l.issuer).host}</div></div>
                <button class="btn" type="submit">Continue with ${l.org}</button>
              </form>`,
                )
              : html`<p class="muted">No org lets people sign in here yet. An org admin adds an OIDC trust with a client id on the org's Members page (or <code>floe trust add ORG --spec '{"provider":"oidc",…,"clientId":"…"}'</code>).</p>`
          }
        </section>
        <details class="card small"><summary>Sign in with a token</summary>
          <form method="post" action="/login/token">
            ${csrfField(ctx)}<input type="hidden" name="return" value="${returnTo}">
            <div class="field"><label for="token">Floe token</label><input id="token" name="token" type="password" autocomplete="off" required></div>
            <p class="hint">For server admins and automation accounts. The browser gets its own short-lived token; yours is not stored.</p>
            <button class="btn secondary" type="submit">Sign in with token</button>
          </form>
        </details>
      </div>`,
      ),
    );
  });

  app.post('/login/start', async (c) => {
    const form = await c.req.parseBody();
    const returnTo = safeReturnTo(form.return);
    const login = (await deps.exchange.interactiveLogins()).find((l) => l.org === form.org && l.issuer === form.issuer);
    if (!login) return c.redirect(`/login?error=${encodeURIComponent('that sign-in option no longer exists')}`, 303);
    try {
      const { pending, authorizeUrl } = await startLogin(login, redirectUri(), returnTo, idpFetch);
      loginCookie(c, base(), encodePending(pending));
      return c.redirect(authorizeUrl, 303);
    } catch (err) {
      // Never the fetch error or the provider's answer: the caller is anonymous.
      deps.log.warn(
        { reqId: c.get('requestId'), org: login.org, issuer: login.issuer, err: (err as Error).cause ?? err },
        'web sign-in: identity provider unusable',
      );
      return c.redirect(`/login?error=${encodeURIComponent(IDP_UNREACHABLE)}`, 303);
    }
  });

  app.get('/login/callback', async (c) => {
    const pending = decodePending(readLoginCookie(c));
    loginCookie(c, base(), undefined);
    const fail = (msg: string) => {
      deps.metrics.inc('floe_web_logins_total', { method: 'oidc', result: 'failed' });
      return c.redirect(`/login?error=${encodeURIComponent(msg)}`, 303);
    };
    if (!pending || c.req.query('state') !== pending.state)
      return fail('the sign-in expired or was started elsewhere; try again');
    // The cookie is the browser's word: only talk to an identity provider an org configured, and
    // only send the person back inside this site.
    const configured = (await deps.exchange.interactiveLogins()).find(
      (l) => l.org === pending.org && l.issuer === pending.issuer && l.clientId === pending.clientId,
    );
    if (!configured) return fail('that sign-in option no longer exists');
    pending.returnTo = safeReturnTo(pending.returnTo);
    if (c.req.query('error')) return fail(`the identity provider refused: ${c.req.query('error')}`);
    const code = c.req.query('code');
    if (!code) return fail('the identity provider sent no code');
    try {
      const idToken = await finishLogin(pending, code, redirectUri(), idpFetch);
      const result = await deps.exchange.exchange(idToken, { org: pending.org, ttlSeconds: SESSION_TTL_SECONDS });
      deps.audit.append({
        principal: c.get('principal'),
        action: 'auth.login',
        target: result.subject,
        orgId: result.orgId,
        outcome: 'allow',
        reason: 'web oidc login',
        detail: {
          tokenId: result.id,
          trustId: result.trustId,
          scopes: result.scopes,
          expiresAt: result.expiresAt.toISOString(),
        },
      });
      setSession(c, base(), result.token, result.expiresAt);
      deps.metrics.inc('floe_web_logins_total', { method: 'oidc', result: 'ok' });
      deps.log.info({ reqId: c.get('requestId'), org: result.org, subject: result.subject }, 'web sign-in');
      return c.redirect(pending.returnTo, 303);
    } catch (err) {
      deps.audit.append({
        principal: c.get('principal'),
        action: 'auth.login',
        target: 'web oidc',
        orgId: null,
        outcome: 'deny',
        reason: err instanceof Error ? err.message : String(err),
      });
      if ((err as Error).cause !== undefined)
        deps.log.warn(
          { reqId: c.get('requestId'), org: pending.org, issuer: pending.issuer, err: (err as Error).cause },
          'web sign-in: identity provider unusable',
        );
      return fail(err instanceof FloeError ? err.message : 'sign-in failed');
    }
  });

  app.post('/login/token', async (c) => {
    const form = await c.req.parseBody();
    const returnTo = safeReturnTo(form.return);
    try {
      const p = await deps.tokens.verify(String(form.token ?? '').trim());
      if (p.kind === 'anonymous') throw new Forbidden('not a token');
      // A session is a new token: it must not be worth more than the one it comes from.
      if (p.kind === 'token' && p.deploy)
        throw new Forbidden('deploy-only device tokens cannot sign in to the web interface');
      const minted = await deps.tokens.mint({
        subject: p.subject,
        ttlSeconds: Math.min(
          SESSION_TTL_SECONDS,
          p.kind === 'token' && p.expiresAt
            ? Math.max(1, p.expiresAt - Math.floor(Date.now() / 1000))
            : SESSION_TTL_SECONDS,
        ),
        description: `web session (from token ${p.tokenId})`,
        grant:
          p.kind === 'server-admin'
            ? { role: 'server-admin' }
            : {
                org: p.org,
                scopes: [...p.scopes],
                slices: p.slices ? [...p.slices] : null,
                ...(p.identity ? { identity: p.identity } : {}),
                ...(p.network ? { network: p.network } : {}),
              },
      });
      setSession(c, base(), minted.token, minted.expiresAt);
      deps.audit.append({
        principal: p,
        action: 'auth.login',
        target: p.subject,
        orgId: p.kind === 'token' ? p.org.id : null,
        outcome: 'allow',
        reason: 'web token login',
        detail: { tokenId: minted.id, from: p.tokenId, expiresAt: minted.expiresAt.toISOString() },
      });
      deps.metrics.inc('floe_web_logins_total', { method: 'token', result: 'ok' });
      return c.redirect(returnTo, 303);
    } catch (err) {
      deps.metrics.inc('floe_web_logins_total', { method: 'token', result: 'failed' });
      return c.redirect(
        `/login?error=${encodeURIComponent(err instanceof FloeError ? err.message : 'invalid token')}`,
        303,
      );
    }
  });

  app.post('/logout', async (c) => {
    const p = c.get('principal');
    // The session's token dies with the session (not a token someone pasted: sessions mint their own).
    if (p.kind !== 'anonymous') {
      await deps.tokens.revoke(p.tokenId);
      deps.audit.append({
        principal: p,
        action: 'auth.logout',
        target: p.subject,
        orgId: p.kind === 'token' ? p.org.id : null,
        outcome: 'event',
        reason: 'web sign-out',
        detail: { tokenId: p.tokenId },
      });
    }
    clearSession(c, base());
    return c.redirect('/', 303);
  });

  // ---- Run an org -----------------------------------------------------------------------------------
  const tabs = (): ManageTab[] => ['usage', 'storage', 'members', 'tokens', 'slices', 'policies', 'audit'];
  /** Signed out: sign in first. Signed in without admin rights: the same 404 as a missing org. */
  const denied = async (c: Ctx) =>
    c.get('principal').kind === 'anonymous' && c.req.method === 'GET'
      ? c.redirect(`/login?return=${encodeURIComponent(c.req.path)}`, 303)
      : notFound(c);
  // Every /manage/<org> page is for the org's admins: the guard as scoped middleware (the admin
  // services authorize each change again).
  app.use('/manage/:org/*', async (c, next) => {
    const org = await deps.orgs.findOrg(c.req.param('org') ?? '');
    if (!org || !deps.admin.guard.mayAdminOrg(c.get('principal'), org)) return denied(c);
    c.set('org', org);
    await next();
  });
  const managedOrg = (c: Ctx): Org => c.get('org')!;

  app.get('/manage/:org', async (c) => {
    const org = managedOrg(c);
    const usage = await deps.usage.orgUsage(org);
    const history = await deps.history.history(org, 30);
    const m = deps.metrics;
    const served = {
      hits: m.total('floe_narinfo_lookups_total', { result: 'hit' }),
      misses: m.total('floe_narinfo_lookups_total', { result: 'miss_or_denied' }),
      narBytesServed: m.total('floe_nar_bytes_served_total'),
      uploadsAccepted: m.total('floe_uploads_total', { result: 'accepted' }),
      uploadsRejected: m.total('floe_uploads_total', { result: 'rejected' }),
      since: new Date(m.total('floe_process_start_time_seconds') * 1000).toISOString(),
    };
    return page(
      c,
      managePage(await ctxOf(c), org.name, 'usage', tabs(), usageTab(org.name, usage, served, base(), history)),
    );
  });

  // ---- Storage: usage, quota (server admin), retention and pins (org admins) -------------------------
  // The same service calls, authorization and audit entries as routes/storage.ts.
  const storagePage = async (c: Ctx, org: Org, forms: StorageForms = {}, status = 200) => {
    const ctx = await ctxOf(c);
    const usage = await deps.usage.storage(org);
    const pins = await deps.retention.listPins(org);
    return page(
      c,
      managePage(
        ctx,
        org.name,
        'storage',
        tabs(),
        storageTab(ctx, org.name, usage, pins, {
          canSetQuota: deps.admin.guard.isServerAdmin(c.get('principal')),
          forms,
        }),
      ),
      status,
    );
  };
  const formError = (err: unknown): string => {
    if (!isClientError(err)) throw err;
    return err.message;
  };
  app.get('/manage/:org/storage', async (c) => {
    const org = managedOrg(c);
    const done = c.req.query('done');
    return storagePage(c, org, done ? { done } : {});
  });
  app.post('/manage/:org/storage/pins', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody();
    const pin: PinForm = {
      name: String(form.name ?? '').trim(),
      storePath: String(form.storePath ?? '').trim(),
      ttl: String(form.ttl ?? '').trim(),
    };
    let error: PinForm['error'];
    const check = <T>(field: NonNullable<PinForm['error']>['field'], f: () => T): T | undefined => {
      try {
        return f();
      } catch (err) {
        error ??= { field, message: formError(err) };
        return undefined;
      }
    };
    check('name', () => parseName('pin', pin.name));
    const storePath = check('storePath', () =>
      pin.storePath.startsWith('/') ? parseStorePath(pin.storePath) : parseStorePathBase(pin.storePath),
    );
    const ttlSeconds = pin.ttl ? check('ttl', () => parseDuration(pin.ttl, 'expires after')) : undefined;
    if (!error && storePath) {
      // Refused when no slice of the org holds the path.
      await deps.admin.storage
        .pin(c.get('principal'), org, {
          name: pin.name,
          storePath,
          ...(ttlSeconds ? { ttlSeconds, ttl: pin.ttl } : {}),
        })
        .catch((err: unknown) => {
          error = { field: 'storePath', message: formError(err) };
        });
    }
    if (error || !storePath) return storagePage(c, org, { pin: { ...pin, ...(error ? { error } : {}) } }, 400);
    return c.redirect(`/manage/${org.name}/storage?done=pin-added`, 303);
  });
  app.post('/manage/:org/storage/pins/:name/remove', async (c) => {
    const org = managedOrg(c);
    const name = c.req.param('name');
    const removed = await deps.admin.storage.unpin(c.get('principal'), org, name).then(
      () => true,
      (err: unknown) => {
        if (err instanceof NotFound) return false;
        throw err;
      },
    );
    return c.redirect(`/manage/${org.name}/storage${removed ? '?done=pin-removed' : ''}`, 303);
  });
  app.post('/manage/:org/storage/retention', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody();
    const retention = {
      mode: form.mode === 'forever' ? ('forever' as const) : ('window' as const),
      value: String(form.retention ?? '').trim(),
    };
    let retentionSeconds: number | null;
    try {
      retentionSeconds = retention.mode === 'forever' ? null : parseDuration(retention.value, 'retention');
    } catch (err) {
      return storagePage(c, org, { retention: { ...retention, error: formError(err) } }, 400);
    }
    await deps.admin.storage.updateSettings(c.get('principal'), org, { retention: retentionSeconds });
    return c.redirect(`/manage/${org.name}/storage?done=retention`, 303);
  });
  app.post('/manage/:org/storage/quota', async (c) => {
    const org = managedOrg(c);
    const p = c.get('principal');
    // Org admins choose how long their pushes stay; only the server admin hands out storage
    // (refused before the form is read, as the service would).
    deps.admin.guard.serverAdmin(p, 'setting a quota');
    const value = String((await c.req.parseBody()).quota ?? '').trim();
    let quotaBytes: number | null;
    try {
      quotaBytes = value === '' || value.toLowerCase() === 'none' ? null : parseSize(value, 'quota');
    } catch (err) {
      return storagePage(c, org, { quota: { value, error: formError(err) } }, 400);
    }
    await deps.admin.storage.updateSettings(p, org, { quota: quotaBytes });
    return c.redirect(`/manage/${org.name}/storage?done=quota`, 303);
  });

  const membersPage = async (
    c: Ctx,
    org: Org,
    form: Parameters<typeof membersTab>[3] = {},
    flash?: Html,
    status = 200,
  ) =>
    page(
      c,
      managePage(
        await ctxOf(c),
        org.name,
        'members',
        tabs(),
        membersTab(await ctxOf(c), org.name, await deps.exchange.listTrusts(org), form),
        flash,
      ),
      status,
    );
  app.get('/manage/:org/members', async (c) => {
    return membersPage(c, managedOrg(c));
  });
  app.post('/manage/:org/members/oidc', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody({ all: true });
    const str = (k: string) => String(form[k] ?? '').trim();
    const scopes = ([] as unknown[]).concat(form.scopes ?? []).map(String);
    try {
      await deps.admin.access.addTrust(c.get('principal'), org, {
        provider: 'oidc',
        issuer: str('issuer'),
        clientId: str('clientId'),
        claims: { [str('claim')]: str('value') },
        scopes,
      });
    } catch (err) {
      if (!isClientError(err)) throw err;
      return membersPage(
        c,
        org,
        {
          error: err.message,
          which: 'oidc',
          oidc: { issuer: str('issuer'), clientId: str('clientId'), claim: str('claim'), value: str('value') },
        },
        undefined,
        400,
      );
    }
    return membersPage(c, org, {}, notice('ok', 'Trust added.'));
  });
  app.post('/manage/:org/members/json', async (c) => {
    const org = managedOrg(c);
    const text = String((await c.req.parseBody()).spec ?? '');
    try {
      let spec: unknown;
      try {
        spec = JSON.parse(text);
      } catch (err) {
        throw new FloeError('invalid_input', `not JSON: ${(err as Error).message}`);
      }
      await deps.admin.access.addTrust(c.get('principal'), org, spec);
    } catch (err) {
      if (!isClientError(err)) throw err;
      return membersPage(c, org, { error: err.message, which: 'json', json: text }, undefined, 400);
    }
    return membersPage(c, org, {}, notice('ok', 'Trust added.'));
  });
  app.post('/manage/:org/members/:id/remove', async (c) => {
    const org = managedOrg(c);
    // A trust that is already gone leaves the page as it is.
    await deps.admin.access.removeTrust(c.get('principal'), org, c.req.param('id')).catch(() => undefined);
    return c.redirect(`/manage/${org.name}/members`, 303);
  });

  const tokensPage = async (
    c: Ctx,
    org: Org,
    opts: Omit<Parameters<typeof tokensTab>[4], 'all'> = {},
    status = 200,
  ) => {
    const all = c.req.query('all') === '1';
    const rows = await deps.tokens.list(org.id, { includeInactive: all });
    const slices = (await deps.orgs.listSlices(org)).map((s) => s.name);
    return page(
      c,
      managePage(
        await ctxOf(c),
        org.name,
        'tokens',
        tabs(),
        tokensTab(await ctxOf(c), org.name, rows, slices, { all, ...opts }),
      ),
      status,
    );
  };
  app.get('/manage/:org/tokens', async (c) => {
    return tokensPage(c, managedOrg(c));
  });
  app.post('/manage/:org/tokens', async (c) => {
    const org = managedOrg(c);
    const p = c.get('principal');
    const form = await c.req.parseBody({ all: true });
    const list = (k: string) => ([] as unknown[]).concat(form[k] ?? []).map(String);
    try {
      const name = String(form.name ?? '').trim();
      if (!/^[A-Za-z0-9._@:-]{1,100}$/.test(name))
        throw new FloeError('invalid_input', 'name: 1-100 letters, digits, ".", "_", "@", ":" or "-"');
      const device = form.kind !== 'api';
      const scopes = (
        device ? ['read'] : list('scopes').filter((s) => ['read', 'write', 'publish', 'admin'].includes(s))
      ) as Scope[];
      if (!scopes.length) throw new FloeError('invalid_input', 'choose at least one scope');
      const chosen = list('slices');
      const slices = chosen.includes('*') || chosen.length === 0 ? null : chosen;
      // A device token may be deploy-only: it then reads exactly the closures of the named outputs.
      const deploy = device
        ? String(form.deploy ?? '')
            .split(/\r?\n/)
            .map((l) => l.trim())
            .filter(Boolean)
            .slice(0, 50)
        : [];
      const description = String(form.description ?? '')
        .trim()
        .slice(0, 500);
      // Never past the session's (or pasted token's) own end, the server admin excepted: the
      // lifetime chosen is shortened to it, and the page shows the expiry.
      const minted = await deps.admin.access.mintOrgToken(p, {
        org: org.name,
        scopes,
        slices,
        defaultTtlSeconds: parseTtl(String(form.ttl ?? '90d')),
        subject: `${device ? 'device' : 'token'}:${name}`,
        ...(description ? { description } : {}),
        defaultDescription: `created in the web interface by ${describeShort(p)}`,
        deploy,
      });
      const subject = minted.subject;
      return tokensPage(
        c,
        org,
        { created: { token: minted.token, subject, expiresAt: minted.expiresAt.toISOString() } },
        201,
      );
    } catch (err) {
      if (!isClientError(err)) throw err;
      return tokensPage(c, org, { error: err.message }, 400);
    }
  });
  app.post('/manage/:org/tokens/:id/revoke', async (c) => {
    const org = managedOrg(c);
    const revoked = await deps.admin.access
      .revokeToken(c.get('principal'), c.req.param('id'), org)
      .catch((err: unknown) => {
        if (err instanceof NotFound) return undefined;
        throw err;
      });
    if (!revoked) return notFound(c);
    return c.redirect(`/manage/${org.name}/tokens`, 303);
  });

  const slicesPage = async (c: Ctx, org: Org, error?: string, status = 200) => {
    const view = {
      slices: await deps.sources.sliceSettings(org),
      follows: await deps.sources.listFollows(org),
      keys: (await deps.orgKeys.list(org)).filter((k) => k.state !== 'retired'),
    };
    return page(
      c,
      managePage(await ctxOf(c), org.name, 'slices', tabs(), slicesTab(await ctxOf(c), org.name, base(), view, error)),
      status,
    );
  };
  app.get('/manage/:org/slices', async (c) => {
    return slicesPage(c, managedOrg(c));
  });
  app.post('/manage/:org/slices', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody();
    try {
      await deps.admin.orgs.createSlice(c.get('principal'), org, {
        name: String(form.name ?? '').trim(),
        public: form.public === '1',
        inView: form.inView === '1',
      });
    } catch (err) {
      if (!isClientError(err)) throw err;
      return slicesPage(c, org, err.message, 400);
    }
    return c.redirect(`/manage/${org.name}/slices`, 303);
  });
  app.post('/manage/:org/slices/:slice/visibility', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody();
    // A slice that is not there leaves the page as it is.
    await deps.admin.orgs
      .updateSlice(c.get('principal'), org, c.req.param('slice'), { public: form.public === '1' })
      .catch((err: unknown) => {
        if (!(err instanceof NotFound)) throw err;
      });
    return c.redirect(`/manage/${org.name}/slices`, 303);
  });
  app.post('/manage/:org/slices/:slice/view', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody();
    try {
      await deps.admin.orgs.updateSlice(c.get('principal'), org, c.req.param('slice'), { inView: form.inView === '1' });
    } catch (err) {
      if (!isClientError(err)) throw err;
      return slicesPage(c, org, err.message, 400);
    }
    return c.redirect(`/manage/${org.name}/slices`, 303);
  });

  // ---- Policies and the audit log ---------------------------------------------------------------
  const defaultTest = (): PolicyTest => ({
    subject: 'ci',
    scopes: ['write'],
    authMethod: 'github',
    action: 'cache.write',
    resourceKind: 'slice',
    resourceName: 'default',
    visibility: 'private',
  });
  const policiesPage = async (c: Ctx, org: Org, form?: PolicyForm, test?: PolicyTest, status = 200) => {
    const current = await deps.policies.current(org);
    const history = await deps.policies.history(org);
    const slices = (await deps.orgs.listSlices(org)).map((s) => s.name);
    const f = form ?? { source: current?.source ?? EXAMPLE_POLICY };
    return page(
      c,
      managePage(
        await ctxOf(c),
        org.name,
        'policies',
        tabs(),
        policiesTab(await ctxOf(c), org.name, current, history, f, test ?? defaultTest(), slices),
      ),
      status,
    );
  };
  app.get('/manage/:org/policies', async (c) => {
    return policiesPage(c, managedOrg(c));
  });
  app.post('/manage/:org/policies', async (c) => {
    const org = managedOrg(c);
    const p = c.get('principal');
    const form = await c.req.parseBody();
    const source = String(form.source ?? '').replace(/\r\n/g, '\n');
    const message = String(form.message ?? '').trim() || undefined;
    if (source.length > 256 * 1024)
      return policiesPage(
        c,
        org,
        { source: '', problems: [{ message: 'at most 256 KiB of policies' }] },
        undefined,
        400,
      );
    if (form.intent === 'validate') {
      const parsed = validatePolicyFile(source, org.name);
      return policiesPage(
        c,
        org,
        {
          source,
          ...(message ? { message } : {}),
          ...(parsed.problems.length ? { problems: parsed.problems } : { validated: Object.keys(parsed.policies) }),
        },
        undefined,
        parsed.problems.length ? 400 : 200,
      );
    }
    try {
      const v = await deps.admin.governance.applyPolicies(p, org, source, message);
      return policiesPage(c, org, { source, applied: v });
    } catch (err) {
      if (!(err instanceof InvalidPolicy)) throw err;
      return policiesPage(c, org, { source, ...(message ? { message } : {}), problems: err.problems }, undefined, 400);
    }
  });
  app.post('/manage/:org/policies/rollback', async (c) => {
    const org = managedOrg(c);
    const p = c.get('principal');
    const version = Number((await c.req.parseBody()).version);
    await deps.admin.governance.rollbackPolicies(p, org, version);
    return c.redirect(`/manage/${org.name}/policies`, 303);
  });
  app.post('/manage/:org/policies/test', async (c) => {
    const org = managedOrg(c);
    const form = await c.req.parseBody({ all: true });
    const one = (k: string, fallback: string) => String(([] as unknown[]).concat(form[k] ?? fallback)[0]);
    const test: PolicyTest = {
      subject: one('subject', 'test').slice(0, 200),
      scopes: ([] as unknown[])
        .concat(form.scopes ?? [])
        .map(String)
        .filter((s) => ['read', 'write', 'publish', 'admin'].includes(s)),
      authMethod: ['token', 'device', 'github', 'gitlab', 'aws', 'oidc'].includes(one('authMethod', 'token'))
        ? one('authMethod', 'token')
        : 'token',
      action: (ACTIONS as readonly string[]).includes(one('action', 'cache.read'))
        ? one('action', 'cache.read')
        : 'cache.read',
      resourceKind: (['slice', 'flake', 'org'] as const).find((k) => k === one('resourceKind', 'slice')) ?? 'slice',
      resourceName: one('resourceName', 'default').slice(0, 100),
      visibility: ['public', 'unlisted', 'private'].includes(one('visibility', 'private'))
        ? one('visibility', 'private')
        : 'private',
    };
    if (!test.scopes.length) test.error = 'choose at least one scope';
    else {
      const orgSet: OrgPolicySet | undefined = deps.policies.forOrg(org.id);
      const slices = new Map((await deps.orgs.listSlices(org)).map((s) => [s.name, s]));
      const principal = hypotheticalPrincipal(
        { subject: test.subject, scopes: test.scopes as Scope[], authMethod: test.authMethod as 'token' },
        org,
        new Map(),
        undefined,
        0,
      );
      const resource = hypotheticalResource(
        test.resourceKind === 'slice'
          ? { slice: test.resourceName }
          : test.resourceKind === 'flake'
            ? { flake: test.resourceName, visibility: test.visibility as 'private' }
            : { org: true },
        org,
        slices,
      );
      const d = decide(principal, test.action as Action, resource, {}, orgSet);
      test.result = {
        decision: d.allowed ? 'allow' : 'deny',
        reason: d.reason,
        ...(d.decidedBy ? { decidedBy: d.decidedBy.join(', ') } : {}),
      };
    }
    return policiesPage(c, org, undefined, test);
  });

  const auditFilters = (c: Ctx) => {
    const q = (k: string) => (c.req.query(k) ?? '').trim().slice(0, 200);
    const filters = {
      action: q('action'),
      outcome: ['allow', 'deny', 'event'].includes(q('outcome')) ? q('outcome') : '',
      actor: q('actor'),
      since: /^\d{4}-\d{2}-\d{2}$/.test(q('since')) && !Number.isNaN(Date.parse(q('since'))) ? q('since') : '',
    };
    const before = Number(q('before'));
    const query = {
      ...(filters.action ? { action: filters.action } : {}),
      ...(filters.outcome ? { outcome: filters.outcome as 'allow' } : {}),
      ...(filters.actor ? { actor: filters.actor } : {}),
      ...(filters.since ? { since: new Date(`${filters.since}T00:00:00Z`).toISOString() } : {}),
      ...(Number.isSafeInteger(before) && before > 0 ? { beforeSeq: before } : {}),
    };
    return { filters, query };
  };
  app.get('/manage/:org/audit/export', async (c) => {
    const org = managedOrg(c);
    await deps.audit.flush();
    const entries = await deps.audit.query({ orgId: org.id, limit: 5000, ...auditFilters(c).query });
    return c.body(entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''), 200, {
      'Content-Type': 'application/x-ndjson',
      'Content-Disposition': `attachment; filename="${org.name}-audit.jsonl"`,
    });
  });
  app.get('/manage/:org/audit', async (c) => {
    const org = managedOrg(c);
    const { filters, query } = auditFilters(c);
    await deps.audit.flush();
    const PAGE = 50;
    const entries = await deps.audit.query({ orgId: org.id, newestFirst: true, limit: PAGE, ...query });
    return page(
      c,
      managePage(
        await ctxOf(c),
        org.name,
        'audit',
        tabs(),
        auditTab(org.name, entries, filters, entries.length === PAGE ? entries.at(-1)!.seq : undefined),
      ),
    );
  });
}

function describeShort(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.subject;
}
