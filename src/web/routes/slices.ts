import type { Hono } from 'hono';
import { NotFound, isClientError } from '../../errors.js';
import type { AppEnv } from '../../http/context.js';
import type { Org } from '../../org/service.js';
import { managePage } from '../pages/manage.js';
import { slicesTab } from '../pages/slices.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';

/** Slices: an org's slices, their visibility and whether they are in the org's view. */
export function slicesRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { base, ctxOf, page, managedOrg, tabs } = kit;
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
}
