/**
 * PURE checks of what an upstream binary cache serves: its narinfo must describe exactly the store
 * path asked for and carry a valid signature by a key trusted for that upstream; the NAR fetched
 * must then have the signed NarHash and NarSize. No I/O (upstream.ts fetches).
 */
import { InvalidInput } from '../errors.js';
import { hashesEqual, formatNix32Hash, type Hash } from '../nix/hash.js';
import { type NarInfo, parseNarInfo } from '../nix/narinfo.js';
import { fingerprintPath, verifyFingerprint } from '../nix/signing.js';
import { type StorePathBase, type StorePathHash, hashPartOf } from '../nix/store-path.js';

export interface TrustedKey {
  name: string;
  publicKey: Uint8Array;
}

/** `name:base64(32 bytes)`, as in nix.conf's trusted-public-keys. */
export function parseTrustedKey(text: string): TrustedKey {
  const t = text.trim();
  const colon = t.indexOf(':');
  if (colon <= 0)
    throw new InvalidInput('public key', `expected "<name>:<base64>", got ${JSON.stringify(t.slice(0, 80))}`);
  const raw = Buffer.from(t.slice(colon + 1), 'base64');
  if (raw.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(t.slice(colon + 1)))
    throw new InvalidInput('public key', `${JSON.stringify(t.slice(0, colon))}: expected 32 bytes of base64`);
  return { name: t.slice(0, colon), publicKey: raw };
}

export type UpstreamVerdict = { ok: true; info: NarInfo; signedBy: string } | { ok: false; reason: string };

/**
 * Accepts an upstream narinfo for `expected` (a store path, or just its hash part on a pull-through
 * miss) only if it parses, names that path and is signed by a trusted key.
 */
export function verifyUpstreamNarInfo(
  text: string,
  expected: StorePathBase | StorePathHash,
  trusted: readonly TrustedKey[],
): UpstreamVerdict {
  let info: NarInfo;
  try {
    info = parseNarInfo(text);
  } catch (err) {
    return { ok: false, reason: `invalid narinfo: ${(err as Error).message}` };
  }
  const matches = expected.length === 32 ? hashPartOf(info.storePath) === expected : info.storePath === expected;
  if (!matches) return { ok: false, reason: `narinfo is for ${info.storePath}, not ${expected}` };
  let fingerprint: string;
  try {
    fingerprint = fingerprintPath(info);
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  }
  for (const sig of info.sigs) {
    const keyName = sig.slice(0, sig.indexOf(':'));
    for (const key of trusted) {
      if (key.name !== keyName) continue;
      try {
        if (verifyFingerprint(key, fingerprint, sig)) return { ok: true, info, signedBy: key.name };
      } catch {
        // A malformed signature is simply not a valid one.
      }
    }
  }
  const names = info.sigs.map((s) => s.slice(0, s.indexOf(':'))).join(', ') || 'none';
  return {
    ok: false,
    reason: `no valid signature by a trusted key (signatures: ${names}; trusted: ${trusted.map((k) => k.name).join(', ') || 'none'})`,
  };
}

/** The NAR that arrived must be the one the (signed) narinfo describes. */
export function checkFetchedNar(
  info: Pick<NarInfo, 'narHash' | 'narSize'>,
  got: { narHash: Hash; narSize: number },
): string | undefined {
  if (!hashesEqual(info.narHash, got.narHash))
    return `NAR hash mismatch: signed narinfo says ${formatNix32Hash(info.narHash)}, the upstream NAR has ${formatNix32Hash(got.narHash)}`;
  if (info.narSize !== got.narSize)
    return `NAR size mismatch: signed narinfo says ${info.narSize}, the upstream NAR has ${got.narSize} bytes`;
  return undefined;
}
