/**
 * Floe tokens: EdDSA JWTs signed by the server, prefixed `floe_` so secret scanners can spot them.
 * Claims: iss, sub, jti, iat, exp, and `floe` = { org, org_id, scopes, slices } or { role: 'server-admin' }.
 * Every token minted is recorded (for revocation and the audit trail); a revoked or unknown jti is
 * refused even while its signature is valid.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { Forbidden, InvalidInput, Unauthenticated } from '../errors.js';
import type { Db, Schema } from '../storage/types.js';
import type { ChangeFeed } from '../storage/changes.js';
import type { AuthMethod, DeployGrant, NetworkLimits, OrgRef, Principal, Scope } from './principal.js';
import type { KeyRing } from './server-keys.js';
import { parseDuration } from '../units.js';
import { AUTH_METHODS, SCOPES } from '../wire/access.js';

export const TOKEN_PREFIX = 'floe_';
export const MAX_TOKEN_TTL_SECONDS = 366 * 24 * 3600;
const MAX_TOKEN_LENGTH = 8192;

const floeClaims = z.union([
  z.object({ role: z.literal('server-admin') }),
  z.object({
    org: z.string(),
    org_id: z.string(),
    scopes: z.array(z.enum(SCOPES)).min(1),
    slices: z.array(z.string()).nullable(),
    identity: z
      .object({
        provider: z.string(),
        issuer: z.string(),
        claims: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
      })
      .optional(),
    auth: z.enum(AUTH_METHODS).optional(),
    deploy: z
      .array(z.object({ org: z.string(), flake: z.string(), requirement: z.string(), attr: z.string() }))
      .optional(),
    net: z.object({ cidrs: z.array(z.string()), countries: z.array(z.string()) }).optional(),
  }),
]);

/** The external identity a token was exchanged for; carried so policies and audits can use it. */
export interface IdentityClaims {
  provider: string;
  issuer: string;
  claims: Record<string, string | string[]>;
}

export interface MintRequest {
  subject: string;
  ttlSeconds: number;
  description?: string;
  grant:
    | { role: 'server-admin' }
    | {
        org: OrgRef;
        scopes: Scope[];
        slices: string[] | null;
        identity?: IdentityClaims;
        /** Deploy-only device token: read exactly these outputs' closures. */
        deploy?: DeployGrant[];
        network?: NetworkLimits;
      };
}

export interface MintedToken {
  token: string;
  id: string;
  expiresAt: Date;
}

/** Parses `30s`, `15m`, `1h`, `7d`, `52w` or plain seconds. */
export function parseTtl(text: string): number {
  const seconds = parseDuration(text, 'ttl');
  if (seconds < 1 || seconds > MAX_TOKEN_TTL_SECONDS)
    throw new InvalidInput('ttl', `must be between 1s and ${MAX_TOKEN_TTL_SECONDS / 86400}d`);
  return seconds;
}

function authMethodOf(grant: { identity?: IdentityClaims; deploy?: DeployGrant[] }): AuthMethod {
  if (grant.deploy) return 'device';
  const provider = grant.identity?.provider;
  return provider === 'github' || provider === 'gitlab' || provider === 'aws' || provider === 'oidc'
    ? provider
    : 'token';
}

/** A minted token as recorded (never the token itself). */
export type TokenRecord = Schema['tokens'];

interface CachedVerification {
  principal: Principal;
  expiresAtMs: number;
  checkedRevocationAtMs: number;
}

export class TokenService {
  /** Verified tokens, so a hot narinfo path does not pay an Ed25519 verification per request. */
  private readonly verified = new Map<string, CachedVerification>();
  private static readonly CACHE_LIMIT = 10_000;
  /** How long a "not revoked" answer is trusted; revocations on another replica take effect within this. */
  private static readonly REVOCATION_RECHECK_MS = 2_000;

  constructor(
    private readonly db: Db,
    private readonly keys: KeyRing,
    private readonly issuer: string,
    private readonly changes?: ChangeFeed,
  ) {
    // A revocation on another replica drops our cached verification at once (not only at the recheck).
    changes?.subscribe('tokens', (id) => this.forget(id));
  }

  private forget(id: string): void {
    if (id === '*') this.verified.clear();
    else for (const [token, entry] of this.verified) if (tokenIdOf(entry.principal) === id) this.verified.delete(token);
  }

  async mint(req: MintRequest): Promise<MintedToken> {
    if (!Number.isInteger(req.ttlSeconds) || req.ttlSeconds < 1 || req.ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
      throw new InvalidInput('ttl', `must be between 1s and ${MAX_TOKEN_TTL_SECONDS / 86400}d`);
    }
    const id = randomUUID();
    const issuedAt = Math.floor(Date.now() / 1000);
    const expiresAt = new Date((issuedAt + req.ttlSeconds) * 1000);
    const floe =
      'role' in req.grant
        ? { role: req.grant.role }
        : {
            org: req.grant.org.name,
            org_id: req.grant.org.id,
            scopes: req.grant.scopes,
            slices: req.grant.slices,
            auth: authMethodOf(req.grant),
            ...(req.grant.identity ? { identity: req.grant.identity } : {}),
            ...(req.grant.deploy ? { deploy: req.grant.deploy } : {}),
            ...(req.grant.network && (req.grant.network.cidrs.length || req.grant.network.countries.length)
              ? { net: req.grant.network }
              : {}),
          };
    const jwt = await new SignJWT({ floe })
      .setProtectedHeader({ alg: 'EdDSA', kid: this.keys.current.jwt.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(req.subject)
      .setJti(id)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + req.ttlSeconds)
      .sign(this.keys.current.jwt.privateKey);
    await this.db
      .insertInto('tokens')
      .values({
        id,
        org_id: 'role' in req.grant ? null : req.grant.org.id,
        subject: req.subject,
        scopes: 'role' in req.grant ? 'server-admin' : req.grant.scopes.join(' '),
        slices: 'role' in req.grant || req.grant.slices === null ? null : JSON.stringify(req.grant.slices),
        description: req.description ?? null,
        created_at: new Date(issuedAt * 1000).toISOString(),
        expires_at: expiresAt.toISOString(),
        revoked_at: null,
      })
      .execute();
    return { token: TOKEN_PREFIX + jwt, id, expiresAt };
  }

  /** Tokens of an org, newest first (no secrets: tokens themselves are never stored). */
  async list(orgId: string, opts: { subject?: string; includeInactive?: boolean } = {}): Promise<TokenRecord[]> {
    let q = this.db
      .selectFrom('tokens')
      .selectAll()
      .where('org_id', '=', orgId)
      .orderBy('created_at', 'desc')
      .limit(1000);
    if (opts.subject) q = q.where('subject', '=', opts.subject);
    if (!opts.includeInactive) q = q.where('revoked_at', 'is', null).where('expires_at', '>', new Date().toISOString());
    return q.execute();
  }

  /** Revokes every active token of `subject` in the org; returns how many. */
  async revokeSubject(orgId: string, subject: string): Promise<number> {
    const rows = await this.list(orgId, { subject });
    for (const row of rows) await this.revoke(row.id);
    return rows.length;
  }

  /** Returns the principal of a valid token; throws Unauthenticated (never "anonymous") otherwise. */
  async verify(token: string): Promise<Principal> {
    const nowMs = Date.now();
    const cached = this.verified.get(token);
    if (cached && cached.expiresAtMs > nowMs) {
      if (nowMs - cached.checkedRevocationAtMs > TokenService.REVOCATION_RECHECK_MS) {
        await this.assertNotRevoked(tokenIdOf(cached.principal));
        cached.checkedRevocationAtMs = nowMs;
      }
      this.noteUse(tokenIdOf(cached.principal), nowMs);
      return cached.principal;
    }
    if (cached) this.verified.delete(token);

    if (!token.startsWith(TOKEN_PREFIX) || token.length > MAX_TOKEN_LENGTH) {
      throw new Unauthenticated(
        'the credential is not a Floe token (expected "floe_..."); run `floe login` or ask an admin for a token',
      );
    }
    let payload;
    try {
      ({ payload } = await jwtVerify(
        token.slice(TOKEN_PREFIX.length),
        async (header) => {
          let key = header.kid ? this.keys.current.jwtVerificationKeys.get(header.kid) : undefined;
          if (!key && header.kid) {
            // Perhaps rotated on another replica since we loaded the keys.
            await this.keys.reload();
            key = this.keys.current.jwtVerificationKeys.get(header.kid);
          }
          if (!key) throw new Unauthenticated('token signed by an unknown key');
          return key;
        },
        { issuer: this.issuer, algorithms: ['EdDSA'] },
      ));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired)
        throw new Unauthenticated('token expired; get a new one (`floe login` or `floe token create`)');
      if (err instanceof Unauthenticated) throw err;
      throw new Unauthenticated('invalid token');
    }
    const parsed = floeClaims.safeParse(payload.floe);
    if (!parsed.success || !payload.jti || !payload.sub || !payload.exp)
      throw new Unauthenticated('invalid token claims');
    await this.assertNotRevoked(payload.jti);
    const claims = parsed.data;
    const principal: Principal =
      'role' in claims
        ? { kind: 'server-admin', tokenId: payload.jti, subject: payload.sub }
        : {
            kind: 'token',
            tokenId: payload.jti,
            subject: payload.sub,
            org: { id: claims.org_id, name: claims.org },
            scopes: new Set(claims.scopes),
            slices: claims.slices,
            issuedAt: payload.iat,
            expiresAt: payload.exp,
            authMethod: claims.auth ?? 'token',
            ...(claims.identity ? { identity: claims.identity } : {}),
            ...(claims.deploy ? { deploy: claims.deploy } : {}),
            ...(claims.net ? { network: claims.net } : {}),
          };
    if (this.verified.size >= TokenService.CACHE_LIMIT) this.verified.clear();
    this.verified.set(token, { principal, expiresAtMs: payload.exp * 1000, checkedRevocationAtMs: nowMs });
    this.noteUse(payload.jti, nowMs);
    return principal;
  }

  /** Last-use times, written at most once a minute per token, off the request's path. */
  private readonly lastUseWritten = new Map<string, number>();
  private static readonly LAST_USE_RESOLUTION_MS = 60_000;

  private noteUse(id: string, nowMs: number): void {
    if (!id) return;
    const last = this.lastUseWritten.get(id);
    if (last !== undefined && nowMs - last < TokenService.LAST_USE_RESOLUTION_MS) return;
    if (this.lastUseWritten.size >= TokenService.CACHE_LIMIT) this.lastUseWritten.clear();
    this.lastUseWritten.set(id, nowMs);
    this.db
      .updateTable('tokens')
      .set({ last_used_at: new Date(nowMs).toISOString() })
      .where('id', '=', id)
      .execute()
      .catch(() => this.lastUseWritten.delete(id)); // best effort: a failed write only loses a timestamp
  }

  /** Revokes by id. Returns false if no such token exists. */
  async revoke(id: string): Promise<boolean> {
    const res = await this.db
      .updateTable('tokens')
      .set({ revoked_at: new Date().toISOString() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    this.forget(id);
    await this.changes?.notify('tokens', id).catch(() => undefined); // others recheck within 2 s anyway
    if (Number(res.numUpdatedRows) > 0) return true;
    return (await this.db.selectFrom('tokens').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;
  }

  async describe(id: string) {
    return this.db.selectFrom('tokens').selectAll().where('id', '=', id).executeTakeFirst();
  }

  private async assertNotRevoked(id: string): Promise<void> {
    const row = await this.db.selectFrom('tokens').select('revoked_at').where('id', '=', id).executeTakeFirst();
    if (!row) throw new Unauthenticated('token is not known to this server');
    if (row.revoked_at !== null) throw new Unauthenticated('token has been revoked');
  }
}

function tokenIdOf(p: Principal): string {
  return p.kind === 'anonymous' ? '' : p.tokenId;
}

/**
 * The network limits of a token created by `creator`: inherited, or narrowed, never wider (a
 * stolen network-limited admin token must not mint an unlimited one). Lifetimes are bounded in
 * `lifetime.ts` (never past the creator's expiry). Server admins are not bounded. PURE.
 */
export function boundByCreator(
  creator: Principal,
  requested: { network?: NetworkLimits },
  within: (cidr: string, outer: readonly string[]) => boolean,
): NetworkLimits | undefined {
  if (creator.kind !== 'token') return requested.network;
  const mine = creator.network;
  if (!mine) return requested.network;
  const cidrs = requested.network?.cidrs.length ? requested.network.cidrs : mine.cidrs;
  const countries = requested.network?.countries.length ? requested.network.countries : mine.countries;
  if (mine.cidrs.length && cidrs.some((c) => !within(c, mine.cidrs)))
    throw new Forbidden(`your token is limited to ${mine.cidrs.join(', ')}: a token you create cannot reach further`);
  if (mine.countries.length && countries.some((c) => !mine.countries.includes(c)))
    throw new Forbidden(
      `your token is limited to clients in ${mine.countries.join(', ')}: a token you create cannot reach further`,
    );
  return { cidrs, countries };
}
