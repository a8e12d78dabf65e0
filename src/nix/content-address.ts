/**
 * Syntax of the narinfo `CA` field: `text:sha256:<h>`, `fixed:<algo>:<h>`, `fixed:r:<algo>:<h>`,
 * `fixed:git:sha1:<h>`, and the store path a content address commits to (so the cache can share
 * verified content-addressed paths between tenants without trusting the uploader).
 */
import { createHash } from 'node:crypto';
import { InvalidInput } from '../errors.js';
import { type Hash, type HashAlgo, hashesEqual, parseDigest } from './hash.js';
import { encodeNix32 } from './nix32.js';
import { DEFAULT_STORE_DIR, type StorePathBase, nameOf } from './store-path.js';

export interface ContentAddress {
  method: 'text' | 'flat' | 'nar' | 'git';
  hash: Hash;
}

function algoOf(s: string | undefined): HashAlgo {
  if (s === 'md5' || s === 'sha1' || s === 'sha256' || s === 'sha512') return s;
  throw new InvalidInput('CA', `unknown hash algorithm ${JSON.stringify(s)}`);
}

export function parseContentAddress(text: string): ContentAddress {
  const parts = text.split(':');
  if (parts[0] === 'text' && parts.length === 3) {
    if (parts[1] !== 'sha256') throw new InvalidInput('CA', 'text content addresses use sha256');
    return { method: 'text', hash: parseDigest('sha256', parts[2]!, 'CA') };
  }
  if (parts[0] === 'fixed') {
    if (parts.length === 3) return { method: 'flat', hash: parseDigest(algoOf(parts[1]), parts[2]!, 'CA') };
    if (parts.length === 4 && parts[1] === 'r')
      return { method: 'nar', hash: parseDigest(algoOf(parts[2]), parts[3]!, 'CA') };
    if (parts.length === 4 && parts[1] === 'git')
      return { method: 'git', hash: parseDigest(algoOf(parts[2]), parts[3]!, 'CA') };
  }
  throw new InvalidInput('CA', `unrecognised content address ${JSON.stringify(text.slice(0, 80))}`);
}

/**
 * The store path a content address commits to (Nix's `makeFixedOutputPath` / `makeTextPath`,
 * src/libstore/store-api.cc): the path is a function of the name, the content hash and the
 * references, so a copy whose metadata matches it is the same content whoever uploaded it.
 */
export function contentAddressedPath(
  name: string,
  ca: ContentAddress,
  references: readonly StorePathBase[],
  selfReference: boolean,
  storeDir = DEFAULT_STORE_DIR,
): StorePathBase {
  const refs = references.map((r) => `:${storeDir}/${r}`).join('');
  if (ca.method === 'text') return makeStorePath(`text${refs}`, ca.hash.digest, name, storeDir);
  if (ca.method === 'nar' && ca.hash.algo === 'sha256')
    return makeStorePath(`source${refs}${selfReference ? ':self' : ''}`, ca.hash.digest, name, storeDir);
  if (references.length > 0 || selfReference)
    throw new InvalidInput('CA', 'fixed-output paths other than recursive sha256 cannot have references');
  if (ca.method === 'git') throw new InvalidInput('CA', 'git content addresses are not supported');
  const inner = createHash('sha256')
    .update(
      `fixed:out:${ca.method === 'nar' ? 'r:' : ''}${ca.hash.algo}:${Buffer.from(ca.hash.digest).toString('hex')}:`,
    )
    .digest();
  return makeStorePath('output:out', inner, name, storeDir);
}

function makeStorePath(type: string, digest: Uint8Array, name: string, storeDir: string): StorePathBase {
  const full = createHash('sha256')
    .update(`${type}:sha256:${Buffer.from(digest).toString('hex')}:${storeDir}:${name}`)
    .digest();
  const compressed = new Uint8Array(20);
  for (let i = 0; i < full.length; i++) compressed[i % 20]! ^= full[i]!;
  return `${encodeNix32(compressed)}-${name}` as StorePathBase;
}

/**
 * Whether a path's metadata proves its content: its CA must yield its store path, and the NAR
 * hash must be the content hash (recursive sha256; flat and text hashes cover the file's bytes,
 * which the metadata alone cannot check). Such a path can be shared between tenants safely.
 */
export function isVerifiedContentAddressed(
  meta: { storePath: StorePathBase; narHash: Hash; references: readonly StorePathBase[]; ca?: string | null },
  storeDir = DEFAULT_STORE_DIR,
): boolean {
  if (!meta.ca) return false;
  let ca: ContentAddress;
  try {
    ca = parseContentAddress(meta.ca);
  } catch {
    return false;
  }
  if (ca.method !== 'nar' || ca.hash.algo !== 'sha256' || !hashesEqual(ca.hash, meta.narHash)) return false;
  const name = nameOf(meta.storePath);
  const self = meta.references.includes(meta.storePath);
  const others = meta.references.filter((r) => r !== meta.storePath);
  try {
    return contentAddressedPath(name, ca, [...others].sort(), self, storeDir) === meta.storePath;
  } catch {
    return false;
  }
}
