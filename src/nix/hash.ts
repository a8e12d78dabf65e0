/**
 * Prefixed hashes as they appear in narinfo files (`sha256:<nix32|hex|base64>`, or SRI `sha256-<b64>`).
 * The encoding is chosen by length, as `Hash::parseAnyPrefixed` does in Nix.
 */
import { InvalidInput } from '../errors.js';
import { decodeNix32, encodeNix32, nix32EncodedLength } from './nix32.js';

export type HashAlgo = 'md5' | 'sha1' | 'sha256' | 'sha512';
export const HASH_SIZES: Record<HashAlgo, number> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

export interface Hash {
  algo: HashAlgo;
  digest: Uint8Array;
}

function isAlgo(s: string): s is HashAlgo {
  return s === 'md5' || s === 'sha1' || s === 'sha256' || s === 'sha512';
}

const HEX = /^[0-9a-fA-F]+$/;
const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses an unprefixed digest of a known algorithm, encoding chosen by length. */
export function parseDigest(algo: HashAlgo, text: string, field = 'hash'): Hash {
  const size = HASH_SIZES[algo];
  if (text.length === size * 2 && HEX.test(text)) return { algo, digest: Buffer.from(text, 'hex') };
  if (text.length === nix32EncodedLength(size)) {
    try {
      return { algo, digest: decodeNix32(text, size) };
    } catch (err) {
      throw new InvalidInput(field, `invalid nix32 ${algo} digest (${(err as Error).message})`);
    }
  }
  if (text.length === Math.ceil(size / 3) * 4 && B64.test(text)) {
    const digest = Buffer.from(text, 'base64');
    if (digest.length === size) return { algo, digest };
  }
  throw new InvalidInput(field, `${algo} digest has a length (${text.length}) that fits no encoding`);
}

/** Parses `<algo>:<digest>` or SRI `<algo>-<base64>`; a prefix is mandatory, as in Nix. */
export function parseHash(text: string, field = 'hash'): Hash {
  const colon = text.indexOf(':');
  const dash = text.indexOf('-');
  if (colon > 0 && (dash < 0 || colon < dash)) {
    const algo = text.slice(0, colon);
    if (!isAlgo(algo)) throw new InvalidInput(field, `unknown hash algorithm ${JSON.stringify(algo)}`);
    return parseDigest(algo, text.slice(colon + 1), field);
  }
  if (dash > 0) {
    const algo = text.slice(0, dash);
    if (!isAlgo(algo)) throw new InvalidInput(field, `unknown hash algorithm ${JSON.stringify(algo)}`);
    const b64 = text.slice(dash + 1);
    const digest = B64.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
    if (digest.length !== HASH_SIZES[algo]) throw new InvalidInput(field, `invalid SRI ${algo} hash`);
    return { algo, digest };
  }
  throw new InvalidInput(field, `expected "<algo>:<digest>", got ${JSON.stringify(text.slice(0, 80))}`);
}

export function formatNix32Hash(hash: Hash): string {
  return `${hash.algo}:${encodeNix32(hash.digest)}`;
}

export function formatSriHash(hash: Hash): string {
  return `${hash.algo}-${Buffer.from(hash.digest).toString('base64')}`;
}

export function hashesEqual(a: Hash, b: Hash): boolean {
  return a.algo === b.algo && Buffer.from(a.digest).equals(Buffer.from(b.digest));
}
