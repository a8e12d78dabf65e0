/**
 * PURE: Attic's wire contract (zhaofengli/attic, attic/src/api/v1/*.rs; see docs/compat/attic.md)
 * mapped onto Floe's slices and path metadata. No I/O: the routes in attic.ts do that.
 */
import { z } from 'zod';
import { InvalidInput } from '../../../errors.js';
import { parseHash } from '../../../nix/hash.js';
import {
  hashPartOf,
  parseStorePath,
  parseStorePathBase,
  parseStorePathHash,
  type StorePathBase,
  type StorePathHash,
} from '../../../nix/store-path.js';
import type { PathMetadata } from '../../../cache/service.js';

/** What an Attic cache name designates in Floe. */
export type AtticCacheRef =
  | { kind: 'slice'; org: string; slice: string }
  /** magic-nix-cache's `<org uuid>:<project uuid>` (from GET /project): the org's default slice. */
  | { kind: 'project'; orgUuid: string; projectUuid: string };

export const DEFAULT_SLICE_NAME = 'default';
const FLOE_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Attic cache names match `^[A-Za-z0-9][A-Za-z0-9-_+]{0,49}$` on the client (attic/src/cache.rs),
 * so `/` cannot appear in what `attic login`/`attic push` send: `<org>+<slice>` names a slice
 * (`+` is in no Floe name), `<org>` the org's default slice, and `<org>/<slice>` is accepted too
 * for clients that do not validate. Undefined for anything else (answered as a missing cache).
 */
export function parseAtticCacheName(name: string): AtticCacheRef | undefined {
  const project = /^([0-9a-fA-F-]{36}):([0-9a-fA-F-]{36})$/.exec(name);
  if (project) {
    const [orgUuid, projectUuid] = [project[1]!.toLowerCase(), project[2]!.toLowerCase()];
    return UUID.test(orgUuid) && UUID.test(projectUuid) ? { kind: 'project', orgUuid, projectUuid } : undefined;
  }
  const parts = name.split(/[+/]/);
  if (parts.length > 2 || !parts.every((x) => FLOE_NAME.test(x))) return undefined;
  return { kind: 'slice', org: parts[0]!, slice: parts[1] ?? DEFAULT_SLICE_NAME };
}

/** The Attic cache name of a slice, as `attic login`/`attic use` want it. */
export function atticCacheName(org: string, slice: string): string {
  return slice === DEFAULT_SLICE_NAME ? org : `${org}+${slice}`;
}

const NAME = '[a-z0-9][a-z0-9_-]{0,62}';
const ATTIC_SUBSTITUTER_PATH = new RegExp(`^/(${NAME})\\+(${NAME})/(nix-cache-info|[0-9a-z]{32}\\.narinfo|nar/[^/]+)$`);

/**
 * `/<cache>/<file>` (Attic's substituter layout, for clients that build the URL themselves) as the
 * Floe slice URL serving it. Only `org+slice` names: a bare first segment could be a web page.
 */
export function atticSubstituterPath(pathname: string): string | undefined {
  const m = ATTIC_SUBSTITUTER_PATH.exec(pathname);
  return m ? `/cache/${m[1]}/${m[2]}/${m[3]}` : undefined;
}

/** `CacheConfig` (attic/src/api/v1/cache_config.rs): the fields `attic use` and the pusher read. */
export function cacheConfigOf(o: {
  substituterUrl: string;
  apiUrl: string;
  publicKey: string | undefined;
  isPublic: boolean;
  priority: number;
  upstreamKeyNames: string[];
}) {
  return {
    substituter_endpoint: o.substituterUrl,
    api_endpoint: o.apiUrl,
    ...(o.publicKey ? { public_key: o.publicKey } : {}),
    is_public: o.isPublic,
    store_dir: '/nix/store',
    priority: o.priority,
    upstream_cache_key_names: o.upstreamKeyNames,
  };
}

export const getMissingPathsBody = z.object({
  cache: z.string().max(200),
  store_path_hashes: z.array(z.string().max(64)),
});

export function parseStorePathHashes(hashes: string[]): StorePathHash[] {
  return hashes.map((h) => parseStorePathHash(h));
}

/** `UploadPathNarInfo`; `provenance` (newer magic-nix-cache) and unknown fields are ignored. */
const uploadNarInfo = z.object({
  cache: z.string().max(200),
  store_path_hash: z.string().max(64),
  store_path: z.string().max(512),
  references: z.array(z.string().max(512)).max(100_000),
  system: z.string().max(64).nullish(),
  deriver: z.string().max(512).nullish(),
  sigs: z.array(z.string().max(4096)).max(64),
  ca: z.string().max(512).nullish(),
  nar_hash: z.string().max(200),
  nar_size: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});
export type UploadNarInfo = z.infer<typeof uploadNarInfo>;

export function parseUploadNarInfo(text: string): UploadNarInfo {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InvalidInput('X-Attic-Nar-Info', 'must be a JSON object');
  }
  const r = uploadNarInfo.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new InvalidInput(`X-Attic-Nar-Info.${issue.path.join('.')}`, issue.message);
  }
  return r.data;
}

/** A store path as Attic sends it: full (`/nix/store/<base>`); a bare base name is accepted too. */
function storePathOf(text: string, field: string): StorePathBase {
  return text.startsWith('/') ? parseStorePath(text, undefined, field) : parseStorePathBase(text, field);
}

/** The Floe path metadata of an Attic upload, checked for self-consistency (hash part vs path). */
export function metadataOfUpload(info: UploadNarInfo): PathMetadata {
  const storePath = storePathOf(info.store_path, 'store_path');
  if (hashPartOf(storePath) !== info.store_path_hash)
    throw new InvalidInput('store_path_hash', 'does not match store_path');
  const narHash = parseHash(info.nar_hash, 'nar_hash');
  if (narHash.algo !== 'sha256') throw new InvalidInput('nar_hash', 'must be sha256');
  return {
    storePath,
    narHash,
    narSize: info.nar_size,
    references: info.references.map((r) => storePathOf(r, 'references')),
    ...(info.deriver ? { deriver: storePathOf(info.deriver, 'deriver') } : {}),
    ...(info.ca ? { ca: info.ca } : {}),
    sigs: info.sigs,
  };
}

/**
 * `UploadPathResult`. "Deduplicated" only when the slice already held the path (the caller can
 * see that anyway): whether another tenant holds the same NAR is never told, as on /cache.
 */
export function uploadResultOf(result: 'created' | 'exists', narSize: number) {
  return {
    kind: result === 'exists' ? 'Deduplicated' : 'Uploaded',
    file_size: narSize,
    frac_deduplicated: result === 'exists' ? 1 : 0,
  };
}

/** Attic's error body (`StructuredApiError` in client/src/api/mod.rs): `{code, error, message}`. */
export function atticErrorBody(status: number, code: string, message: string) {
  const names: Record<number, string> = {
    400: 'BadRequest',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'NoSuchCache',
    409: 'Conflict',
    413: 'PayloadTooLarge',
    429: 'TooManyRequests',
  };
  return { code: status, error: names[status] ?? (status >= 500 ? 'InternalServerError' : code), message };
}

/** The preamble size header: a decimal byte count, bounded. */
export function parsePreambleSize(value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value.trim())) throw new InvalidInput('X-Attic-Nar-Info-Preamble-Size', 'must be a byte count');
  const n = Number(value.trim());
  if (n === 0 || n > max) throw new InvalidInput('X-Attic-Nar-Info-Preamble-Size', `must be between 1 and ${max}`);
  return n;
}
