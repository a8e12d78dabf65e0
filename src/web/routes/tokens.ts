import type { Hono } from 'hono';
import { FloeError, NotFound, isClientError } from '../../errors.js';
import type { AppEnv } from '../../http/context.js';
import type { Principal, Scope } from '../../identity/principal.js';
import { parseTtl } from '../../identity/tokens.js';
import type { Org } from '../../org/service.js';
import { managePage } from '../pages/manage.js';
import { tokensTab } from '../pages/tokens.js';
import type { WebDeps, Ctx, RouteKit } from '../route-kit.js';
import { SCOPES, isOneOf } from '../../wire/access.js';

/** Tokens: an org's API and device tokens, made and revoked by its admins. */
export function tokensRoutes(app: Hono<AppEnv>, deps: WebDeps, kit: RouteKit): void {
  const { ctxOf, page, notFound, managedOrg, tabs } = kit;
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
    return tokensPage(c, managedOrg(c));
  });
  app.post('/manage/:org/tokens', async (c) => {
    const org = managedOrg(c);
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
      const slices = chosen.includes('*') || chosen.length === 0 ? null : chosen;
      // A device token may be deploy-only: it then reads exactly the closures of the named outputs.
      const deploy = device
        ? String(form.deploy ?? '')
            .split(/\r?\n/)
            .map((l) => l.trim())
            .filter(Boolean)
            .slice(0, 50)
        : [];
      const description = String(form.description ?? '')
        .trim()
        .slice(0, 500);
      // Never past the session's (or pasted token's) own end, the server admin excepted: the
      // lifetime chosen is shortened to it, and the page shows the expiry.
      const minted = await deps.admin.access.mintOrgToken(p, {
        org: org.name,
        scopes,
        slices,
        defaultTtlSeconds: parseTtl(String(form.ttl ?? '90d')),
        subject: `${device ? 'device' : 'token'}:${name}`,
        ...(description ? { description } : {}),
        defaultDescription: `created in the web interface by ${describeShort(p)}`,
        deploy,
      });
      const subject = minted.subject;
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
    const org = managedOrg(c);
    const revoked = await deps.admin.access
      .revokeToken(c.get('principal'), c.req.param('id'), org)
      .catch((err: unknown) => {
        if (err instanceof NotFound) return undefined;
        throw err;
      });
    if (!revoked) return notFound(c);
    return c.redirect(`/manage/${org.name}/tokens`, 303);
  });
}

function describeShort(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.subject;
}
