/**
 * The `.narinfo` format (nix src/libstore/nar-info.cc). Lines are exactly `Key: value\n`.
 * We parse what clients upload strictly enough to reject anything a Nix client would choke on,
 * and we format exactly as Nix does (field order, `References: ` even when empty, nix32 hashes)
 * so that every client version parses what we serve.
 */
import { InvalidInput } from '../errors.js';
import { type Hash, formatNix32Hash, parseHash } from './hash.js';
import { DEFAULT_STORE_DIR, type StorePathBase, parseStorePath, parseStorePathBase } from './store-path.js';
import { parseContentAddress } from './content-address.js';
import { parseSignatureLine } from './signing.js';

export interface NarInfo {
  storePath: StorePathBase;
  url: string;
  compression: string;
  fileHash?: Hash;
  fileSize?: number;
  narHash: Hash;
  narSize: number;
  references: StorePathBase[];
  deriver?: StorePathBase;
  sigs: string[];
  ca?: string;
}

export const MAX_NARINFO_BYTES = 1 << 20;
const MAX_REFERENCES = 50_000;
const MAX_SIGNATURES = 64;

function parseUnsigned(text: string, field: string): number {
  if (!/^[0-9]{1,16}$/.test(text)) throw new InvalidInput(field, `expected an unsigned integer, got ${JSON.stringify(text.slice(0, 40))}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new InvalidInput(field, 'number too large');
  return n;
}

export function parseNarInfo(text: string, storeDir = DEFAULT_STORE_DIR): NarInfo {
  if (text.length > MAX_NARINFO_BYTES) throw new InvalidInput('narinfo', `larger than ${MAX_NARINFO_BYTES} bytes`);
  if (text.includes('\r')) throw new InvalidInput('narinfo', 'must use LF line endings (CR found)');
  if (text.length > 0 && !text.endsWith('\n')) throw new InvalidInput('narinfo', 'last line must end with a newline');
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const colon = line.indexOf(': ');
    if (colon <= 0) throw new InvalidInput('narinfo', `malformed line ${JSON.stringify(line.slice(0, 80))} (expected "Key: value")`);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 2);
    if (key === 'Sig') {
      sigs.push(value);
      continue;
    }
    if (fields.has(key)) throw new InvalidInput('narinfo', `duplicate field ${key}`);
    fields.set(key, value);
  }
  const required = (key: string): string => {
    const v = fields.get(key);
    if (v === undefined || v === '') throw new InvalidInput('narinfo', `missing ${key}`);
    return v;
  };
  const storePath = parseStorePath(required('StorePath'), storeDir, 'StorePath');
  const url = required('URL');
  if (url.length > 1024 || /[\s]/.test(url)) throw new InvalidInput('URL', 'invalid');
  const narHash = parseHash(required('NarHash'), 'NarHash');
  if (narHash.algo !== 'sha256') throw new InvalidInput('NarHash', 'must be a sha256 hash');
  const narSize = parseUnsigned(required('NarSize'), 'NarSize');
  if (narSize === 0) throw new InvalidInput('NarSize', 'must not be zero');
  const refsText = fields.get('References') ?? '';
  const references = refsText === '' ? [] : refsText.split(' ').map((r) => parseStorePathBase(r, 'References'));
  if (references.length > MAX_REFERENCES) throw new InvalidInput('References', `more than ${MAX_REFERENCES}`);
  if (new Set(references).size !== references.length) throw new InvalidInput('References', 'duplicate reference');
  const deriverText = fields.get('Deriver');
  const deriver =
    deriverText === undefined || deriverText === '' || deriverText === 'unknown-deriver'
      ? undefined
      : parseStorePathBase(deriverText, 'Deriver');
  const fileHashText = fields.get('FileHash');
  const fileSizeText = fields.get('FileSize');
  const ca = fields.get('CA');
  if (ca !== undefined && ca !== '') parseContentAddress(ca);
  if (sigs.length > MAX_SIGNATURES) throw new InvalidInput('Sig', `more than ${MAX_SIGNATURES} signatures`);
  for (const sig of sigs) parseSignatureLine(sig);
  return {
    storePath,
    url,
    compression: fields.get('Compression') || 'bzip2',
    ...(fileHashText ? { fileHash: parseHash(fileHashText, 'FileHash') } : {}),
    ...(fileSizeText ? { fileSize: parseUnsigned(fileSizeText, 'FileSize') } : {}),
    narHash,
    narSize,
    references,
    ...(deriver ? { deriver } : {}),
    sigs,
    ...(ca ? { ca } : {}),
  };
}

/** A control character in any value would end its line and start another field. */
const CONTROL = /[\x00-\x1f\x7f]/;

export function formatNarInfo(info: NarInfo, storeDir = DEFAULT_STORE_DIR): string {
  for (const [field, value] of [['URL', info.url], ['Compression', info.compression], ['CA', info.ca ?? ''], ...info.sigs.map((s) => ['Sig', s] as const)] as const) {
    if (CONTROL.test(value)) throw new InvalidInput(field, 'must not contain control characters');
  }
  let out = `StorePath: ${storeDir}/${info.storePath}\n`;
  out += `URL: ${info.url}\n`;
  out += `Compression: ${info.compression}\n`;
  if (info.fileHash) out += `FileHash: ${formatNix32Hash(info.fileHash)}\n`;
  if (info.fileSize !== undefined) out += `FileSize: ${info.fileSize}\n`;
  out += `NarHash: ${formatNix32Hash(info.narHash)}\n`;
  out += `NarSize: ${info.narSize}\n`;
  out += `References: ${info.references.join(' ')}\n`;
  if (info.deriver) out += `Deriver: ${info.deriver}\n`;
  for (const sig of info.sigs) out += `Sig: ${sig}\n`;
  if (info.ca) out += `CA: ${info.ca}\n`;
  return out;
}
