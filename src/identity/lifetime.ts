/**
 * How long a token may live that another one creates (PURE). A token never outlives its creator:
 * a one-hour CI admin token or an eight-hour web session minting year-long tokens would turn a
 * short-lived credential into a permanent one. Only the server admin (and creators without an
 * expiry) is not bounded.
 */
import { Forbidden } from '../errors.js';
import type { Principal } from './principal.js';

/** Seconds the creator has left, or undefined when it is not bounded. */
export function remainingLifetime(creator: Principal, nowSeconds: number): number | undefined {
  if (creator.kind !== 'token' || creator.expiresAt === undefined) return undefined;
  return Math.max(0, creator.expiresAt - nowSeconds);
}

/**
 * The lifetime of a token `creator` mints: `requested` if it ends before the creator does (else a
 * 403 saying when the creator expires); without a request, `fallback` shortened to the creator's
 * remaining life.
 */
export function ttlWithinCreator(
  creator: Principal,
  requested: number | undefined,
  fallback: number,
  nowSeconds: number,
): number {
  const left = remainingLifetime(creator, nowSeconds);
  if (left === undefined) return requested ?? fallback;
  if (left < 1) throw new Forbidden('your token has expired');
  if (requested === undefined) return Math.min(fallback, left);
  if (requested > left) {
    throw new Forbidden(
      `your token expires at ${new Date((nowSeconds + left) * 1000).toISOString()}: a token you create cannot outlive it (ask for a ttl of at most ${left}s, or ask the server admin)`,
    );
  }
  return requested;
}
