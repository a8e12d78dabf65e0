/** Federated login and token management: `/api/v1/auth/*`, org trusts and token listings. */
import type { Hono } from 'hono';
import { z } from 'zod';
import { type ExchangeResult, type ExchangeService, LoginRefused, type StoredTrust } from '../../identity/exchange.js';
import type { AuditLog } from '../../audit/log.js';
import type { TokenService } from '../../identity/tokens.js';
import { parseTtl } from '../../identity/tokens.js';
import type { Principal } from '../../identity/principal.js';
import type { Action } from '../../policy/actions.js';
import type { Org } from '../../org/service.js';
import type { Limits } from '../../config.js';
import type { AppEnv } from '../context.js';
import { readJson } from '../body.js';
import { parseBody } from '../validate.js';
import { InvalidInput } from '../../errors.js';
import { issuerUrlProblem } from '../../identity/destination.js';
import { signedStsRequest } from '../../wire/aws.js';

export interface AuthRouteDeps {
  exchange: ExchangeService;
  tokens: TokenService;
  limits: Limits;
  publicUrl: () => string;
  requireOrg: (p: Principal, org: string, action: Action, slices?: readonly string[]) => Promise<Org>;
  requireServerAdmin: (p: Principal, what: string) => void;
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
    return c.json(
      {
        token: result.token,
        id: result.id,
        org: result.org,
        scopes: result.scopes,
        slices: result.slices,
        subject: result.subject,
        expiresAt: result.expiresAt.toISOString(),
      },
      201,
    );
  });

  api.post('/auth/aws', async (c) => {
    const body = parseBody(awsBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const result = await audited(deps, c.get('principal'), 'aws', () =>
      deps.exchange.exchangeAws(
        { url: body.url, method: body.method, headers: body.headers, body: body.body },
        { ...(body.org ? { org: body.org } : {}), ...(body.ttl ? { ttlSeconds: parseTtl(body.ttl) } : {}) },
      ),
    );
    return c.json(
      {
        token: result.token,
        id: result.id,
        org: result.org,
        scopes: result.scopes,
        slices: result.slices,
        subject: result.subject,
        expiresAt: result.expiresAt.toISOString(),
      },
      201,
    );
  });

  // `floe logout`: a token ends itself (an org admin's revoke route would refuse a member's own token).
  api.post('/auth/logout', async (c) => {
    const p = c.get('principal');
    // The server admin token lives in the data dir and is not a login: it stays.
    if (p.kind !== 'token') return c.json({ revoked: false });
    await deps.tokens.revoke(p.tokenId);
    deps.audit.append({
      principal: p,
      action: 'auth.logout',
      target: p.subject,
      orgId: p.org.id,
      outcome: 'event',
      reason: 'floe logout',
      detail: { tokenId: p.tokenId },
    });
    return c.json({ revoked: true, id: p.tokenId });
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

  api.post('/orgs/:org/trusts', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    const input = await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes);
    // The server fetches `<issuer>/.well-known/openid-configuration`: a query or fragment would make that any URL.
    const issuer = typeof input === 'object' && input !== null ? (input as { issuer?: unknown }).issuer : undefined;
    const problem = typeof issuer === 'string' ? issuerUrlProblem(issuer) : undefined;
    if (problem) throw new InvalidInput('trust.issuer', `the issuer URL ${problem}`);
    const trust = await deps.exchange.addTrust(org, input);
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'trust.add',
      target: `trust ${trust.id}`,
      orgId: org.id,
      detail: { provider: trust.spec.provider, issuer: trust.issuer, status: trust.status },
    });
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
  api.get('/trusts/pending', async (c) => {
    deps.requireServerAdmin(c.get('principal'), 'listing pending trusts');
    return c.json({ trusts: (await deps.exchange.pendingTrusts()).map(showTrust) });
  });
  api.post('/trusts/:id/approve', async (c) => {
    deps.requireServerAdmin(c.get('principal'), 'approving an overlapping trust');
    const trust = await deps.exchange.approveTrust(c.req.param('id'));
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'trust.approve',
      target: `trust ${trust.id}`,
      orgId: trust.orgId,
      detail: { provider: trust.spec.provider, issuer: trust.issuer },
    });
    return c.json(showTrust(trust));
  });
  api.get('/orgs/:org/trusts', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    return c.json({ trusts: (await deps.exchange.listTrusts(org)).map(showTrust) });
  });
  api.delete('/orgs/:org/trusts/:id', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    await deps.exchange.removeTrust(org, c.req.param('id'));
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'trust.remove',
      target: `trust ${c.req.param('id')}`,
      orgId: org.id,
    });
    return c.json({ id: c.req.param('id'), removed: true });
  });

  api.get('/orgs/:org/tokens', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
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
  api.post('/orgs/:org/tokens/revoke', async (c) => {
    const org = await deps.requireOrg(c.get('principal'), c.req.param('org'), 'org.admin');
    const body = parseBody(revokeBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const revoked = await deps.tokens.revokeSubject(org.id, body.subject);
    await deps.audit.appendNow({
      principal: c.get('principal'),
      action: 'token.revoke',
      target: `subject ${body.subject}`,
      orgId: org.id,
      detail: { revoked },
    });
    return c.json({ subject: body.subject, revoked });
  });
}
