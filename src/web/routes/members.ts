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
  const { ctxOf, page, requireAdmin, denied, tabs } = kit;
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
    const org = await requireAdmin(c);
    return org ? membersPage(c, org) : denied(c);
  });
  app.post('/manage/:org/members/oidc', async (c) => {
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const form = await c.req.parseBody({ all: true });
    const str = (k: string) => String(form[k] ?? '').trim();
    const scopes = ([] as unknown[]).concat(form.scopes ?? []).map(String);
    try {
      const trust = await deps.exchange.addTrust(org, {
        provider: 'oidc',
        issuer: str('issuer'),
        clientId: str('clientId'),
        claims: { [str('claim')]: str('value') },
        scopes,
      });
      await deps.audit.appendNow({
        principal: c.get('principal'),
        action: 'trust.add',
        target: `trust ${trust.id}`,
        orgId: org.id,
        detail: { provider: trust.spec.provider, issuer: trust.issuer },
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
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const text = String((await c.req.parseBody()).spec ?? '');
    try {
      let spec: unknown;
      try {
        spec = JSON.parse(text);
      } catch (err) {
        throw new FloeError('invalid_input', `not JSON: ${(err as Error).message}`);
      }
      const trust = await deps.exchange.addTrust(org, spec);
      await deps.audit.appendNow({
        principal: c.get('principal'),
        action: 'trust.add',
        target: `trust ${trust.id}`,
        orgId: org.id,
        detail: { provider: trust.spec.provider, issuer: trust.issuer },
      });
    } catch (err) {
      if (!isClientError(err)) throw err;
      return membersPage(c, org, { error: err.message, which: 'json', json: text }, undefined, 400);
    }
    return membersPage(c, org, {}, notice('ok', 'Trust added.'));
  });
  app.post('/manage/:org/members/:id/remove', async (c) => {
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const removed = await deps.exchange.removeTrust(org, c.req.param('id')).then(
      () => true,
      () => false,
    );
    if (removed)
      await deps.audit.appendNow({
        principal: c.get('principal'),
        action: 'trust.remove',
        target: `trust ${c.req.param('id')}`,
        orgId: org.id,
      });
    return c.redirect(`/manage/${org.name}/members`, 303);
  });
}
