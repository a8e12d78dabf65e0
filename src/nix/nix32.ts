/**
 * Nix's base-32 ("nix32") encoding. The byte array is read as a little-endian integer and its
 * base-32 digits are written most significant first. Alphabet omits e, o, t, u.
 * Spec: nix doc/manual/source/protocols/nix32.md; src/libutil/hash.cc.
 */
import { InvalidInput } from '../errors.js';

export const NIX32_ALPHABET = '0123456789abcdfghijklmnpqrsvwxyz';
const DIGIT_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < NIX32_ALPHABET.length; i++) DIGIT_VALUE[NIX32_ALPHABET.charCodeAt(i)] = i;

export function nix32EncodedLength(byteLength: number): number {
  return Math.ceil((byteLength * 8) / 5);
}

export function encodeNix32(bytes: Uint8Array): string {
  const len = nix32EncodedLength(bytes.length);
  let out = '';
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const lo = bytes[i]! >> j;
    const hi = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    out += NIX32_ALPHABET[(lo | hi) & 0x1f];
  }
  return out;
}

export function decodeNix32(text: string, byteLength: number): Uint8Array {
  if (text.length !== nix32EncodedLength(byteLength)) {
    throw new InvalidInput('nix32', `expected ${nix32EncodedLength(byteLength)} characters, got ${text.length}`);
  }
  const out = new Uint8Array(byteLength);
  for (let n = 0; n < text.length; n++) {
    const code = text.charCodeAt(text.length - n - 1);
    const digit = code < 128 ? DIGIT_VALUE[code]! : -1;
    if (digit < 0) throw new InvalidInput('nix32', `invalid character ${JSON.stringify(text[text.length - n - 1])}`);
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < byteLength) {
      out[i + 1]! |= carry;
    } else if (carry !== 0) {
      throw new InvalidInput('nix32', 'value does not fit in the hash size');
    }
  }
  return out;
}
