/** PURE: org and slice naming: the default slice, "did you mean" for mistyped org and slice names. */
import type { Principal } from '../identity/principal.js';

/** Every org has this slice; it cannot be deleted. */
export const DEFAULT_SLICE = 'default';

/** Levenshtein distance, stopping early past `limit` (names are short; this stays cheap). */
export function editDistance(a: string, b: string, limit = 3): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    if (Math.min(...cur) > limit) return limit + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

/** The candidate closest to `wanted` within two edits (ties: the first), if any. */
export function closestName(wanted: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    if (c === wanted) continue;
    const d = editDistance(wanted.toLowerCase(), c.toLowerCase(), 2);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/**
 * The one message for slice names an org lacks: `no slice named "x" in org acme (did you mean
 * "y"?)`, the hint drawn from `known` only (what the caller may know exists: `sliceNamesKnownTo`).
 */
export function noSliceNamed(org: string, wanted: readonly string[], known: readonly string[]): string {
  return wanted
    .map((w) => {
      const near = closestName(w, known);
      const hint = near ? ` (did you mean ${JSON.stringify(near)}?)` : '';
      return `no slice named ${JSON.stringify(w)} in org ${org}${hint}`;
    })
    .join('; ');
}

/**
 * Which of an org's slice names `p` may be told about: all of them for the server admin and the
 * org's own unlimited tokens, a slice-limited token's own slices; undefined for anyone else (not a
 * member: it learns nothing, not even that the org exists).
 */
export function sliceNamesKnownTo(p: Principal, orgId: string, names: readonly string[]): string[] | undefined {
  if (p.kind === 'server-admin') return [...names];
  if (p.kind !== 'token' || p.org.id !== orgId) return undefined;
  return p.slices ? names.filter((n) => p.slices!.includes(n)) : [...names];
}
