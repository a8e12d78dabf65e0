import type { Hono } from 'hono';
import { FloeError, isClientError } from '../../errors.js';
import type { AppEnv } from '../../http/context.js';
import type { Org } from '../../org/service.js';
import { type Html, notice } from '../layout.js';
import { managePage } from '../pages/manage.js';
import { membersTab } from '../pages/members.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';

/** Members: the identity trusts that let people and machines of an org sign in. */
export function membersRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { ctxOf, page, managedOrg, tabs } = kit;
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
}
