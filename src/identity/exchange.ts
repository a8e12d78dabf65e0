/**
 * Trades a native identity (a CI or IdP token) for a short-lived Floe token. The org follows from
 * the identity: the trusts org admins declared decide which org, which scopes and slices.
 * Over 350 lines: the exchange for each provider and the trusts that decide it (stored, listed,
 * matched) change together.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Forbidden, InvalidInput, NotFound, Unauthenticated } from '../errors.js';
import type { Db } from '../storage/types.js';
import type { Org, OrgService } from '../org/service.js';
import { noSliceNamed } from '../org/names.js';
import type { OidcVerifier } from './oidc.js';
import { unverifiedIssuer } from './oidc.js';
import type { MintedToken, TokenService } from './tokens.js';
import type { StsVerifier } from './aws-sts.js';
import type { SignedStsRequest } from '../wire/aws.js';
import {
  AWS_ISSUER,
  type TrustSpec,
  carriedClaims,
  defaultIssuer,
  grantedScopes,
  identityIsSubjectOf,
  matchTrust,
  subjectFor,
  trustSpecSchema,
  trustSubjectKey,
  trustsOverlap,
} from './trust.js';

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
  /** `pending` while an overlap with another org's trust waits for the server admin's approval. */
  status: 'active' | 'pending';
}

/**
 * A refused login. The message tells the caller nothing about other orgs' trusts; the per-trust
 * reasons go to the audit log of the org they concern (`orgReasons`).
 */
export class LoginRefused extends Forbidden {
  constructor(
    message: string,
    readonly orgReasons: ReadonlyArray<{ orgId: string; reason: string }>,
  ) {
    super(message);
  }
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
    /** Also the web sign-in's way to reach identity providers (the same address checks). */
    readonly verifier: OidcVerifier,
    /** What CI tokens must be minted for when a trust names no audience: the server's public URL. */
    readonly defaultAudience: string,
    private readonly sts?: StsVerifier,
  ) {}

  /**
   * Declares a trust. An external identity belongs to one org: a trust whose subject overlaps
   * another org's trust is stored as `pending` and does nothing until the server admin approves
   * it (`approved`: the server admin declares it, having decided the overlap is legitimate).
   */
  async addTrust(org: Org, input: unknown, opts: { approved?: boolean } = {}): Promise<StoredTrust> {
    const parsed = trustSpecSchema.safeParse(input);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new InvalidInput(`trust${issue.path.length ? '.' + issue.path.join('.') : ''}`, issue.message);
    }
    const spec = parsed.data;
    if (spec.slices) {
      // Only an org admin declares trusts: it may know every slice of the org.
      const names = (await this.orgs.listSlices(org)).map((s) => s.name);
      const unknown = spec.slices.filter((s) => !names.includes(s));
      if (unknown.length) throw new InvalidInput('trust.slices', noSliceNamed(org.name, unknown, names));
    }
    const count = await this.db
      .selectFrom('identity_trusts')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('org_id', '=', org.id)
      .executeTakeFirstOrThrow();
    if (Number(count.n) >= MAX_TRUSTS_PER_ORG)
      throw new InvalidInput('trust', `an org may declare at most ${MAX_TRUSTS_PER_ORG} trusts`);
    const subjectKey = trustSubjectKey(spec);
    const others = await this.db
      .selectFrom('identity_trusts')
      .select(['org_id', 'spec'])
      .where('subject_key', '=', subjectKey)
      .where('org_id', '!=', org.id)
      .execute();
    const overlaps = others.some((o) => {
      const theirs = trustSpecSchema.safeParse(JSON.parse(o.spec));
      return theirs.success && trustsOverlap(spec, theirs.data);
    });
    const trust: StoredTrust = {
      id: randomUUID(),
      orgId: org.id,
      orgName: org.name,
      issuer: defaultIssuer(spec),
      audience: this.audienceOf(spec),
      spec,
      createdAt: new Date().toISOString(),
      status: overlaps && !opts.approved ? 'pending' : 'active',
    };
    await this.db
      .insertInto('identity_trusts')
      .values({
        id: trust.id,
        org_id: org.id,
        provider: spec.provider,
        issuer: trust.issuer,
        audience: spec.audience ?? null,
        spec: JSON.stringify(spec),
        created_at: trust.createdAt,
        subject_key: subjectKey,
        status: trust.status,
      })
      .execute();
    return trust;
  }

  /** Server admin: an overlapping trust becomes active (both orgs' CI must then name their org). */
  async approveTrust(id: string): Promise<StoredTrust> {
    const res = await this.db
      .updateTable('identity_trusts')
      .set({ status: 'active' })
      .where('id', '=', id)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new NotFound();
    const row = await this.withOrgNames().where('identity_trusts.id', '=', id).executeTakeFirstOrThrow();
    const trust = this.fromRow(row, row.org_name);
    if (!trust) throw new InvalidInput('trust', 'this trust no longer validates: remove it and declare it again');
    return trust;
  }

  /** Trusts declared before exclusivity have no subject key yet: computed once at start. */
  async backfillSubjectKeys(): Promise<number> {
    const rows = await this.db
      .selectFrom('identity_trusts')
      .select(['id', 'spec'])
      .where('subject_key', 'is', null)
      .execute();
    for (const r of rows) {
      const parsed = trustSpecSchema.safeParse(JSON.parse(r.spec));
      if (parsed.success)
        await this.db
          .updateTable('identity_trusts')
          .set({ subject_key: trustSubjectKey(parsed.data) })
          .where('id', '=', r.id)
          .execute();
    }
    return rows.length;
  }

  /** Server admin: trusts waiting for approval, server-wide. */
  async pendingTrusts(): Promise<StoredTrust[]> {
    const rows = await this.withOrgNames()
      .where('identity_trusts.status', '=', 'pending')
      .orderBy('identity_trusts.created_at')
      .execute();
    return rows.map((r) => this.fromRow(r, r.org_name)).filter((t): t is StoredTrust => t !== undefined);
  }

  async listTrusts(org: Org): Promise<StoredTrust[]> {
    const rows = await this.db
      .selectFrom('identity_trusts')
      .selectAll()
      .where('org_id', '=', org.id)
      .orderBy('created_at')
      .execute();
    return rows.map((r) => this.fromRow(r, org.name)).filter((t): t is StoredTrust => t !== undefined);
  }

  async removeTrust(org: Org, id: string): Promise<void> {
    const res = await this.db
      .deleteFrom('identity_trusts')
      .where('org_id', '=', org.id)
      .where('id', '=', id)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) === 0) throw new NotFound();
  }

  /**
   * For clients that send the raw CI token on every request (flakehub-push, magic-nix-cache): the
   * first use is exchanged (its token id recorded as reusable). Later uses of the same token until
   * it expires get the same Floe token back on this replica (memo; concurrent first uses share one
   * exchange) and an equivalent one (same trust, org, scopes, identity) on another replica, where
   * the database says this exact token was first exchanged this way.
   */
  async exchangeReusable(externalToken: string): Promise<string> {
    const key = createHash('sha256').update(externalToken).digest('hex');
    const hit = this.reusable.get(key);
    if (hit && hit.expiresAt > Date.now()) return hit.token;
    const pending = this.reusableInFlight.get(key);
    if (pending) return pending;
    const run = this.exchange(externalToken, { reusable: true }).then((result) => {
      if (this.reusable.size > 10_000) this.reusable.clear();
      this.reusable.set(key, { token: result.token, expiresAt: result.expiresAt.getTime() });
      return result.token;
    });
    this.reusableInFlight.set(key, run);
    try {
      return await run;
    } finally {
      this.reusableInFlight.delete(key);
    }
  }

  /** Whether `exchangeReusable` would answer this token from memory (no IdP, no database). */
  isReusableCached(externalToken: string): boolean {
    const hit = this.reusable.get(createHash('sha256').update(externalToken).digest('hex'));
    return hit !== undefined && hit.expiresAt > Date.now();
  }

  private readonly reusable = new Map<string, { token: string; expiresAt: number }>();
  private readonly reusableInFlight = new Map<string, Promise<string>>();

  /** AWS IAM: the caller's presigned sts:GetCallerIdentity, sent to STS; its answer is the identity. */
  async exchangeAws(
    signed: SignedStsRequest,
    opts: { org?: string; ttlSeconds?: number } = {},
  ): Promise<ExchangeResult> {
    if (!this.sts) throw new Unauthenticated('AWS login is not enabled on this server');
    const trusts = await this.trustsFor(AWS_ISSUER);
    if (trusts.length === 0)
      throw new Unauthenticated('AWS login refused: no org on this server trusts AWS identities');
    const id = await this.sts.verify(signed);
    return this.mintFor(
      trusts,
      AWS_ISSUER,
      { arn: id.arn, canonical_arn: id.canonicalArn, account: id.account, user_id: id.userId },
      opts,
    );
  }

  private async trustsFor(issuer: string): Promise<StoredTrust[]> {
    const rows = await this.withOrgNames()
      .where('identity_trusts.issuer', '=', issuer)
      .where('identity_trusts.status', '=', 'active')
      .orderBy('identity_trusts.created_at')
      .execute();
    return rows.map((r) => this.fromRow(r, r.org_name)).filter((t): t is StoredTrust => t !== undefined);
  }

  async exchange(
    externalToken: string,
    opts: { org?: string; ttlSeconds?: number; reusable?: boolean } = {},
  ): Promise<ExchangeResult> {
    const issuer = unverifiedIssuer(externalToken).replace(/\/+$/, '');
    const trusts = (await this.trustsFor(issuer)).filter((t) => t.spec.provider !== 'aws');
    if (trusts.length === 0)
      throw new Unauthenticated('identity token refused: its issuer is not trusted by any org on this server');
    // Tokens for the server's own URL may also name just its host (what flakehub-push requests).
    const accepted = (t: StoredTrust) =>
      t.audience === this.defaultAudience ? [t.audience, new URL(this.defaultAudience).host] : [t.audience];
    const audiences = [...new Set(trusts.flatMap(accepted))];
    const verified = await this.verifier.verify(externalToken, issuer, audiences, { reusable: opts.reusable === true });

    return this.mintFor(
      trusts.filter((t) => accepted(t).some((a) => verified.audiences.includes(a))),
      issuer,
      verified.claims,
      opts,
    );
  }

  private async mintFor(
    trusts: StoredTrust[],
    issuer: string,
    claims: Record<string, unknown>,
    opts: { org?: string; ttlSeconds?: number },
  ): Promise<ExchangeResult> {
    // The orgs whose trusts claim this identity's subject (its GitHub owner, GitLab namespace, AWS
    // account...), whether or not this job satisfies their other conditions: the identity belongs
    // to them. A login never falls back to "the only org whose trust matched": with two owners the
    // caller must say which org, and an org that does not own the subject learns nothing from it.
    const owners = [...new Set(trusts.filter((t) => identityIsSubjectOf(t.spec, claims)).map((t) => t.orgId))];
    let orgId: string | undefined;
    if (opts.org !== undefined) orgId = trusts.find((t) => t.orgName === opts.org)?.orgId;
    else if (owners.length > 1)
      throw new InvalidInput(
        'org',
        'more than one org on this server trusts this identity: name the org (floe login --org <org>, or "org" in the request)',
      );
    else orgId = owners[0];
    const candidates = orgId === undefined ? [] : trusts.filter((t) => t.orgId === orgId);
    const orgReasons: Array<{ orgId: string; reason: string }> = [];
    const matching = candidates.filter((t) => {
      const m = matchTrust(t.spec, claims);
      if (!m.ok) orgReasons.push({ orgId: t.orgId, reason: `trust ${t.id}: ${m.reason}` });
      return m.ok;
    });
    if (matching.length === 0) {
      // Reasons reach the caller only when the identity is the subject of that org's trusts (it
      // is that org's CI, on a branch or event the trust does not cover); else nothing at all.
      const own = orgId !== undefined && owners.includes(orgId);
      const shown = own
        ? ` (${orgReasons
            .slice(0, 3)
            .map((r) => r.reason)
            .join('; ')})`
        : '';
      throw new LoginRefused(
        `no org on this server trusts this identity${opts.org !== undefined ? ` in ${opts.org}` : ''}${shown}`,
        orgReasons,
      );
    }
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
      .where('identity_trusts.status', '=', 'active')
      .execute();
    const out: Array<{ org: string; issuer: string; clientId: string }> = [];
    for (const r of rows) {
      const parsed = trustSpecSchema.safeParse(JSON.parse(r.spec));
      const spec = parsed.success ? parsed.data : undefined;
      if (spec?.provider === 'oidc' && spec.clientId)
        out.push({ org: r.name, issuer: r.issuer, clientId: spec.clientId });
    }
    return out;
  }

  /** Trust rows with their org's name. */
  private withOrgNames() {
    return this.db
      .selectFrom('identity_trusts')
      .innerJoin('orgs', 'orgs.id', 'identity_trusts.org_id')
      .selectAll('identity_trusts')
      .select('orgs.name as org_name');
  }

  /**
   * Stored rows as trusts. A trust stored before a validation rule tightened (e.g. an ARN pattern
   * with too many "*") is left out: it matches nothing rather than failing every login, and its
   * org's admin re-declares it.
   */
  private fromRow(
    r: {
      id: string;
      org_id: string;
      issuer: string;
      audience: string | null;
      spec: string;
      created_at: string;
      status?: string;
    },
    orgName: string,
  ): StoredTrust | undefined {
    const parsed = trustSpecSchema.safeParse(JSON.parse(r.spec));
    if (!parsed.success) return undefined;
    const spec = parsed.data;
    return {
      id: r.id,
      orgId: r.org_id,
      orgName,
      issuer: r.issuer,
      audience: this.audienceOf(spec),
      spec,
      createdAt: r.created_at,
      status: r.status === 'pending' ? 'pending' : 'active',
    };
  }
}
