import type { Hono } from 'hono';
import { isClientError } from '../../errors.js';
import type { AppEnv } from '../../http/context.js';
import type { Org } from '../../org/service.js';
import { managePage } from '../pages/manage.js';
import { slicesTab } from '../pages/slices.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';

/** Slices: an org's slices, their visibility and whether they are in the org's view. */
export function slicesRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { base, ctxOf, page, requireAdmin, denied, tabs } = kit;
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
    const org = await requireAdmin(c);
    return org ? slicesPage(c, org) : denied(c);
  });
  app.post('/manage/:org/slices', async (c) => {
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const form = await c.req.parseBody();
    try {
      const slice = await deps.orgs.createSlice(
        org,
        String(form.name ?? '').trim(),
        form.public === '1',
        form.inView === '1',
      );
      await deps.audit.appendNow({
        principal: c.get('principal'),
        action: 'slice.create',
        target: `slice ${org.name}/${slice.name}`,
        orgId: org.id,
        detail: { public: slice.public, inView: form.inView === '1' },
      });
    } catch (err) {
      if (!isClientError(err)) throw err;
      return slicesPage(c, org, err.message, 400);
    }
    return c.redirect(`/manage/${org.name}/slices`, 303);
  });
  app.post('/manage/:org/slices/:slice/visibility', async (c) => {
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const form = await c.req.parseBody();
    if (await deps.orgs.setSliceVisibility(org, c.req.param('slice'), form.public === '1')) {
      await deps.audit.appendNow({
        principal: c.get('principal'),
        action: 'slice.update',
        target: `slice ${org.name}/${c.req.param('slice')}`,
        orgId: org.id,
        detail: { public: form.public === '1' },
      });
    }
    return c.redirect(`/manage/${org.name}/slices`, 303);
  });
  app.post('/manage/:org/slices/:slice/view', async (c) => {
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const form = await c.req.parseBody();
    try {
      await deps.sources.setSliceView(org, c.req.param('slice'), { inView: form.inView === '1' });
    } catch (err) {
      if (!isClientError(err)) throw err;
      return slicesPage(c, org, err.message, 400);
    }
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'slice.update',
      target: `slice ${org.name}/${c.req.param('slice')}`,
      orgId: org.id,
      detail: { inView: form.inView === '1' },
    });
    return c.redirect(`/manage/${org.name}/slices`, 303);
  });
}
