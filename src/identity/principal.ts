/** Who is asking. Built once per request by the HTTP layer from a verified credential. */
import type { AuthMethod, Scope } from '../wire/access.js';

export type { AuthMethod, Scope } from '../wire/access.js';

export interface OrgRef {
  id: string;
  name: string;
}

/** Where a request comes from, as the HTTP layer established it (trusted proxies only). */
export interface ClientInfo {
  /** The client's address (IPv4 or IPv6, IPv4-mapped addresses unwrapped). */
  ip: string;
  /** ISO 3166-1 alpha-2 country from the offline GeoIP database, or undefined when unknown. */
  country?: string;
  /** The request id, so audit entries can be matched with logs. */
  requestId?: string;
}

/**
 * A deploy-only grant: the token may read exactly the closures of this flake output, in every
 * non-yanked release matching `requirement` (so it follows new releases), and nothing else.
 */
export interface DeployGrant {
  org: string;
  flake: string;
  requirement: string;
  attr: string;
}

/** Network limits carried by a token itself; empty lists mean "no limit of that kind". */
export interface NetworkLimits {
  cidrs: string[];
  countries: string[];
}

export type Principal =
  | { kind: 'anonymous'; client?: ClientInfo }
  | { kind: 'server-admin'; tokenId: string; subject: string; client?: ClientInfo }
  | {
      kind: 'token';
      tokenId: string;
      subject: string;
      org: OrgRef;
      scopes: ReadonlySet<Scope>;
      /** Slice names this token is limited to; null = every slice of the org. */
      slices: readonly string[] | null;
      /** Issue time and expiry, seconds since the epoch. */
      issuedAt?: number;
      expiresAt?: number;
      authMethod?: AuthMethod;
      /** The external identity this token was exchanged for (OIDC/CI login), if any. */
      identity?: { provider: string; issuer: string; claims: Record<string, string | string[]> };
      /** Present on deploy-only device tokens: the outputs whose closures it may read. */
      deploy?: readonly DeployGrant[];
      network?: NetworkLimits;
      client?: ClientInfo;
    };

export const ANONYMOUS: Principal = { kind: 'anonymous' };

/** The same principal, seen from a given client (principals are shared between requests: never mutate). */
export function withClient(p: Principal, client: ClientInfo): Principal {
  return { ...p, client };
}

export function describePrincipal(p: Principal): string {
  switch (p.kind) {
    case 'anonymous':
      return 'anonymous';
    case 'server-admin':
      return `server-admin:${p.subject}`;
    case 'token':
      return `${p.org.name}:${p.subject}`;
  }
}
