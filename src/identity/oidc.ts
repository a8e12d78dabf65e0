/**
 * Verification of external OIDC tokens (GitHub Actions, GitLab CI, Entra ID, any OIDC issuer).
 * Strict by construction: JWKS is only ever fetched for issuers an org trusts (never discovered
 * from an arbitrary `iss`, which would be an SSRF), the discovery document must name the same
 * issuer, redirects are not followed, the algorithm list is pinned (no `none`, no HMAC), the
 * audience must be ours, `iat` may not be in the future, and each token id is accepted once.
 */
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { Unauthenticated } from '../errors.js';
import type { Db } from '../storage/types.js';
import { isUniqueViolation } from '../org/service.js';

const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA'];
const CLOCK_SKEW_SECONDS = 60;
const DISCOVERY_TTL_MS = 3600_000;
const MAX_DISCOVERY_BYTES = 64 * 1024;
const MAX_EXTERNAL_TOKEN_BYTES = 16 * 1024;

export interface OidcOptions {
  /** Accept http:// issuers (development and tests only). */
  allowHttpIssuers: boolean;
  /** Minimum time between JWKS refetches caused by an unknown `kid`. */
  jwksCooldownMs: number;
}

export interface VerifiedExternalToken {
  issuer: string;
  claims: JWTPayload & Record<string, unknown>;
  audiences: string[];
}

type RemoteJwks = ReturnType<typeof createRemoteJWKSet>;

/** Reads `iss` without trusting anything else in the token. */
export function unverifiedIssuer(token: string): string {
  if (token.length > MAX_EXTERNAL_TOKEN_BYTES) throw new Unauthenticated('identity token too large');
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw new Unauthenticated('the identity token is not a JWT');
  }
  if (typeof payload.iss !== 'string' || payload.iss === '') throw new Unauthenticated('the identity token has no issuer');
  return payload.iss;
}

export class OidcVerifier {
  private readonly jwks = new Map<string, { at: number; set: RemoteJwks }>();

  constructor(
    private readonly db: Db,
    private readonly options: OidcOptions,
  ) {}

  /** Verifies signature and standard claims against a trusted issuer; records the token id. */
  async verify(token: string, issuer: string, audiences: string[]): Promise<VerifiedExternalToken> {
    const jwks = await this.jwksFor(issuer);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, { issuer, audience: audiences, algorithms: ALGORITHMS, clockTolerance: CLOCK_SKEW_SECONDS, requiredClaims: ['exp', 'iat'] }));
    } catch (err) {
      throw new Unauthenticated(`identity token refused: ${describeJoseError(err, audiences)}`);
    }
    const now = Math.floor(Date.now() / 1000);
    if (payload.iat! > now + CLOCK_SKEW_SECONDS) throw new Unauthenticated('identity token refused: issued in the future');
    await this.recordUse(issuer, typeof payload.jti === 'string' && payload.jti ? payload.jti : createHash('sha256').update(token).digest('hex'), payload.exp!);
    const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    return { issuer, claims: payload as JWTPayload & Record<string, unknown>, audiences: aud };
  }

  private async recordUse(issuer: string, tokenId: string, exp: number): Promise<void> {
    try {
      await this.db.insertInto('used_token_ids').values({ issuer, token_id: tokenId, expires_at: new Date(exp * 1000).toISOString() }).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new Unauthenticated('identity token refused: it was already exchanged (replay); request a fresh one');
      throw err;
    }
    if (Math.random() < 0.01) {
      await this.db.deleteFrom('used_token_ids').where('expires_at', '<', new Date(Date.now() - CLOCK_SKEW_SECONDS * 1000).toISOString()).execute();
    }
  }

  private async jwksFor(issuer: string): Promise<RemoteJwks> {
    const cached = this.jwks.get(issuer);
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.set;
    const discoveryUrl = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    this.checkUrl(discoveryUrl, 'issuer');
    let doc: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const res = await fetch(discoveryUrl, { redirect: 'manual', signal: AbortSignal.timeout(5_000), headers: { accept: 'application/json' } });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      const text = await res.text();
      if (text.length > MAX_DISCOVERY_BYTES) throw new Error('discovery document too large');
      doc = JSON.parse(text) as typeof doc;
    } catch (err) {
      throw new Unauthenticated(`cannot read the OIDC discovery document of ${issuer}: ${(err as Error).message}`);
    }
    if (doc.issuer !== issuer) throw new Unauthenticated(`the discovery document of ${issuer} names another issuer`);
    if (typeof doc.jwks_uri !== 'string') throw new Unauthenticated(`the discovery document of ${issuer} has no jwks_uri`);
    this.checkUrl(doc.jwks_uri, 'jwks_uri');
    const set = createRemoteJWKSet(new URL(doc.jwks_uri), { cooldownDuration: this.options.jwksCooldownMs, cacheMaxAge: 600_000, timeoutDuration: 5_000 });
    this.jwks.set(issuer, { at: Date.now(), set });
    return set;
  }

  private checkUrl(url: string, what: string): void {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new Unauthenticated(`invalid ${what} URL`);
    }
    if (u.protocol === 'https:') return;
    if (u.protocol === 'http:' && this.options.allowHttpIssuers) return;
    throw new Unauthenticated(`${what} ${url} is not https`);
  }
}

function describeJoseError(err: unknown, audiences: string[]): string {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return `wrong audience (request the token with audience ${JSON.stringify(audiences[0])})`;
    if (err.claim === 'nbf') return 'not yet valid';
    if (err.claim === 'iss') return 'wrong issuer';
    return `claim ${err.claim} is invalid or missing`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) return 'signature algorithm not allowed';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'signed by a key the issuer does not publish';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'invalid signature';
  if (err instanceof joseErrors.JWKSTimeout) return "the issuer's keys could not be fetched in time";
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed token';
  return (err as Error).message || 'invalid token';
}
