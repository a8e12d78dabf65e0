/**
 * Which Nix versions honour the lockable tarball protocol (`Link: <url>; rel="immutable"`), from
 * the `nix --version` text. Pure.
 *
 * Nix 2.17 release notes: "Tarball flakes can now redirect to an 'immutable' URL that will be
 * recorded in lock files"; the feature was backported to 2.13.5 and 2.15.2 (FlakeHub supports
 * exactly 2.13.5+, 2.15.2+ and 2.17+; 2.14 and 2.16 never got it). An older Nix (Debian's 2.8)
 * locks the requirement URL itself plus its narHash, so its lock breaks ("NAR hash mismatch") as
 * soon as a newer release matches the requirement: such clients must be given the pinned URL.
 */

export interface NixVersion {
  major: number;
  minor: number;
  patch: number;
  /** What `nix --version` printed, trimmed (`nix (Nix) 2.8.0`, `nix (Lix, like Nix) 2.91.1`). */
  text: string;
}

/** Human wording of the rule, for messages. */
export const LINK_HONOURED_SINCE = 'Nix 2.17 (or 2.13.5+, 2.15.2+)';

/**
 * The Nix version in `nix --version` output: the last `x.y[.z]` on the first line (Determinate Nix
 * prints its own version first: `nix (Determinate Nix 3.6.2) 2.29.0`; Lix counts from 2.90).
 */
export function parseNixVersion(output: string): NixVersion | undefined {
  const line = output.trim().split('\n')[0] ?? '';
  const all = [...line.matchAll(/(?<![\w.])(\d+)\.(\d+)(?:\.(\d+))?(?:[\w.+-]*)/g)];
  const m = all.at(-1);
  if (!m || !/\bnix\b/i.test(line)) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), text: line.trim() };
}

/** True when this Nix records the `Link: rel="immutable"` URL in flake.lock instead of the URL it was given. */
export function honoursImmutableLink(v: NixVersion): boolean {
  if (v.major !== 2) return v.major > 2;
  if (v.minor >= 17) return true;
  if (v.minor === 13) return v.patch >= 5;
  if (v.minor === 15) return v.patch >= 2;
  return false;
}
