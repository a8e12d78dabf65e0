import type { Hono } from 'hono';
import type { AppEnv } from '../../http/context.js';
import { docsPage, flakePage, homePage, latestRelease, orgPage, releasePage } from '../pages/discover.js';
import type { WebDeps, RouteKit } from '../route-kit.js';

/** Discover: the home page and search, the docs page, orgs, flakes and releases (anyone may read). */
export function discoverRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { base, ctxOf, page, notFound } = kit;
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
}
