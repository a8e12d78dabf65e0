/**
 * The web interface, served by `floe serve` on its own paths: `/` (search), `/flakes/...`,
 * `/docs`, `/login...`, `/logout`, `/manage/<org>/...` and `/static/...`. Server-rendered HTML,
 * no script (the Content-Security-Policy forbids it), forms with CSRF tokens. Every read goes
 * through the same services (and so the same authorizer) as the API. This file only composes:
 * the session middleware, the stylesheet and one route group per page family (routes/).
 */
import type { Context, Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AppEnv } from '../http/context.js';
import { type WebDeps, routeKit } from './route-kit.js';
import { auditRoutes } from './routes/audit.js';
import { discoverRoutes } from './routes/discover.js';
import { membersRoutes } from './routes/members.js';
import { policiesRoutes } from './routes/policies.js';
import { signInRoutes } from './routes/sign-in.js';
import { slicesRoutes } from './routes/slices.js';
import { storageRoutes } from './routes/storage.js';
import { tokensRoutes } from './routes/tokens.js';
import { usageRoutes } from './routes/usage.js';
import { sessionMiddleware } from './session-middleware.js';
import { CSS, CSS_PATH } from './style.js';

export type { WebDeps } from './route-kit.js';
import { webErrorPage } from './error-page.js';

export { webErrorPage };

const WEB_PATHS = ['/', '/docs', '/flakes/*', '/login', '/login/*', '/logout', '/manage/*'];

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

/** The web interface as the HTTP app's browser surface (http/ knows it only by this shape). */
export function webSurface(deps: WebDeps) {
  return {
    isPath: isWebPath,
    errorPage: (c: Context<AppEnv>, status: number, message: string) =>
      webErrorPage(c, deps.publicUrl(), status, message),
    mount: (app: Hono<AppEnv>) => webRoutes(app, deps),
  };
}

export function webRoutes(app: Hono<AppEnv>, deps: WebDeps): void {
  const kit = routeKit(deps);

  // Session cookie → principal (web paths only), security headers, CSRF on every POST.
  const session = sessionMiddleware(deps, kit);
  const limit = bodyLimit({ maxSize: 64 * 1024, onError: (c) => c.text('form too large\n', 413) });
  for (const p of WEB_PATHS) {
    app.use(p, limit);
    app.use(p, session);
  }

  app.get(CSS_PATH, (c) =>
    c.body(CSS, 200, {
      'Content-Type': 'text/css; charset=utf-8',
      'Cache-Control': 'public, max-age=31536000, immutable',
    }),
  );

  discoverRoutes(app, deps, kit);
  signInRoutes(app, deps, kit);
  // Run an org: every /manage page answers only its org's admins (the same 404 as a missing org).
  app.use('/manage/:org/*', kit.manageGuard);
  usageRoutes(app, deps, kit);
  storageRoutes(app, deps, kit);
  membersRoutes(app, deps, kit);
  tokensRoutes(app, deps, kit);
  slicesRoutes(app, deps, kit);
  policiesRoutes(app, deps, kit);
  auditRoutes(app, deps, kit);
}
