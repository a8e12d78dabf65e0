/**
 * Where the server may connect on behalf of an org's identity trust (PURE). An org admin chooses
 * the issuer URL, and discovery documents name further URLs: without these rules the server
 * becomes a probe of its own network (loopback, private ranges, cloud metadata at 169.254.x).
 */
import ipaddr from 'ipaddr.js';

export interface DestinationRules {
  /** FLOE_OIDC_ALLOW_HTTP_ISSUERS (development and tests): http, and loopback addresses, allowed. */
  allowHttpAndLoopback: boolean;
}

/** Why a URL may not be fetched, or undefined when its form is fine (addresses are checked after DNS). */
export function urlProblem(url: string, rules: DestinationRules): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return 'not a URL';
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && rules.allowHttpAndLoopback)) return 'not https';
  if (u.username || u.password) return 'carries credentials';
  return undefined;
}

/**
 * Why an issuer URL cannot be trusted, at trust creation (PURE, independent of the server's
 * rules): a query or fragment would swallow the `/.well-known/openid-configuration` suffix.
 */
export function issuerUrlProblem(issuer: string): string | undefined {
  let u: URL;
  try {
    u = new URL(issuer);
  } catch {
    return 'is not a URL';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must be an https URL';
  if (u.username || u.password) return 'may not carry credentials';
  if (u.search || issuer.includes('?')) return 'may not have a query';
  if (u.hash || issuer.includes('#')) return 'may not have a fragment';
  return undefined;
}

/** Whether the server may connect to this resolved address: public unicast only (loopback under the test flag). */
export function addressAllowed(address: string, rules: DestinationRules): boolean {
  let a: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    a = ipaddr.parse(address);
  } catch {
    return false;
  }
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  const range = a.range();
  if (range === 'unicast') return true;
  return range === 'loopback' && rules.allowHttpAndLoopback;
}
