/**
 * Who is on the other end: the socket's address, or the `X-Forwarded-For` chain walked back only
 * through proxies the operator named (FLOE_TRUSTED_PROXIES; proxy-addr does the walking), and the
 * country from the offline GeoIP database shipped with geoip-country (no network lookups).
 */
import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';
import geoip from 'geoip-country';
import type { ClientInfo } from '../identity/principal.js';
import { normalizeIp } from '../policy/network.js';

export type ClientResolver = (req: IncomingMessage, requestId: string) => ClientInfo;

/** `trustedProxies`: addresses/CIDRs, or proxy-addr's names (loopback, linklocal, uniquelocal). */
export function clientResolver(trustedProxies: readonly string[]): ClientResolver {
  const trust = proxyaddr.compile(trustedProxies.length ? [...trustedProxies] : []);
  // Per address as seen (before normalizing): the normal form and the country, looked up once.
  const known = new Map<string, { ip: string; country: string | undefined }>();
  const lookup = (raw: string) => {
    let entry = known.get(raw);
    if (!entry) {
      let ip: string;
      try {
        ip = normalizeIp(raw);
      } catch {
        ip = '0.0.0.0';
      }
      entry = { ip, country: geoip.lookup(ip)?.country || undefined };
      if (known.size > 50_000) known.clear();
      known.set(raw, entry);
    }
    return entry;
  };
  // Without trusted proxies the address is the socket's, the same for every request on it.
  const bySocket = new WeakMap<object, { ip: string; country: string | undefined }>();
  return (req, requestId) => {
    let entry: { ip: string; country: string | undefined } | undefined;
    if (trustedProxies.length) {
      let raw: string;
      try {
        raw = proxyaddr(req, trust);
      } catch {
        raw = '0.0.0.0'; // a malformed forwarded address from a trusted proxy: nobody
      }
      entry = lookup(raw);
    } else {
      entry = bySocket.get(req.socket);
      if (!entry) {
        entry = lookup(req.socket.remoteAddress ?? '0.0.0.0');
        bySocket.set(req.socket, entry);
      }
    }
    const { ip, country } = entry;
    return country ? { ip, country, requestId } : { ip, requestId };
  };
}
