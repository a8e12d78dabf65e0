/** The credential of a request, shared by the Hono app and the /cache handler. */
import { Unauthenticated } from '../errors.js';
import { parseAuthorization } from '../identity/credentials.js';
import type { ExchangeService } from '../identity/exchange.js';
import type { RateLimiter } from './rate-limit.js';

export const TOKEN_IN_USER_NAME =
  'the token was sent as the Basic user name with no password: put it in the password field (netrc: "machine HOST password TOKEN", any login), or send "Authorization: Bearer TOKEN"';

/** The bearer credential, undefined when none was sent; a token misplaced in the user name is a 401, not anonymous. */
export function requestCredential(header: string | undefined): string | undefined {
  const r = parseAuthorization(header);
  if (r.kind === 'token-in-user-name') throw new Unauthenticated(TOKEN_IN_USER_NAME);
  return r.kind === 'credential' ? r.credential : undefined;
}

/** A CI identity token (a JWT) where a Floe token goes, as flakehub-push and magic-nix-cache send it. */
export function isRawCiToken(credential: string): boolean {
  return !credential.startsWith('floe_') && credential.split('.').length === 3;
}

/**
 * Trades a raw CI token for a Floe token, memoized per token. Only real exchanges count against the
 * client address's login limit (they reach the IdP; a push sends the same token thousands of times).
 * One function for both stacks, so the Hono app and /cache share the limit and the memo.
 */
export function rawCiTokenExchange(
  exchange: Pick<ExchangeService, 'isReusableCached' | 'exchangeReusable'>,
  limiter: RateLimiter,
): (jwt: string, clientIp: string | undefined) => Promise<string> {
  return async (jwt, clientIp) => {
    if (!exchange.isReusableCached(jwt)) limiter.limitLogin(clientIp);
    return exchange.exchangeReusable(jwt);
  };
}
