import type { Hono } from 'hono';
import { FloeError, Forbidden, isClientError } from '../../errors.js';
import type { AppEnv } from '../../http/context.js';
import { ttlWithinCreator } from '../../identity/lifetime.js';
import type { Principal, Scope } from '../../identity/principal.js';
import { boundByCreator, parseTtl } from '../../identity/tokens.js';
import { type Org, parseName } from '../../org/service.js';
import { cidrWithin } from '../../policy/network.js';
import { parseDeployGrant } from '../../registry/deploy.js';
import { managePage } from '../pages/manage.js';
import { tokensTab } from '../pages/tokens.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';
import { SCOPES, isOneOf } from '../../wire/access.js';

/** Tokens: an org's API and device tokens, made and revoked by its admins. */
export function tokensRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { ctxOf, page, notFound, requireAdmin, denied, tabs } = kit;
  const tokensPage = async (
    c: Ctx,
    org: Org,
    opts: Omit<Parameters<typeof tokensTab>[4], 'all'> = {},
    status = 200,
  ) => {
    const all = c.req.query('all') === '1';
    const rows = await deps.tokens.list(org.id, { includeInactive: all });
    const slices = (await deps.orgs.listSlices(org)).map((s) => s.name);
    return page(
      c,
      managePage(
        await ctxOf(c),
        org.name,
        'tokens',
        tabs(),
        tokensTab(await ctxOf(c), org.name, rows, slices, { all, ...opts }),
      ),
      status,
    );
  };
  app.get('/manage/:org/tokens', async (c) => {
    const org = await requireAdmin(c);
    return org ? tokensPage(c, org) : denied(c);
  });
  app.post('/manage/:org/tokens', async (c) => {
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const p = c.get('principal');
    const form = await c.req.parseBody({ all: true });
    const list = (k: string) => ([] as unknown[]).concat(form[k] ?? []).map(String);
    try {
      const name = String(form.name ?? '').trim();
      if (!/^[A-Za-z0-9._@:-]{1,100}$/.test(name))
        throw new FloeError('invalid_input', 'name: 1-100 letters, digits, ".", "_", "@", ":" or "-"');
      const device = form.kind !== 'api';
      const scopes = (device ? ['read'] : list('scopes').filter((s) => isOneOf(SCOPES, s))) as Scope[];
      if (!scopes.length) throw new FloeError('invalid_input', 'choose at least one scope');
      const chosen = list('slices');
      const slices = chosen.includes('*') || chosen.length === 0 ? null : chosen.map((s) => parseName('slice', s));
      if (p.kind === 'token' && p.slices !== null && (slices === null || slices.some((s) => !p.slices!.includes(s)))) {
        throw new Forbidden('you are limited to some slices and can only create tokens limited to those slices');
      }
      // Never past the session's (or pasted token's) own end, the server admin excepted: the
      // lifetime chosen is shortened to it, and the page shows the expiry.
      const ttlSeconds = ttlWithinCreator(
        p,
        undefined,
        parseTtl(String(form.ttl ?? '90d')),
        Math.floor(Date.now() / 1000),
      );
      const subject = `${device ? 'device' : 'token'}:${name}`;
      const description =
        String(form.description ?? '')
          .trim()
          .slice(0, 500) || `created in the web interface by ${describeShort(p)}`;
      // A device token may be deploy-only: it then reads exactly the closures of the named outputs.
      const deployLines = device
        ? String(form.deploy ?? '')
            .split(/\r?\n/)
            .map((l) => l.trim())
            .filter(Boolean)
            .slice(0, 50)
        : [];
      const deploy = deployLines.length ? deployLines.map((g) => parseDeployGrant(g, org.name)) : undefined;
      if (deploy?.some((g) => g.org !== org.name))
        throw new FloeError('invalid_input', `a device token of ${org.name} can only name ${org.name}'s flakes`);
      const network = boundByCreator(p, {}, cidrWithin);
      const minted = await deps.tokens.mint({
        subject,
        ttlSeconds,
        description:
          deploy && !String(form.description ?? '').trim() ? `deploy-only: ${deployLines.join(', ')}` : description,
        grant: {
          org: { id: org.id, name: org.name },
          scopes,
          slices: deploy ? null : slices,
          ...(deploy ? { deploy } : {}),
          ...(network ? { network } : {}),
        },
      });
      await deps.audit.appendNow({
        principal: p,
        action: 'token.create',
        target: `token ${minted.id}`,
        orgId: org.id,
        detail: {
          subject,
          scopes,
          slices: deploy ? null : slices,
          expiresAt: minted.expiresAt.toISOString(),
          ...(deploy ? { deploy: deployLines } : {}),
        },
      });
      return tokensPage(
        c,
        org,
        { created: { token: minted.token, subject, expiresAt: minted.expiresAt.toISOString() } },
        201,
      );
    } catch (err) {
      if (!isClientError(err)) throw err;
      return tokensPage(c, org, { error: err.message }, 400);
    }
  });
  app.post('/manage/:org/tokens/:id/revoke', async (c) => {
    const org = await requireAdmin(c);
    if (!org) return denied(c);
    const row = await deps.tokens.describe(c.req.param('id'));
    if (!row || row.org_id !== org.id) return notFound(c);
    await deps.tokens.revoke(row.id);
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'token.revoke',
      target: `token ${row.id}`,
      orgId: org.id,
      detail: { subject: row.subject },
    });
    return c.redirect(`/manage/${org.name}/tokens`, 303);
  });
}

function describeShort(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.subject;
}
