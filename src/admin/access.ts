/**
 * Who may act for an org: its tokens (minting, one function for the API and the web interface;
 * revoking) and its identity trusts (add, server-admin approval of overlaps, remove). Each method
 * authorizes (AdminGuard), acts, then appends the audit entry.
 */
import type { AuditLog } from '../audit/log.js';
import { Forbidden, InvalidInput, NotFound } from '../errors.js';
import { issuerUrlProblem } from '../identity/destination.js';
import type { ExchangeService, StoredTrust } from '../identity/exchange.js';
import { ttlWithinCreator } from '../identity/lifetime.js';
import type { NetworkLimits, Principal, Scope } from '../identity/principal.js';
import { boundByCreator, type TokenService } from '../identity/tokens.js';
import { type Org, type OrgService, parseName } from '../org/service.js';
import { cidrWithin, isValidCidr } from '../policy/network.js';
import { parseDeployGrant } from '../registry/deploy.js';
import type { AdminGuard } from './guard.js';

export interface OrgTokenRequest {
  org: string;
  scopes: Scope[];
  /** Limited to these slices (null: every slice of the org). */
  slices: string[] | null;
  /** Asked for explicitly: refused if it outlives the creator's own token. */
  ttlSeconds?: number;
  /** Without a request: this, shortened to the creator's remaining life. */
  defaultTtlSeconds: number;
  subject?: string;
  description?: string;
  /** The description when none is given and the token is not deploy-only. */
  defaultDescription?: string;
  /** Deploy-only device token: `org/flake/requirement#attr` outputs whose closures it may read. */
  deploy?: string[];
  cidrs?: string[];
  countries?: string[];
}

export interface MintedOrgToken {
  token: string;
  id: string;
  org: Org;
  subject: string;
  scopes: Scope[];
  slices: string[] | null;
  deploy?: string[];
  network?: NetworkLimits;
  expiresAt: Date;
}

export class AccessAdmin {
  constructor(
    private readonly deps: {
      guard: AdminGuard;
      orgs: OrgService;
      tokens: TokenService;
      exchange: ExchangeService;
      audit: AuditLog;
    },
  ) {}

  /** The one way an org admin (or the server admin) mints an org token, from the API or the web. */
  async mintOrgToken(p: Principal, req: OrgTokenRequest): Promise<MintedOrgToken> {
    const slices = req.slices ? req.slices.map((s) => parseName('slice', s)) : null;
    const deployLines = req.deploy?.length ? req.deploy : undefined;
    // A token limited to slices administers those slices: it mints tokens limited to them, never
    // an unlimited or deploy-only one (a deploy token reads closures in every slice).
    const org = await this.deps.guard.orgAdmin(p, req.org, slices && !deployLines ? slices : undefined);
    if (slices) {
      const known = new Set((await this.deps.orgs.listSlices(org)).map((s) => s.name));
      const unknown = slices.filter((s) => !known.has(s));
      if (unknown.length) throw new InvalidInput('slices', await this.deps.guard.noSliceMessage(p, org, unknown));
    }
    // Never longer-lived than the caller's own token (the server admin excepted).
    const ttlSeconds = ttlWithinCreator(p, req.ttlSeconds, req.defaultTtlSeconds, Math.floor(Date.now() / 1000));
    const deploy = deployLines?.map((g) => parseDeployGrant(g, org.name));
    if (deploy?.some((g) => g.org !== org.name))
      throw new InvalidInput('deploy', `a device token of ${org.name} can only name ${org.name}'s flakes`);
    // Deploy-only tokens read, nothing else, whatever scopes were asked for.
    const scopes = deploy ? (['read'] as Scope[]) : [...new Set(req.scopes)];
    // A default subject that says who minted the token and what for, so logs and lists tell tokens apart.
    const purpose = deploy ? 'deploy' : scopes.join('+') + (slices ? ` on ${slices.join(',')}` : '');
    const subject = req.subject ?? `created-by:${p.kind === 'anonymous' ? 'anonymous' : p.subject} for ${purpose}`;
    const bad = (req.cidrs ?? []).filter((cidr) => !isValidCidr(cidr));
    if (bad.length) throw new InvalidInput('cidrs', `not an address or CIDR: ${bad.join(', ')}`);
    // Never wider than the caller's own token.
    const asked =
      req.cidrs || req.countries
        ? { network: { cidrs: req.cidrs ?? [], countries: (req.countries ?? []).map((x) => x.toUpperCase()) } }
        : {};
    const network = boundByCreator(p, asked, cidrWithin);
    const description =
      req.description ?? (deployLines ? `deploy-only: ${deployLines.join(', ')}` : req.defaultDescription);
    const tokenSlices = deploy ? null : slices;
    const minted = await this.deps.tokens.mint({
      subject,
      ttlSeconds,
      ...(description ? { description } : {}),
      grant: {
        org: { id: org.id, name: org.name },
        scopes,
        slices: tokenSlices,
        ...(deploy ? { deploy } : {}),
        ...(network ? { network } : {}),
      },
    });
    const extras = { ...(deployLines ? { deploy: deployLines } : {}), ...(network ? { network } : {}) };
    await this.deps.audit.appendNow({
      principal: p,
      action: 'token.create',
      target: `token ${minted.id}`,
      orgId: org.id,
      detail: { subject, scopes, slices: tokenSlices, expiresAt: minted.expiresAt.toISOString(), ...extras },
    });
    return {
      token: minted.token,
      id: minted.id,
      org,
      subject,
      scopes,
      slices: tokenSlices,
      expiresAt: minted.expiresAt,
      ...extras,
    };
  }

  /**
   * Revokes one token. `org`: only a token of this org (the web's org pages); a token the caller
   * may not administer is refused, a slice-limited admin revokes only tokens limited to its slices.
   */
  async revokeToken(p: Principal, id: string, org?: Org): Promise<{ subject: string }> {
    const row = await this.deps.tokens.describe(id);
    if (!row || (org && row.org_id !== org.id)) throw new NotFound();
    if (p.kind !== 'server-admin') {
      const own = row.org_id && p.kind === 'token' && p.org.id === row.org_id ? p.org : undefined;
      const slices = row.slices ? (JSON.parse(row.slices) as string[]) : undefined;
      const reason = own ? this.deps.guard.orgAdminRefusal(p, own, slices) : 'not your org';
      if (reason !== undefined) throw new Forbidden(`not allowed to revoke this token: ${reason}`);
    }
    await this.deps.tokens.revoke(id);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'token.revoke',
      target: `token ${id}`,
      orgId: row.org_id,
      detail: { subject: row.subject },
    });
    return { subject: row.subject };
  }

  /** Revokes every live token of `subject` in the org. */
  async revokeSubject(p: Principal, org: Org, subject: string): Promise<number> {
    this.deps.guard.assertOrgAdmin(p, org);
    const revoked = await this.deps.tokens.revokeSubject(org.id, subject);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'token.revoke',
      target: `subject ${subject}`,
      orgId: org.id,
      detail: { revoked },
    });
    return revoked;
  }

  /** A token ends itself (`floe logout`, the web's sign-out); `how` says which. */
  async logout(p: Principal, how: string): Promise<boolean> {
    // The server admin token lives in the data dir and is not a login: it stays.
    if (p.kind !== 'token') return false;
    await this.deps.tokens.revoke(p.tokenId);
    this.deps.audit.append({
      principal: p,
      action: 'auth.logout',
      target: p.subject,
      orgId: p.org.id,
      outcome: 'event',
      reason: how,
      detail: { tokenId: p.tokenId },
    });
    return true;
  }

  async addTrust(p: Principal, org: Org, input: unknown): Promise<StoredTrust> {
    this.deps.guard.assertOrgAdmin(p, org);
    // The server fetches `<issuer>/.well-known/openid-configuration`: a query or fragment would make that any URL.
    const issuer = typeof input === 'object' && input !== null ? (input as { issuer?: unknown }).issuer : undefined;
    const problem = typeof issuer === 'string' ? issuerUrlProblem(issuer) : undefined;
    if (problem) throw new InvalidInput('trust.issuer', `the issuer URL ${problem}`);
    const trust = await this.deps.exchange.addTrust(org, input);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'trust.add',
      target: `trust ${trust.id}`,
      orgId: org.id,
      detail: { provider: trust.spec.provider, issuer: trust.issuer, status: trust.status },
    });
    return trust;
  }

  /** Server admin: an overlapping trust waits for this; approving it means both orgs' logins must name their org. */
  async approveTrust(p: Principal, id: string): Promise<StoredTrust> {
    this.deps.guard.serverAdmin(p, 'approving an overlapping trust');
    const trust = await this.deps.exchange.approveTrust(id);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'trust.approve',
      target: `trust ${trust.id}`,
      orgId: trust.orgId,
      detail: { provider: trust.spec.provider, issuer: trust.issuer },
    });
    return trust;
  }

  async removeTrust(p: Principal, org: Org, id: string): Promise<void> {
    this.deps.guard.assertOrgAdmin(p, org);
    await this.deps.exchange.removeTrust(org, id);
    await this.deps.audit.appendNow({ principal: p, action: 'trust.remove', target: `trust ${id}`, orgId: org.id });
  }
}
