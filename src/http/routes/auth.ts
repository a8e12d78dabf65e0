/** Federated login and token management: `/api/v1/auth/*`, org trusts and token listings. */
import type { Hono } from 'hono';
import { z } from 'zod';
import { type ExchangeResult, type ExchangeService, LoginRefused, type StoredTrust } from '../../identity/exchange.js';
import type { AuditLog } from '../../audit/log.js';
import type { TokenService } from '../../identity/tokens.js';
import { parseTtl } from '../../identity/tokens.js';
import type { Principal } from '../../identity/principal.js';
import type { AccessAdmin } from '../../admin/access.js';
import { adminOrg, type RouteGuards } from '../admin-guards.js';
import type { Limits } from '../../config.js';
import type { AppEnv } from '../context.js';
import { readJson } from '../body.js';
import { parseBody } from '../validate.js';
import { signedStsRequest } from '../../wire/aws.js';

export interface AuthRouteDeps {
  exchange: ExchangeService;
  tokens: TokenService;
  limits: Limits;
  publicUrl: () => string;
  access: AccessAdmin;
  guards: Pick<RouteGuards, 'orgAdmin' | 'serverAdmin'>;
  /** Logins are recorded here, refused or not (a login is not an admin change). */
  audit: AuditLog;
}

/** Runs a login and records it, refused or not, in the audit trail. */
async function audited(
  deps: AuthRouteDeps,
  p: Principal,
  method: string,
  run: () => Promise<ExchangeResult>,
): Promise<ExchangeResult> {
  try {
    const result = await run();
    deps.audit.append({
      principal: p,
      action: 'auth.login',
      target: result.subject,
      orgId: result.orgId,
      outcome: 'allow',
      reason: `${method} login`,
      detail: {
        tokenId: result.id,
        trustId: result.trustId,
        scopes: result.scopes,
        expiresAt: result.expiresAt.toISOString(),
      },
    });
    return result;
  } catch (err) {
    deps.audit.append({
      principal: p,
      action: 'auth.login',
      target: method,
      orgId: null,
      outcome: 'deny',
      reason: err instanceof Error ? err.message : String(err),
    });
    // Why each trust refused it goes to the log of the org that declared the trust, and only there.
    if (err instanceof LoginRefused) {
      const byOrg = new Map<string, string[]>();
      for (const r of err.orgReasons) byOrg.set(r.orgId, [...(byOrg.get(r.orgId) ?? []), r.reason]);
      for (const [orgId, reasons] of byOrg)
        deps.audit.append({
          principal: p,
          action: 'auth.login',
          target: method,
          orgId,
          outcome: 'deny',
          reason: reasons.slice(0, 10).join('; '),
        });
    }
    throw err;
  }
}

const exchangeBody = z.object({
  token: z.string().min(1).max(16_384),
  org: z.string().optional(),
  ttl: z.string().optional(),
});
const revokeBody = z.object({ subject: z.string().min(1) });
const awsBody = signedStsRequest.extend({
  org: z.string().optional(),
  ttl: z.string().optional(),
});

function showTrust(t: StoredTrust) {
  return {
    id: t.id,
    org: t.orgName,
    issuer: t.issuer,
    audience: t.audience,
    createdAt: t.createdAt,
    status: t.status,
    ...t.spec,
  };
}

export function authRoutes(api: Hono<AppEnv>, deps: AuthRouteDeps): void {
  api.get('/auth/info', async (c) =>
    c.json({
      logins: await deps.exchange.interactiveLogins(),
      issuer: deps.publicUrl(),
      audience: deps.exchange.defaultAudience,
      exchange: `${deps.publicUrl()}/api/v1/auth/exchange`,
      aws: `${deps.publicUrl()}/api/v1/auth/aws`,
      awsAudienceHeader: 'x-floe-audience',
      providers: ['github', 'gitlab', 'oidc', 'aws'],
    }),
  );

  api.post('/auth/exchange', async (c) => {
    const body = parseBody(exchangeBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const result = await audited(deps, c.get('principal'), 'oidc', () =>
      deps.exchange.exchange(body.token, {
        ...(body.org ? { org: body.org } : {}),
        ...(body.ttl ? { ttlSeconds: parseTtl(body.ttl) } : {}),
      }),
    );
    return c.json(exchangedAnswer(result), 201);
  });

  api.post('/auth/aws', async (c) => {
    const body = parseBody(awsBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const result = await audited(deps, c.get('principal'), 'aws', () =>
      deps.exchange.exchangeAws(
        { url: body.url, method: body.method, headers: body.headers, body: body.body },
        { ...(body.org ? { org: body.org } : {}), ...(body.ttl ? { ttlSeconds: parseTtl(body.ttl) } : {}) },
      ),
    );
    return c.json(exchangedAnswer(result), 201);
  });

  // `floe logout`: a token ends itself (an org admin's revoke route would refuse a member's own token).
  api.post('/auth/logout', async (c) => {
    const p = c.get('principal');
    const revoked = await deps.access.logout(p, 'floe logout');
    return c.json(revoked && p.kind === 'token' ? { revoked: true, id: p.tokenId } : { revoked: false });
  });

  api.get('/auth/whoami', (c) => {
    const p = c.get('principal');
    switch (p.kind) {
      case 'anonymous':
        return c.json({ kind: 'anonymous' });
      case 'server-admin':
        return c.json({ kind: 'server-admin', subject: p.subject, tokenId: p.tokenId });
      case 'token':
        return c.json({
          kind: 'token',
          org: p.org.name,
          subject: p.subject,
          tokenId: p.tokenId,
          scopes: [...p.scopes],
          slices: p.slices,
          expiresAt: p.expiresAt ? new Date(p.expiresAt * 1000).toISOString() : null,
          identity: p.identity ?? null,
        });
    }
  });

  const { orgAdmin, serverAdmin } = deps.guards;
  api.post('/orgs/:org/trusts', orgAdmin(), async (c) => {
    const input = await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes);
    const trust = await deps.access.addTrust(c.get('principal'), adminOrg(c), input);
    if (trust.status === 'pending') {
      return c.json(
        {
          ...showTrust(trust),
          message:
            'this identity is already trusted by another org on this server: the trust does nothing until the server admin approves the overlap (floe trust approve <id>)',
        },
        202,
      );
    }
    return c.json(showTrust(trust), 201);
  });
  // Server admin: overlapping trusts wait here; approving one means both orgs' logins must name their org.
  api.get('/trusts/pending', serverAdmin('listing pending trusts'), async (c) =>
    c.json({ trusts: (await deps.exchange.pendingTrusts()).map(showTrust) }),
  );
  api.post('/trusts/:id/approve', serverAdmin('approving an overlapping trust'), async (c) =>
    c.json(showTrust(await deps.access.approveTrust(c.get('principal'), c.req.param('id')))),
  );
  api.get('/orgs/:org/trusts', orgAdmin(), async (c) =>
    c.json({ trusts: (await deps.exchange.listTrusts(adminOrg(c))).map(showTrust) }),
  );
  api.delete('/orgs/:org/trusts/:id', orgAdmin(), async (c) => {
    await deps.access.removeTrust(c.get('principal'), adminOrg(c), c.req.param('id'));
    return c.json({ id: c.req.param('id'), removed: true });
  });

  api.get('/orgs/:org/tokens', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const subject = c.req.query('subject');
    const rows = await deps.tokens.list(org.id, {
      ...(subject ? { subject } : {}),
      includeInactive: c.req.query('all') === '1',
    });
    return c.json({
      tokens: rows.map((r) => ({
        id: r.id,
        subject: r.subject,
        scopes: r.scopes.split(' '),
        slices: r.slices ? (JSON.parse(r.slices) as string[]) : null,
        description: r.description,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        revokedAt: r.revoked_at,
        lastUsedAt: r.last_used_at ?? null,
      })),
    });
  });
  api.post('/orgs/:org/tokens/revoke', orgAdmin(), async (c) => {
    const body = parseBody(revokeBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const revoked = await deps.access.revokeSubject(c.get('principal'), adminOrg(c), body.subject);
    return c.json({ subject: body.subject, revoked });
  });
}

/** The answer of every identity exchange: the minted token and what it grants. */
function exchangedAnswer(result: Awaited<ReturnType<ExchangeService['exchange']>>) {
  return {
    token: result.token,
    id: result.id,
    org: result.org,
    scopes: result.scopes,
    slices: result.slices,
    subject: result.subject,
    expiresAt: result.expiresAt.toISOString(),
  };
}
