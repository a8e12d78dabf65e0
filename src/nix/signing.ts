/**
 * Ed25519 narinfo signatures exactly as Nix computes them (2.8 src/libstore/crypto.cc,
 * store-api.cc `ValidPathInfo::fingerprint`):
 *   1;<full store path>;sha256:<nix32 NarHash>;<NarSize>;<sorted full reference paths, comma-joined>
 * Keys and signatures are `<name>:<base64>`; a secret key is base64(seed ‖ public key).
 * node:crypto only; no I/O.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { InvalidInput } from '../errors.js';
import { type Hash, formatNix32Hash } from './hash.js';
import { DEFAULT_STORE_DIR, type StorePathBase } from './store-path.js';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** Key names travel inside narinfo lines: printable ASCII, no space, no ":". */
const KEY_NAME = /^[\x21-\x39\x3b-\x7e]{1,200}$/;

export interface SigningKey {
  name: string;
  privateKey: KeyObject;
  /** Raw 32-byte public key. */
  publicKey: Buffer;
}

export interface PathForFingerprint {
  storePath: StorePathBase;
  narHash: Hash;
  narSize: number;
  references: readonly StorePathBase[];
}

export function fingerprintPath(p: PathForFingerprint, storeDir = DEFAULT_STORE_DIR): string {
  if (p.narHash.algo !== 'sha256') throw new InvalidInput('NarHash', 'fingerprints need a sha256 NarHash');
  if (p.narSize === 0) throw new InvalidInput('NarSize', 'cannot fingerprint a path with NarSize 0');
  const refs = p.references.map((r) => `${storeDir}/${r}`).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return `1;${storeDir}/${p.storePath};${formatNix32Hash(p.narHash)};${p.narSize};${refs.join(',')}`;
}

function checkKeyName(name: string): void {
  if (!KEY_NAME.test(name)) {
    throw new InvalidInput('key name', `${JSON.stringify(name)} must be non-empty without ":" or spaces`);
  }
}

export function signingKeyFromSeed(name: string, seed: Uint8Array): SigningKey {
  checkKeyName(name);
  if (seed.length !== 32) throw new InvalidInput('signing key', 'seed must be 32 bytes');
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { name, privateKey, publicKey: Buffer.from(spki.subarray(SPKI_ED25519_PREFIX.length)) };
}

export function generateSigningKey(name: string): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return signingKeyFromSeed(name, pkcs8.subarray(PKCS8_ED25519_PREFIX.length));
}

/** `name:base64(seed‖pub)`, the format of `nix-store --generate-binary-cache-key`. */
export function formatSecretKey(key: SigningKey): string {
  const pkcs8 = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  const seed = pkcs8.subarray(PKCS8_ED25519_PREFIX.length);
  return `${key.name}:${Buffer.concat([seed, key.publicKey]).toString('base64')}`;
}

export function parseSecretKey(text: string): SigningKey {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new InvalidInput('secret key', 'expected "<name>:<base64>"');
  const raw = Buffer.from(text.slice(colon + 1).trim(), 'base64');
  if (raw.length !== 64) throw new InvalidInput('secret key', 'expected 64 bytes of key material');
  const key = signingKeyFromSeed(text.slice(0, colon), raw.subarray(0, 32));
  if (!key.publicKey.equals(raw.subarray(32)))
    throw new InvalidInput('secret key', 'public half does not match the seed');
  return key;
}

export function formatPublicKey(key: { name: string; publicKey: Uint8Array }): string {
  return `${key.name}:${Buffer.from(key.publicKey).toString('base64')}`;
}

export interface Signature {
  keyName: string;
  sig: Buffer;
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Parses `name:base64` and insists on 64 bytes: Nix throws (not "untrusted") on other lengths. */
export function parseSignature(text: string): Signature {
  const colon = text.indexOf(':');
  if (colon <= 0)
    throw new InvalidInput('Sig', `expected "<key name>:<base64>", got ${JSON.stringify(text.slice(0, 80))}`);
  // The key name is written into narinfo lines: a newline in it would inject fields (e.g. URL).
  if (!KEY_NAME.test(text.slice(0, colon)))
    throw new InvalidInput(
      'Sig',
      `key name ${JSON.stringify(text.slice(0, Math.min(colon, 80)))} must be printable ASCII without spaces or ":"`,
    );
  const b64 = text.slice(colon + 1);
  const sig = B64.test(b64) ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
  if (sig.length !== 64) throw new InvalidInput('Sig', 'signature must be 64 bytes of base64');
  return { keyName: text.slice(0, colon), sig };
}

/**
 * Signatures a narinfo may carry: a key name and base64 of any length up to MAX_SIGNATURE_BASE64
 * (post-quantum and ECDSA signatures of newer signers are several KB). Nix ignores signatures by
 * keys it does not trust, so such lines are kept and served; only Ed25519 ones (parseSignature)
 * are ever verified here.
 */
export const MAX_SIGNATURE_BASE64 = 64 * 1024;
export function parseSignatureLine(text: string): { keyName: string } {
  const colon = text.indexOf(':');
  if (colon <= 0)
    throw new InvalidInput('Sig', `expected "<key name>:<base64>", got ${JSON.stringify(text.slice(0, 80))}`);
  if (!KEY_NAME.test(text.slice(0, colon)))
    throw new InvalidInput(
      'Sig',
      `key name ${JSON.stringify(text.slice(0, Math.min(colon, 80)))} must be printable ASCII without spaces or ":"`,
    );
  const b64 = text.slice(colon + 1);
  if (b64.length > MAX_SIGNATURE_BASE64)
    throw new InvalidInput('Sig', `signature longer than ${MAX_SIGNATURE_BASE64} base64 characters`);
  // Nix >= 2.34 refuses the whole narinfo over a Sig with empty or invalid base64.
  if (b64.length % 4 !== 0 || !B64.test(b64)) throw new InvalidInput('Sig', 'signature must be base64');
  return { keyName: text.slice(0, colon) };
}

export function signFingerprint(key: SigningKey, fingerprint: string): string {
  const sig = sign(null, Buffer.from(fingerprint, 'utf8'), key.privateKey);
  return `${key.name}:${sig.toString('base64')}`;
}

export function verifyFingerprint(
  publicKey: { name: string; publicKey: Uint8Array },
  fingerprint: string,
  signature: string,
): boolean {
  const parsed = parseSignature(signature);
  if (parsed.keyName !== publicKey.name) return false;
  const keyObject = createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(publicKey.publicKey)]),
    format: 'der',
    type: 'spki',
  });
  return verify(null, Buffer.from(fingerprint, 'utf8'), keyObject, parsed.sig);
}
