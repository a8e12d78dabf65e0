/** Pure address arithmetic for network rules (ipaddr.js: the parser behind proxy-addr). */
import ipaddr from 'ipaddr.js';

const parsedRanges = new Map<string, [ipaddr.IPv4 | ipaddr.IPv6, number]>();

function range(cidr: string): [ipaddr.IPv4 | ipaddr.IPv6, number] {
  let r = parsedRanges.get(cidr);
  if (!r) {
    r = cidr.includes('/')
      ? ipaddr.parseCIDR(cidr)
      : (() => {
          const a = ipaddr.parse(cidr);
          return [a, a.kind() === 'ipv4' ? 32 : 128] as [ipaddr.IPv4 | ipaddr.IPv6, number];
        })();
    if (parsedRanges.size > 10_000) parsedRanges.clear();
    parsedRanges.set(cidr, r);
  }
  return r;
}

/** Normalizes an address: IPv4-mapped IPv6 (::ffff:1.2.3.4) becomes plain IPv4. */
export function normalizeIp(ip: string): string {
  const a = ipaddr.parse(ip);
  return a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()
    ? (a as ipaddr.IPv6).toIPv4Address().toString()
    : a.toString();
}

export function isValidCidr(cidr: string): boolean {
  try {
    range(cidr);
    return true;
  } catch {
    return false;
  }
}

/** Whether every address of `cidr` lies inside one of `outer`. */
export function cidrWithin(cidr: string, outer: readonly string[]): boolean {
  let inner: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    inner = range(cidr);
  } catch {
    return false;
  }
  return outer.some((o) => {
    const [net, bits] = range(o);
    return net.kind() === inner[0].kind() && inner[1] >= bits && inner[0].match(net, bits);
  });
}

export function ipInAnyRange(ip: string, cidrs: readonly string[]): boolean {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(normalizeIp(ip));
  } catch {
    return false;
  }
  return cidrs.some((c) => {
    const [net, bits] = range(c);
    return net.kind() === addr.kind() && addr.match(net, bits);
  });
}
