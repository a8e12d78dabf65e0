import type { Hono } from 'hono';
import { FloeError, Forbidden } from '../../errors.js';
import type { AppEnv } from '../../http/context.js';
import {
  decodePending,
  encodePending,
  finishLogin,
  IDP_UNREACHABLE,
  type IdpFetch,
  startLogin,
} from '../oidc-client.js';
import { loginPage } from '../pages/login.js';
import type { WebDeps, RouteKit } from '../route-kit.js';
import { SECURITY_HEADERS } from '../security-headers.js';
import { clearSession, loginCookie, readLoginCookie, safeReturnTo, setSession } from '../session.js';

/** Signing in (an org's identity provider, or a pasted token) and out: a session is a short-lived token of its own. */

/** Web sessions last at most this long, whatever the token they came from. */
const SESSION_TTL_SECONDS = 8 * 3600;

export function signInRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { base, ctxOf, page } = kit;
  const redirectUri = () => `${base()}/login/callback`;
  const idpFetch: IdpFetch = (url, req) => deps.exchange.verifier.fetchFromIdp(url, req);

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
    return page(c, loginPage(ctx, logins, returnTo, error));
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
}
