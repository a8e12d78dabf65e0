/**
 * PURE: the narinfo a slice serves for a path, rendered once at commit (and again when the org's
 * keys change): the stored NAR's URL, zstd file hash and size, the uploader's signatures as sent,
 * and one signature per signing key of the slice's org.
 */
import { parseDigest, type Hash } from '../nix/hash.js';
import { type NarInfoField, formatNarInfo } from '../nix/narinfo.js';
import { fingerprintPath, signFingerprint, type SigningKey } from '../nix/signing.js';
import type { StorePathBase } from '../nix/store-path.js';
import { narBlobKey } from './blob-keys.js';

export interface RenderablePath {
  storePath: StorePathBase;
  narHash: Hash;
  narSize: number;
  references: readonly StorePathBase[];
  deriver?: StorePathBase | undefined;
  ca?: string | undefined;
  /** Signatures the uploader (or upstream) brought; never ones under the org's own key names. */
  sigs: readonly string[];
  /** Fields Floe does not interpret, served as uploaded after the others (no signature covers them). */
  extraFields?: readonly NarInfoField[] | undefined;
}

export interface StoredNar {
  nar_hash: string;
  file_hash: string;
  file_size: number;
}

export function renderNarInfo(path: RenderablePath, nar: StoredNar, keys: readonly SigningKey[]): string {
  const fingerprint = fingerprintPath(path);
  return formatNarInfo({
    storePath: path.storePath,
    url: `nar/${narBlobKey(nar.nar_hash)}`,
    compression: 'zstd',
    fileHash: parseDigest('sha256', nar.file_hash),
    fileSize: Number(nar.file_size),
    narHash: path.narHash,
    narSize: path.narSize,
    references: [...path.references],
    ...(path.deriver ? { deriver: path.deriver } : {}),
    sigs: [...path.sigs, ...keys.map((k) => signFingerprint(k, fingerprint))],
    ...(path.ca ? { ca: path.ca } : {}),
    ...(path.extraFields?.length ? { extraFields: [...path.extraFields] } : {}),
  });
}

/** The `paths.extra_fields` column: one `Name: value` line per field (values hold no newline). */
export function storeExtraFields(fields: readonly NarInfoField[] | undefined): string | null {
  return fields?.length ? fields.map((f) => `${f.name}: ${f.value}`).join('\n') : null;
}

export function loadExtraFields(column: string | null | undefined): NarInfoField[] {
  if (!column) return [];
  return column.split('\n').map((line) => {
    const at = line.indexOf(': ');
    return { name: line.slice(0, at), value: line.slice(at + 2) };
  });
}

/** A stored path row, as `renderNarInfo` needs it. */
export function renderableRow(row: {
  store_path: string;
  nar_hash: string;
  nar_size: number;
  refs: string;
  deriver: string | null;
  ca: string | null;
  sigs: string;
  extra_fields?: string | null;
}): RenderablePath {
  const extraFields = loadExtraFields(row.extra_fields);
  return {
    storePath: row.store_path as StorePathBase,
    narHash: parseDigest('sha256', row.nar_hash),
    narSize: Number(row.nar_size),
    references: row.refs.split(' ').filter(Boolean) as StorePathBase[],
    ...(row.deriver ? { deriver: row.deriver as StorePathBase } : {}),
    ...(row.ca ? { ca: row.ca } : {}),
    sigs: row.sigs.split('\n').filter(Boolean),
    ...(extraFields.length ? { extraFields } : {}),
  };
}
