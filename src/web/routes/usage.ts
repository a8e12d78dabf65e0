import type { Hono } from 'hono';
import type { AppEnv } from '../../http/context.js';
import { managePage } from '../pages/manage.js';
import { usageTab } from '../pages/usage.js';
import type { WebDeps, RouteKit } from '../route-kit.js';

/** The usage tab, the first page of an org's management. */
export function usageRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { base, ctxOf, page, managedOrg, tabs } = kit;
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
}
