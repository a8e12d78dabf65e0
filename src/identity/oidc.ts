/**
 * Verification of external OIDC tokens (GitHub Actions, GitLab CI, Entra ID, any OIDC issuer).
 * Strict by construction: JWKS is only ever fetched for issuers an org trusts (never discovered
 * from an arbitrary `iss`, which would be an SSRF), only from public addresses checked after DNS
 * and pinned (`pinned-fetch.ts`), the discovery document must name the same issuer, redirects are
 * not followed, fetch errors are not told to the caller, the algorithm list is pinned (no `none`, no HMAC), the
 * audience must be ours, `iat` may not be in the future, and each token id is accepted once.
 */
import { createHash } from 'node:crypto';
import { createRemoteJWKSet, customFetch, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { Unauthenticated } from '../errors.js';
import type { Db } from '../storage/types.js';
import { isUniqueViolation } from '../org/service.js';
import { type DestinationRules, urlProblem } from './destination.js';
import { type PinnedRequest, pinnedFetch } from './pinned-fetch.js';

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
  if (typeof payload.iss !== 'string' || payload.iss === '')
    throw new Unauthenticated('the identity token has no issuer');
  return payload.iss;
}

export class OidcVerifier {
  private readonly jwks = new Map<string, { at: number; set: RemoteJwks }>();

  constructor(
    private readonly db: Db,
    private readonly options: OidcOptions,
  ) {}

  /**
   * Verifies signature and standard claims against a trusted issuer; records the token id.
   * `reusable`: the caller sends this raw token on every request (flakehub-push, magic-nix-cache),
   * so the exact same token, first used that way, is accepted again until it expires, on any
   * replica; a token first used for a one-time login stays refused, and vice versa.
   */
  async verify(
    token: string,
    issuer: string,
    audiences: string[],
    opts: { reusable?: boolean } = {},
  ): Promise<VerifiedExternalToken> {
    const jwks = await this.jwksFor(issuer);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer,
        audience: audiences,
        algorithms: ALGORITHMS,
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp', 'iat'],
      }));
    } catch (err) {
      throw new Unauthenticated(`identity token refused: ${describeJoseError(err, audiences)}`);
    }
    const now = Math.floor(Date.now() / 1000);
    if (payload.iat! > now + CLOCK_SKEW_SECONDS)
      throw new Unauthenticated('identity token refused: issued in the future');
    const sha = createHash('sha256').update(token).digest('hex');
    await this.recordUse(
      issuer,
      typeof payload.jti === 'string' && payload.jti ? payload.jti : sha,
      payload.exp!,
      opts.reusable ? sha : null,
    );
    const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    return { issuer, claims: payload as JWTPayload & Record<string, unknown>, audiences: aud };
  }

  private async recordUse(issuer: string, tokenId: string, exp: number, reusableSha256: string | null): Promise<void> {
    try {
      await this.db
        .insertInto('used_token_ids')
        .values({
          issuer,
          token_id: tokenId,
          expires_at: new Date(exp * 1000).toISOString(),
          reusable_sha256: reusableSha256,
        })
        .execute();
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // The same bytes again, both times where the raw token is the client's credential: what a
      // replay check guards against (a captured token turned into a fresh login) is not this.
      const first =
        reusableSha256 &&
        (await this.db
          .selectFrom('used_token_ids')
          .select('reusable_sha256')
          .where('issuer', '=', issuer)
          .where('token_id', '=', tokenId)
          .executeTakeFirst());
      if (!first || first.reusable_sha256 !== reusableSha256)
        throw new Unauthenticated('identity token refused: it was already exchanged (replay); request a fresh one');
    }
    if (Math.random() < 0.01) {
      await this.db
        .deleteFrom('used_token_ids')
        .where('expires_at', '<', new Date(Date.now() - CLOCK_SKEW_SECONDS * 1000).toISOString())
        .execute();
    }
  }

  private async jwksFor(issuer: string): Promise<RemoteJwks> {
    const cached = this.jwks.get(issuer);
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.set;
    // What went wrong (status, connection error, body) stays in the server: the caller learns only
    // that the provider could not be used, or the server would be an oracle for its own network.
    const unreachable = (cause: unknown) =>
      Object.assign(new Unauthenticated(`cannot read the OIDC discovery document of ${issuer}`), { cause });
    let doc: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const res = await this.fetchFromIdp(discoveryUrl(issuer), {
        timeoutMs: 5_000,
        headers: { accept: 'application/json' },
        maxBytes: MAX_DISCOVERY_BYTES,
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      doc = JSON.parse(await res.text()) as typeof doc;
    } catch (err) {
      throw unreachable(err);
    }
    if (doc.issuer !== issuer) throw new Unauthenticated(`the discovery document of ${issuer} names another issuer`);
    if (typeof doc.jwks_uri !== 'string' || urlProblem(doc.jwks_uri, this.rules))
      throw new Unauthenticated(`the discovery document of ${issuer} has no usable jwks_uri`);
    const set = createRemoteJWKSet(new URL(doc.jwks_uri), {
      cooldownDuration: this.options.jwksCooldownMs,
      cacheMaxAge: 600_000,
      timeoutDuration: 5_000,
      [customFetch]: (url, init) =>
        this.fetchFromIdp(url, {
          headers: Object.fromEntries(new Headers(init.headers).entries()),
          signal: init.signal,
          maxBytes: MAX_DISCOVERY_BYTES,
        }),
    });
    this.jwks.set(issuer, { at: Date.now(), set });
    return set;
  }

  private get rules(): DestinationRules {
    return { allowHttpAndLoopback: this.options.allowHttpIssuers };
  }

  /**
   * A request to an identity provider (discovery, JWKS, the web sign-in's token endpoint): https
   * only (http and loopback under FLOE_OIDC_ALLOW_HTTP_ISSUERS), to public addresses checked after
   * DNS and pinned for the connection, no redirects, bounded bodies. Throws DestinationRefused.
   */
  fetchFromIdp(url: string, req: PinnedRequest = {}): Promise<Response> {
    return pinnedFetch(url, this.rules, req);
  }
}

/** The discovery document's URL; an issuer with a query or fragment is refused when the trust is added. */
export function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

function describeJoseError(err: unknown, audiences: string[]): string {
  if (err instanceof joseErrors.JWTExpired) return 'expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'aud') return `wrong audience (request the token with audience ${JSON.stringify(audiences[0])})`;
    if (err.claim === 'nbf') return 'not yet valid';
    if (err.claim === 'iss') return 'wrong issuer';
    return `claim ${err.claim} is invalid or missing`;
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported)
    return 'signature algorithm not allowed';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'signed by a key the issuer does not publish';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'invalid signature';
  if (err instanceof joseErrors.JWKSTimeout) return "the issuer's keys could not be fetched in time";
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed token';
  // Anything else is a failed fetch of the issuer's keys: what it met stays in the server.
  if (!(err instanceof joseErrors.JOSEError)) return "the issuer's keys could not be fetched";
  return err.message || 'invalid token';
}
