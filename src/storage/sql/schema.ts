/**
 * The metadata schema, shared by every SQL dialect (SQLite now, PostgreSQL next). Times are ISO-8601
 * text and ids are random text so both dialects store them the same way.
 * Long because it is the one list of every table's columns; it changes only with a migration.
 */

export interface OrgsTable {
  id: string;
  name: string;
  created_at: string;
}

export interface SlicesTable {
  id: string;
  org_id: string;
  name: string;
  /** 1 = anyone may read, 0 = org members only. */
  public: number;
  created_at: string;
  /** 1 = part of the org's unified view (`/cache`), after `default`; 0 = only at its own URL. */
  in_view?: number;
  /** Order among the org's slices in its unified view (lower first). */
  priority?: number;
  /** Set by the server admin: served to anonymous callers on `/cache`, in this order (lower first). */
  global_priority?: number | null;
}

/** Another org's public slice an org chose to include in its members' unified view. */
export interface OrgFollowsTable {
  org_id: string;
  slice_id: string;
  /** Order among followed sources (lower first); followed sources always come after the org's own slices. */
  priority: number;
  created_by: string;
  created_at: string;
}

/** A slice whose paths may be linked into `slice_id` as references (besides the org's `default`). */
export interface SliceTrustsTable {
  slice_id: string;
  trusted_slice_id: string;
  created_by: string;
  created_at: string;
}

/** An org's Nix signing keys: `active` signs, `previous` still signs during a transition, `retired` is gone. */
export interface OrgKeysTable {
  org_id: string;
  name: string;
  /** `name:base64(seed‖pub)`. */
  secret: string;
  /** `name:base64(pub)`. */
  public: string;
  state: 'active' | 'previous' | 'retired';
  created_at: string;
  retired_at: string | null;
}

export interface TokensTable {
  /** The JWT `jti`. */
  id: string;
  org_id: string | null;
  subject: string;
  /** Space-separated scopes. */
  scopes: string;
  /** JSON array of slice names, or null for every slice of the org. */
  slices: string | null;
  description: string | null;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  /** Last time the token was presented (minute resolution); absent before it ever was. */
  last_used_at?: string | null;
}

export interface ServerKeysTable {
  id: string;
  purpose: 'jwt' | 'nix';
  name: string;
  /** Nix: `name:base64(seed‖pub)`; JWT: PKCS#8 PEM. */
  secret: string;
  /** Nix: `name:base64(pub)`; JWT: SPKI PEM. */
  public: string;
  active: number;
  created_at: string;
}

/** One row per distinct NAR content, whoever pushed it: blobs are stored once. */
export interface NarsTable {
  nar_hash: string;
  nar_size: number;
  /** Hash and size of the stored (zstd) file, served as FileHash/FileSize. */
  file_hash: string;
  file_size: number;
  created_at: string;
  /** Last time an upload (re)used this content; GC's grace period counts from here. */
  touched_at?: string | null;
}

/** Proof of possession: which slice uploaded which client file, and what NAR it held. */
export interface NarUploadsTable {
  slice_id: string;
  file_name: string;
  nar_hash: string;
  nar_size: number;
  created_at: string;
  expires_at: string;
}

export interface PathsTable {
  slice_id: string;
  hash_part: string;
  store_path: string;
  nar_hash: string;
  nar_size: number;
  /** Space-separated base names. */
  refs: string;
  deriver: string | null;
  ca: string | null;
  /** Newline-separated uploader signatures (kept as sent). */
  sigs: string;
  /** The narinfo as served, with the server's signature, rendered once at commit. */
  narinfo: string;
  /** Narinfo lines Floe does not interpret (e.g. `Provenance: …`), newline-separated, as uploaded; unsigned. */
  extra_fields?: string | null;
  uploaded_by: string;
  created_at: string;
}

/** A CA derivation output's realisation in one slice; lives while its output path does there. */
export interface RealisationsTable {
  slice_id: string;
  /** `sha256:<hex>!<output>` (the drv hash modulo and the output name). */
  id: string;
  /** Base name of the output path, which the slice holds. */
  out_path: string;
  /** The JSON as uploaded (its signatures cover it without the `signatures` key). */
  body: string;
  created_at: string;
}

/** A build log in one slice; lives while an output of its derivation does there. */
export interface BuildLogsTable {
  slice_id: string;
  /** Base name of the derivation (`<hash>-<name>.drv`). */
  drv: string;
  /** `log-<sha256 hex of the stored bytes>.log.zst`. */
  blob_key: string;
  /** Bytes of the log text. */
  size: number;
  /** Bytes of the zstd blob (what the log costs). */
  stored_size: number;
  uploaded_by: string;
  created_at: string;
}

/** A debug info index entry in one slice (`debuginfo/<build id>`); served once its NAR is committed there. */
export interface DebugInfoTable {
  slice_id: string;
  /** 40 hex digits. */
  build_id: string;
  /** The uploader's NAR file name (`../nar/<file>` in the document it sent). */
  archive_file: string;
  /** `lib/debug/.build-id/<2 hex>/<38 hex>.debug`. */
  member: string;
  /** The NAR it resolved to when a narinfo of the slice committed that file; null until then. */
  nar_hash: string | null;
  /** When an unresolved entry is dropped. */
  expires_at: string;
  created_at: string;
}

export interface OrgPoliciesTable {
  org_id: string;
  version: number;
  source: string;
  sha256: string;
  message: string | null;
  created_by: string;
  created_at: string;
}

export interface AuditLogTable {
  seq: number;
  at: string;
  org_id: string | null;
  actor: string;
  token_id: string | null;
  action: string;
  target: string;
  /** allow | deny | event */
  outcome: string;
  reason: string;
  /** JSON: decided_by, policy_version, ip, country, request id, event details. */
  detail: string;
  prev_hash: string;
  hash: string;
}

export interface OrgSignersTable {
  org_id: string;
  name: string;
  /** `name:base64`, as in nix.conf's trusted-public-keys. */
  public_key: string;
  added_by: string;
  created_at: string;
}

export interface ReadSummaryTable {
  day: string;
  org_id: string;
  actor: string;
  store_path: string;
  narinfo_hits: number;
  nar_downloads: number;
  bytes: number;
}

export interface IdentityTrustsTable {
  id: string;
  org_id: string;
  provider: string;
  issuer: string;
  audience: string | null;
  spec: string;
  created_at: string;
  /**
   * Who the trust claims (issuer plus owner/namespace/account id, or the OIDC claim conditions):
   * one external identity belongs to one org unless the server admin approved an overlap.
   */
  subject_key?: string | null;
  /** 'active', or 'pending' while an overlap with another org's trust waits for the server admin. */
  status?: string;
}

/** External token ids already exchanged (replay protection), kept until the token expires. */
export interface UsedTokenIdsTable {
  issuer: string;
  token_id: string;
  expires_at: string;
  /**
   * SHA-256 of the whole token when it was exchanged on a path that accepts the same raw CI token
   * again (flakehub-push, magic-nix-cache); null for one-time logins. Only that exact token may
   * be presented again, and only on such paths.
   */
  reusable_sha256?: string | null;
}

/** UUIDv7 names handed to FlakeHub's clients (org/uuid-v7.ts), for the reverse lookup. */
export interface PeerIdsTable {
  kind: 'org';
  local_id: string;
  uuid: string;
}

export interface FlakesTable {
  id: string;
  org_id: string;
  name: string;
  source_binding: string | null;
  visibility: 'public' | 'unlisted' | 'private';
  description: string | null;
  /** JSON array. */
  labels: string;
  created_at: string;
  updated_at: string;
}

export interface ReleasesTable {
  id: string;
  flake_id: string;
  version: string;
  version_key: string;
  /** versionSortKey(version); null only for rows an older replica wrote during an upgrade. */
  version_sort: string | null;
  revision: string | null;
  commit_count: number | null;
  nar_hash: string;
  last_modified: number;
  tarball_key: string;
  tarball_size: number;
  /** JSON: description, readme, spdx, labels, outputs inventory, ... */
  metadata: string;
  published_by: string;
  yanked_at: string | null;
  created_at: string;
}

/**
 * A release's source tree as a NAR (`nars.nar_hash`, nix32), under the store path Nix computes
 * for a locked tarball input: makeFixedOutputPath(recursive sha256, "source"), no references.
 */
export interface ReleaseSourcesTable {
  release_id: string;
  hash_part: string;
  /** `<hash part>-source`. */
  store_path: string;
  nar_hash: string;
  nar_size: number;
  created_at: string;
}

/** flakehub-push's staged uploads: stage, PUT the tarball, publish. */
export interface ReleaseUploadsTable {
  id: string;
  org_id: string;
  flake: string;
  version: string;
  size: number;
  sha256: string;
  metadata: string;
  tarball_key: string | null;
  created_by: string;
  expires_at: string;
}

/** An upstream binary cache the server mirrors verified paths from (server-wide, admin-managed). */
export interface UpstreamsTable {
  id: string;
  name: string;
  url: string;
  /** Space-separated `name:base64` keys. */
  public_keys: string;
  /** 1 = fill the cache from this upstream on a narinfo miss. */
  pull_through: number;
  /** Lower is asked first. */
  priority: number;
  created_at: string;
}

/** Named GC roots of an org: a store path kept (with its closure) in every slice of the org holding it. */
export interface PinsTable {
  org_id: string;
  name: string;
  store_path: string;
  hash_part: string;
  expires_at: string | null;
  created_by: string;
  created_at: string;
}

export interface OrgSettingsTable {
  org_id: string;
  retention_seconds: number | null;
  quota_bytes: number | null;
  updated_at: string;
}

/** A daily snapshot of an org's storage (upserted by the server once a day and after every GC run). */
export interface UsageHistoryTable {
  /** YYYY-MM-DD (UTC). */
  day: string;
  org_id: string;
  /** Sum of NarSize over the org's paths. */
  logical_bytes: number;
  /** Deduplicated stored (zstd) bytes of the distinct NARs the org uses. */
  stored_bytes: number;
  paths: number;
  updated_at: string;
}

export interface Schema {
  upstreams: UpstreamsTable;
  pins: PinsTable;
  org_settings: OrgSettingsTable;
  flakes: FlakesTable;
  releases: ReleasesTable;
  release_uploads: ReleaseUploadsTable;
  release_sources: ReleaseSourcesTable;
  identity_trusts: IdentityTrustsTable;
  used_token_ids: UsedTokenIdsTable;
  orgs: OrgsTable;
  slices: SlicesTable;
  tokens: TokensTable;
  server_keys: ServerKeysTable;
  nars: NarsTable;
  nar_uploads: NarUploadsTable;
  paths: PathsTable;
  org_policies: OrgPoliciesTable;
  audit_log: AuditLogTable;
  read_summary: ReadSummaryTable;
  org_signers: OrgSignersTable;
  usage_history: UsageHistoryTable;
  org_follows: OrgFollowsTable;
  slice_trusts: SliceTrustsTable;
  org_keys: OrgKeysTable;
  realisations: RealisationsTable;
  build_logs: BuildLogsTable;
  debuginfo: DebugInfoTable;
  peer_ids: PeerIdsTable;
}
