/**
 * Syntax of the narinfo `CA` field: `text:sha256:<h>`, `fixed:<algo>:<h>`, `fixed:r:<algo>:<h>`,
 * `fixed:git:sha1:<h>`. We validate syntax only; recomputing the store path from it is the
 * client's job (Nix accepts such paths without signatures after recomputing).
 */
import { InvalidInput } from '../errors.js';
import { type Hash, type HashAlgo, parseDigest } from './hash.js';

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
    if (parts.length === 4 && parts[1] === 'r') return { method: 'nar', hash: parseDigest(algoOf(parts[2]), parts[3]!, 'CA') };
    if (parts.length === 4 && parts[1] === 'git') return { method: 'git', hash: parseDigest(algoOf(parts[2]), parts[3]!, 'CA') };
  }
  throw new InvalidInput('CA', `unrecognised content address ${JSON.stringify(text.slice(0, 80))}`);
}
