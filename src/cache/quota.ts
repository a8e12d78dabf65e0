/** PURE quota arithmetic: an org's deduplicated stored bytes against its limit. */
import { formatBytes } from '../units.js';

/**
 * Why a write that takes an org from `before` to `after` stored bytes is refused, or undefined.
 * Writes that add nothing (already stored, signatures merged) always pass, even over quota, so an
 * org over its limit (e.g. after the limit was lowered) can still re-push what it has.
 */
export function quotaViolation(
  org: string,
  quota: number | null | undefined,
  before: number,
  after: number,
): string | undefined {
  if (quota === null || quota === undefined) return undefined;
  if (after <= before || after <= quota) return undefined;
  return `quota exceeded: org ${org} would store ${formatBytes(after)} (${after} bytes), over its quota of ${formatBytes(quota)} (${quota} bytes); it uses ${formatBytes(before)} now. Ask the server admin for more, or pin less and run GC`;
}

/** Early refusal before reading an upload: the org is already at or over its limit. */
export function quotaFull(org: string, quota: number | null | undefined, used: number): string | undefined {
  if (quota === null || quota === undefined || used < quota) return undefined;
  return `quota exceeded: org ${org} already stores ${formatBytes(used)} (${used} bytes) of its quota of ${formatBytes(quota)} (${quota} bytes)`;
}
