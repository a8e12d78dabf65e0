/**
 * PURE: may a path stored in one slice enter another slice as a reference, without an upload?
 *
 * A path enters a slice only by an upload of a writer of that slice, a verified upstream mirror,
 * or a link from a source the target trusts. Links are free when they are safe whatever the
 * source: the path's metadata proves its content (verified content address), or it carries a
 * signature that verifies against a key the target's org trusts (`floe signer add`) or a key of
 * a configured upstream (a mirrored copy). Otherwise the source itself must be trusted by the
 * target: a slice of the same org that is the org's `default` or that the target was configured
 * to trust. Never another org's slice for input-addressed paths: anyone can upload anything under
 * a path name someone else will need.
 */
import { isVerifiedContentAddressed } from '../nix/content-address.js';
import { fingerprintPath, parseSignature, verifyFingerprint } from '../nix/signing.js';
import type { RenderablePath } from './render.js';
import type { TrustedKey } from './upstream-verify.js';

export type LinkGround = 'trusted-source' | 'content-addressed' | 'trusted-signer' | 'upstream-signed';

export interface LinkContext {
  /** Slices of the target's org the target trusts as link sources (its org's `default`, and more by configuration). */
  trustedSources: ReadonlySet<string>;
  /** Keys the target's org trusts for its own CI's signatures. */
  orgSigners: readonly TrustedKey[];
  /** Keys of the server's configured upstreams. */
  upstreamKeys: readonly TrustedKey[];
}

/** The ground on which `path` (stored in `sourceSliceId`) may be linked, or undefined: it must be uploaded. */
export function linkGround(path: RenderablePath, sourceSliceId: string, ctx: LinkContext): LinkGround | undefined {
  if (ctx.trustedSources.has(sourceSliceId)) return 'trusted-source';
  if (isVerifiedContentAddressed(path)) return 'content-addressed';
  if (signedByAny(path, ctx.orgSigners)) return 'trusted-signer';
  if (signedByAny(path, ctx.upstreamKeys)) return 'upstream-signed';
  return undefined;
}

function signedByAny(path: RenderablePath, keys: readonly TrustedKey[]): boolean {
  return verifiedSignerNames(path, keys).length > 0;
}

/** Names of `keys` whose signature on `path` verifies (what `context.narinfoSignatures` holds). */
export function verifiedSignerNames(path: RenderablePath, keys: readonly TrustedKey[]): string[] {
  const out = new Set<string>();
  if (keys.length === 0 || path.sigs.length === 0) return [];
  const fingerprint = fingerprintPath(path);
  for (const sig of path.sigs) {
    let name: string;
    try {
      name = parseSignature(sig).keyName;
    } catch {
      continue;
    }
    for (const key of keys) if (key.name === name && verifyFingerprint(key, fingerprint, sig)) out.add(name);
  }
  return [...out].sort();
}
