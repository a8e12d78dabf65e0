/**
 * Trades a native identity (a CI or IdP token) for a short-lived Floe token. The org follows from
 * the identity: the trusts org admins declared decide which org, which scopes and slices.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Forbidden, InvalidInput, NotFound, Unauthenticated } from '../errors.js';
import type { Db } from '../storage/types.js';
import type { Org, OrgService } from '../org/service.js';
import type { OidcVerifier } from './oidc.js';
import { unverifiedIssuer } from './oidc.js';
import type { MintedToken, TokenService } from './tokens.js';
import { type SignedStsRequest, type StsVerifier } from './aws-sts.js';
import { AWS_ISSUER, type TrustSpec, carriedClaims, defaultIssuer, grantedScopes, matchTrust, subjectFor, trustSpecSchema } from './trust.js';

const DEFAULT_TTL_SECONDS = 3600;
const MAX_TRUSTS_PER_ORG = 500;

export interface StoredTrust {
  id: string;
  orgId: string;
  orgName: string;
  issuer: string;
  audience: string;
  spec: TrustSpec;
  createdAt: string;
}

export interface ExchangeResult extends MintedToken {
  org: string;
  orgId: string;
  scopes: string[];
  slices: string[] | null;
  subject: string;
  trustId: string;
}

export class ExchangeService {
  constructor(
    private readonly db: Db,
    private readonly orgs: OrgService,
    private readonly tokens: TokenService,
    private readonly verifier: OidcVerifier,
    /** What CI tokens must be minted for when a trust names no audience: the server's public URL. */
    readonly defaultAudience: string,
    private readonly sts?: StsVerifier,
  ) {}

  async addTrust(org: Org, input: unknown): Promise<StoredTrust> {
    const parsed = trustSpecSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new InvalidInput(`trust${issue.path.length ? '.' + issue.path.join('.') : ''}`, issue.message);
    }
    const spec = parsed.data;
    if (spec.slices) {
      const known = new Set((await this.orgs.listSlices(org)).map((s) => s.name));
      const unknown = spec.slices.filter((s) => !known.has(s));
      if (unknown.length) throw new InvalidInput('trust.slices', `no such slice in ${org.name}: ${unknown.join(', ')}`);
    }
    const count = await this.db.selectFrom('identity_trusts').select((eb) => eb.fn.countAll<number>().as('n')).where('org_id', '=', org.id).executeTakeFirstOrThrow();
    if (Number(count.n) >= MAX_TRUSTS_PER_ORG) throw new InvalidInput('trust', `an org may declare at most ${MAX_TRUSTS_PER_ORG} trusts`);
    const trust: StoredTrust = {
      id: randomUUID(),
      orgId: org.id,
      orgName: org.name,
      issuer: defaultIssuer(spec),
      audience: this.audienceOf(spec),
      spec,
      createdAt: new Date().toISOString(),
    };
    await this.db
      .insertInto('identity_trusts')
      .values({ id: trust.id, org_id: org.id, provider: spec.provider, issuer: trust.issuer, audience: spec.audience ?? null, spec: JSON.stringify(spec), created_at: trust.createdAt })
      .execute();
    return trust;
  }

  async listTrusts(org: Org): Promise<StoredTrust[]> {
    const rows = await this.db.selectFrom('identity_trusts').selectAll().where('org_id', '=', org.id).orderBy('created_at').execute();
    return rows.map((r) => this.fromRow(r, org.name));
  }

  async removeTrust(org: Org, id: string): Promise<void> {
    const res = await this.db.deleteFrom('identity_trusts').where('org_id', '=', org.id).where('id', '=', id).executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new NotFound();
  }

  /**
   * For clients that send the raw CI token on every request (flakehub-push): the first use is
   * exchanged (and its token id recorded, as always); later uses of the same token, until it
   * expires, get the same Floe token back instead of being refused as replays.
   */
  async exchangeReusable(externalToken: string): Promise<string> {
    const key = createHash('sha256').update(externalToken).digest('hex');
    const now = Date.now();
    const hit = this.reusable.get(key);
    if (hit && hit.expiresAt > now) return hit.token;
    const result = await this.exchange(externalToken);
    if (this.reusable.size > 10_000) this.reusable.clear();
    this.reusable.set(key, { token: result.token, expiresAt: result.expiresAt.getTime() });
    return result.token;
  }

  private readonly reusable = new Map<string, { token: string; expiresAt: number }>();

  /** AWS IAM: the caller's presigned sts:GetCallerIdentity, sent to STS; its answer is the identity. */
  async exchangeAws(signed: SignedStsRequest, opts: { org?: string; ttlSeconds?: number } = {}): Promise<ExchangeResult> {
    if (!this.sts) throw new Unauthenticated('AWS login is not enabled on this server');
    const trusts = await this.trustsFor(AWS_ISSUER);
    if (trusts.length === 0) throw new Unauthenticated('AWS login refused: no org on this server trusts AWS identities');
    const id = await this.sts.verify(signed);
    return this.mintFor(trusts, AWS_ISSUER, { arn: id.arn, canonical_arn: id.canonicalArn, account: id.account, user_id: id.userId }, opts);
  }

  private async trustsFor(issuer: string): Promise<StoredTrust[]> {
    const rows = await this.db
      .selectFrom('identity_trusts')
      .innerJoin('orgs', 'orgs.id', 'identity_trusts.org_id')
      .selectAll('identity_trusts')
      .select('orgs.name as org_name')
      .where('identity_trusts.issuer', '=', issuer)
      .orderBy('identity_trusts.created_at')
      .execute();
    return rows.map((r) => this.fromRow(r, r.org_name));
  }

  async exchange(externalToken: string, opts: { org?: string; ttlSeconds?: number } = {}): Promise<ExchangeResult> {
    const issuer = unverifiedIssuer(externalToken).replace(/\/+$/, '');
    const trusts = (await this.trustsFor(issuer)).filter((t) => t.spec.provider !== 'aws');
    if (trusts.length === 0) throw new Unauthenticated(`identity token refused: issuer ${issuer} is not trusted by any org on this server`);
    // Tokens for the server's own URL may also name just its host (what flakehub-push requests).
    const accepted = (t: StoredTrust) => (t.audience === this.defaultAudience ? [t.audience, new URL(this.defaultAudience).host] : [t.audience]);
    const audiences = [...new Set(trusts.flatMap(accepted))];
    const verified = await this.verifier.verify(externalToken, issuer, audiences);

    return this.mintFor(
      trusts.filter((t) => accepted(t).some((a) => verified.audiences.includes(a))),
      issuer,
      verified.claims,
      opts,
    );
  }

  private async mintFor(trusts: StoredTrust[], issuer: string, claims: Record<string, unknown>, opts: { org?: string; ttlSeconds?: number }): Promise<ExchangeResult> {
    const candidates = trusts.filter((t) => opts.org === undefined || t.orgName === opts.org);
    const reasons: string[] = [];
    const matching = candidates.filter((t) => {
      const m = matchTrust(t.spec, claims);
      if (!m.ok) reasons.push(`${t.orgName}: ${m.reason}`);
      return m.ok;
    });
    if (matching.length === 0) {
      throw new Forbidden(`no org trusts this identity${opts.org ? ` in ${opts.org}` : ''}${reasons.length ? ` (${reasons.slice(0, 3).join('; ')})` : ''}`);
    }
    const orgNames = [...new Set(matching.map((t) => t.orgName))];
    if (orgNames.length > 1) throw new InvalidInput('org', `this identity is trusted by several orgs (${orgNames.join(', ')}): say which one`);
    const trust = matching[0]!;
    const trustTtl = trust.spec.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    const ttlSeconds = Math.min(opts.ttlSeconds ?? trustTtl, trustTtl);
    const subject = subjectFor(trust.spec, issuer, claims);
    const scopes = grantedScopes(trust.spec);
    const slices = trust.spec.slices ?? null;
    const minted = await this.tokens.mint({
      subject,
      ttlSeconds,
      description: `exchanged ${trust.spec.provider} identity (trust ${trust.id})`,
      grant: {
        org: { id: trust.orgId, name: trust.orgName },
        scopes,
        slices,
        identity: { provider: trust.spec.provider, issuer, claims: carriedClaims(trust.spec, claims) },
      },
    });
    return { ...minted, org: trust.orgName, orgId: trust.orgId, scopes, slices, subject, trustId: trust.id };
  }

  /** People's ID tokens are minted for the CLI's client id; CI tokens for the server's URL. */
  private audienceOf(spec: TrustSpec): string {
    if (spec.audience) return spec.audience;
    if (spec.provider === 'oidc' && spec.clientId) return spec.clientId;
    return this.defaultAudience;
  }

  /** Providers people can log in with (`floe login oidc`). */
  async interactiveLogins(): Promise<Array<{ org: string; issuer: string; clientId: string }>> {
    const rows = await this.db
      .selectFrom('identity_trusts')
      .innerJoin('orgs', 'orgs.id', 'identity_trusts.org_id')
      .select(['identity_trusts.spec', 'identity_trusts.issuer', 'orgs.name'])
      .where('identity_trusts.provider', '=', 'oidc')
      .execute();
    const out: Array<{ org: string; issuer: string; clientId: string }> = [];
    for (const r of rows) {
      const spec = trustSpecSchema.parse(JSON.parse(r.spec));
      if (spec.provider === 'oidc' && spec.clientId) out.push({ org: r.name, issuer: r.issuer, clientId: spec.clientId });
    }
    return out;
  }

  private fromRow(r: { id: string; org_id: string; issuer: string; audience: string | null; spec: string; created_at: string }, orgName: string): StoredTrust {
    const spec = trustSpecSchema.parse(JSON.parse(r.spec));
    return { id: r.id, orgId: r.org_id, orgName, issuer: r.issuer, audience: this.audienceOf(spec), spec, createdAt: r.created_at };
  }
}
