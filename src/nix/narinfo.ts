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
  /**
   * Lines this parser does not know (Determinate Nix's `Provenance:`, 2.8's `System:`, anything
   * newer), kept byte-for-byte and in order. Nix's signatures never cover them (the fingerprint is
   * StorePath, NarHash, NarSize and References only), so they are as trustworthy as the uploader.
   */
  extraFields?: NarInfoField[];
}

export interface NarInfoField {
  name: string;
  value: string;
}

export const MAX_NARINFO_BYTES = 1 << 20;
const MAX_REFERENCES = 50_000;
const MAX_SIGNATURES = 64;
/** Unknown fields are kept for every uploader, within these bounds (a 400 beyond them). */
export const MAX_EXTRA_FIELDS = 32;
export const MAX_EXTRA_FIELD_BYTES = 64 * 1024;
/** The fields this parser reads; every other `Key: value` line is an extra field. */
const KNOWN_FIELDS = new Set([
  'StorePath',
  'URL',
  'Compression',
  'FileHash',
  'FileSize',
  'NarHash',
  'NarSize',
  'References',
  'Deriver',
  'Sig',
  'CA',
]);
/** Field names Nix reads up to the first ':'; ours are plain tokens, so no line can be mistaken for another. */
const FIELD_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** A control character in any value would end its line and start another field. */
const CONTROL = /[\x00-\x1f\x7f]/;

/**
 * PURE: checks extra fields as Nix would read them back: a plain name that is not one of the
 * fields Floe renders itself, a value without control characters, within the bounds above.
 * `Provenance` must be what Determinate Nix parses (a JSON object with a string `type`): anything
 * else makes it call the whole narinfo corrupt.
 */
export function checkExtraFields(fields: readonly NarInfoField[]): void {
  if (fields.length > MAX_EXTRA_FIELDS) {
    throw new InvalidInput('narinfo', `more than ${MAX_EXTRA_FIELDS} unknown fields`);
  }
  let bytes = 0;
  for (const { name, value } of fields) {
    if (!FIELD_NAME.test(name)) {
      const shown = JSON.stringify(name.slice(0, 80));
      const rule = 'a letter then letters, digits, "_", "." or "-" (at most 64)';
      throw new InvalidInput('narinfo', `field name ${shown} must be ${rule}`);
    }
    if (KNOWN_FIELDS.has(name)) throw new InvalidInput('narinfo', `${name} is not an extra field`);
    if (CONTROL.test(value)) throw new InvalidInput(name, 'must not contain control characters');
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value) + 3;
    if (name === 'Provenance') checkProvenance(value);
  }
  if (bytes > MAX_EXTRA_FIELD_BYTES) {
    throw new InvalidInput('narinfo', `unknown fields take more than ${MAX_EXTRA_FIELD_BYTES} bytes`);
  }
}

function checkProvenance(value: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new InvalidInput('Provenance', 'must be JSON (Determinate Nix parses it)');
  }
  const isObject = parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed);
  const ok = isObject && typeof (parsed as { type?: unknown }).type === 'string';
  if (!ok) throw new InvalidInput('Provenance', 'must be a JSON object with a string "type"');
}

function parseUnsigned(text: string, field: string): number {
  if (!/^[0-9]{1,16}$/.test(text))
    throw new InvalidInput(field, `expected an unsigned integer, got ${JSON.stringify(text.slice(0, 40))}`);
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
  const extraFields: NarInfoField[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const colon = line.indexOf(': ');
    if (colon <= 0)
      throw new InvalidInput('narinfo', `malformed line ${JSON.stringify(line.slice(0, 80))} (expected "Key: value")`);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 2);
    if (key === 'Sig') {
      sigs.push(value);
      continue;
    }
    if (!KNOWN_FIELDS.has(key)) {
      // Nix ignores fields it does not know, repeated or not; they are kept as sent.
      extraFields.push({ name: key, value });
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
  checkExtraFields(extraFields);
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
    ...(extraFields.length ? { extraFields } : {}),
  };
}

export function formatNarInfo(info: NarInfo, storeDir = DEFAULT_STORE_DIR): string {
  for (const [field, value] of [
    ['URL', info.url],
    ['Compression', info.compression],
    ['CA', info.ca ?? ''],
    ...info.sigs.map((s) => ['Sig', s] as const),
  ] as const) {
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
  // After every field Nix writes, as Determinate Nix places `Provenance:`.
  if (info.extraFields) {
    checkExtraFields(info.extraFields);
    for (const { name, value } of info.extraFields) out += `${name}: ${value}\n`;
  }
  return out;
}
