import type { Hono } from 'hono';
import type { AppEnv } from '../../http/context.js';
import { auditTab } from '../pages/governance.js';
import { managePage } from '../pages/manage.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';

/** The audit log of an org: filtered pages and the JSONL export. */
export function auditRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { ctxOf, page, managedOrg, tabs } = kit;
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
