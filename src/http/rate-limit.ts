/**
 * Per-client token buckets for the endpoints that trade credentials (logins and exchanges), so a
 * stolen-token stuffing or a misbehaving CI loop cannot hammer the identity providers' JWKS
 * endpoints or the STS through Floe. Per replica, in memory: behind N replicas the effective limit
 * is N times the setting, which is fine for what it protects.
 */
import { TooManyRequests } from '../errors.js';

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private static readonly MAX_KEYS = 50_000;

  /** `perMinute` requests per key, with a burst of the same size; 0 disables. */
  constructor(private readonly perMinute: number) {}

  /** Takes one token for `key`; returns 0 when allowed, else the seconds to wait. */
  take(key: string, nowMs = Date.now()): number {
    if (this.perMinute <= 0) return 0;
    const ratePerMs = this.perMinute / 60_000;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= RateLimiter.MAX_KEYS) this.sweep(nowMs);
      b = { tokens: this.perMinute, at: nowMs };
      this.buckets.set(key, b);
    }
    b.tokens = Math.min(this.perMinute, b.tokens + (nowMs - b.at) * ratePerMs);
    b.at = nowMs;
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / ratePerMs / 1000));
  }

  /** One login attempt from `ip`; throws the 429 (with Retry-After) once its address is over the limit. */
  limitLogin(ip: string | undefined): void {
    const wait = this.take(ip ?? '?');
    if (wait > 0) throw new TooManyRequests(`too many login attempts from your address; try again in ${wait} s`, wait);
  }

  /** Drops buckets that have refilled completely (they carry no state worth keeping). */
  private sweep(nowMs: number): void {
    const full = 60_000;
    for (const [k, b] of this.buckets) if (nowMs - b.at >= full) this.buckets.delete(k);
    if (this.buckets.size >= RateLimiter.MAX_KEYS) this.buckets.clear();
  }
}
