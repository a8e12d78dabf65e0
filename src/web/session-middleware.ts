import type { Next } from 'hono';
import { html } from 'hono/html';
import { withClient } from '../identity/principal.js';
import { layout } from './layout.js';
import type { Ctx, RouteKit, WebDeps } from './route-kit.js';
import { SECURITY_HEADERS } from './security-headers.js';
import { clearSession, csrfFailure, sessionToken } from './session.js';

export function sessionMiddleware(deps: WebDeps, kit: RouteKit): (c: Ctx, next: Next) => Promise<Response | undefined> {
  const { base, ctxOf } = kit;
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
  return session;
}
