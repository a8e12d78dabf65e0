/**
 * At most N open connections per client address, so one client cannot hold every socket (and,
 * with stalled bodies, every ingestion slot) of the server. Beyond the cap a new connection is
 * closed at once, before any byte of it is parsed. Behind a reverse proxy every connection comes
 * from the proxy, so peers listed in FLOE_TRUSTED_PROXIES are not capped (the proxy limits its
 * own clients).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import proxyaddr from 'proxy-addr';
import { normalizeIp } from '../policy/network.js';

/** PURE bookkeeping: open connections per address. */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Counts a new connection from `ip`; false (and not counted) when the address is at the cap. */
  tryOpen(ip: string): boolean {
    const n = this.open.get(ip) ?? 0;
    if (n >= this.max) return false;
    this.open.set(ip, n + 1);
    return true;
  }

  close(ip: string): void {
    const n = (this.open.get(ip) ?? 1) - 1;
    if (n > 0) this.open.set(ip, n);
    else this.open.delete(ip);
  }

  count(ip: string): number {
    return this.open.get(ip) ?? 0;
  }
}

/** Caps connections per untrusted peer on `server` (max 0 = no cap). Returns how many were refused so far. */
export function limitConnectionsPerClient(
  server: Server,
  max: number,
  trustedProxies: readonly string[],
  onRefused?: (ip: string) => void,
): void {
  if (max <= 0) return;
  const trusted = proxyaddr.compile(trustedProxies.length ? [...trustedProxies] : []);
  const counter = new ConnectionCounter(max);
  server.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress;
    if (peer === undefined) return;
    if (trustedProxies.length && trusted(peer, 0)) return;
    let ip: string;
    try {
      ip = normalizeIp(peer);
    } catch {
      ip = peer;
    }
    if (!counter.tryOpen(ip)) {
      onRefused?.(ip);
      socket.destroy();
      return;
    }
    socket.once('close', () => counter.close(ip));
  });
}
