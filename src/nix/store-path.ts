/**
 * Store path syntax (nix src/libstore/path.cc): `<storeDir>/<32 nix32 chars>-<name>`,
 * name 1..211 chars of [A-Za-z0-9+-._?=], never starting with '.' (portable rule across versions).
 */
import { InvalidInput } from '../errors.js';

export const DEFAULT_STORE_DIR = '/nix/store';
const HASH_PART = /^[0-9a-df-np-sv-z]{32}$/;
const NAME = /^[A-Za-z0-9+\-._?=]{1,211}$/;

export type StorePathHash = string & { readonly __brand: 'StorePathHash' };
/** A base name `<hash>-<name>`, validated. */
export type StorePathBase = string & { readonly __brand: 'StorePathBase' };

export function parseStorePathHash(text: string): StorePathHash {
  if (!HASH_PART.test(text)) {
    throw new InvalidInput('store path hash', `expected 32 nix32 characters, got ${JSON.stringify(text.slice(0, 40))}`);
  }
  return text as StorePathHash;
}

export function parseStorePathBase(text: string, field = 'store path'): StorePathBase {
  if (text.length < 34 || text[32] !== '-' || !HASH_PART.test(text.slice(0, 32))) {
    throw new InvalidInput(field, `expected "<32-char nix32 hash>-<name>", got ${JSON.stringify(text.slice(0, 80))}`);
  }
  const name = text.slice(33);
  if (!NAME.test(name)) throw new InvalidInput(field, `invalid name ${JSON.stringify(name.slice(0, 80))}`);
  if (name.startsWith('.')) throw new InvalidInput(field, `name must not start with "." (${JSON.stringify(name)})`);
  return text as StorePathBase;
}

/** Parses a full store path directly inside `storeDir`; returns its base name. */
export function parseStorePath(text: string, storeDir = DEFAULT_STORE_DIR, field = 'store path'): StorePathBase {
  const prefix = storeDir + '/';
  if (!text.startsWith(prefix))
    throw new InvalidInput(field, `${JSON.stringify(text.slice(0, 80))} is not in ${storeDir}`);
  return parseStorePathBase(text.slice(prefix.length), field);
}

export function hashPartOf(base: StorePathBase): StorePathHash {
  return base.slice(0, 32) as StorePathHash;
}

export function nameOf(base: StorePathBase): string {
  return base.slice(33);
}
