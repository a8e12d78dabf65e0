/**
 * Date-stamped migrations, written with Kysely's schema builder so one list serves every dialect.
 * Never edit a migration after it lands; add a new one. Migrations take `Kysely<any>` (biome.json lets
 * this file): they run against the schema as it was at that date, not today's typed `Database`.
 * Long and growing by design: an append-only list, one entry per schema change.
 */
import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import { parseVersion, versionSortKey } from '../../registry/version.js';

const migrations: Record<string, Migration> = {
  '2026-11-25-001-foundation': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('orgs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('slices')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('public', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('slices_org_name', ['org_id', 'name'])
        .execute();
      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.references('orgs.id'))
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('slices', 'text')
        .addColumn('description', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('revoked_at', 'text')
        .execute();
      await db.schema
        .createTable('server_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('purpose', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('public', 'text', (c) => c.notNull())
        .addColumn('active', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('nars')
        .addColumn('nar_hash', 'text', (c) => c.primaryKey())
        .addColumn('nar_size', 'bigint', (c) => c.notNull())
        .addColumn('file_hash', 'text', (c) => c.notNull())
        .addColumn('file_size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('nar_uploads')
        .addColumn('slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('file_name', 'text', (c) => c.notNull())
        .addColumn('nar_hash', 'text', (c) => c.notNull().references('nars.nar_hash'))
        .addColumn('nar_size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('nar_uploads_pk', ['slice_id', 'file_name'])
        .execute();
      await db.schema
        .createTable('paths')
        .addColumn('slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('hash_part', 'text', (c) => c.notNull())
        .addColumn('store_path', 'text', (c) => c.notNull())
        .addColumn('nar_hash', 'text', (c) => c.notNull().references('nars.nar_hash'))
        .addColumn('nar_size', 'bigint', (c) => c.notNull())
        .addColumn('refs', 'text', (c) => c.notNull())
        .addColumn('deriver', 'text')
        .addColumn('ca', 'text')
        .addColumn('sigs', 'text', (c) => c.notNull())
        .addColumn('narinfo', 'text', (c) => c.notNull())
        .addColumn('uploaded_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('paths_pk', ['slice_id', 'hash_part'])
        .execute();
      await db.schema.createIndex('paths_by_hash').on('paths').column('hash_part').execute();
      await db.schema.createIndex('paths_by_nar').on('paths').column('nar_hash').execute();
      await db.schema.createIndex('tokens_by_org').on('tokens').column('org_id').execute();
      await sql`select 1`.execute(db);
    },
  },
  '2026-11-25-002-federated-identity': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('identity_trusts')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('provider', 'text', (c) => c.notNull())
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('audience', 'text')
        /** JSON: the trust's conditions, scopes, slices and token lifetime (see identity/trust.ts). */
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('identity_trusts_by_issuer').on('identity_trusts').column('issuer').execute();
      await db.schema
        .createTable('used_token_ids')
        .addColumn('issuer', 'text', (c) => c.notNull())
        .addColumn('token_id', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('used_token_ids_pk', ['issuer', 'token_id'])
        .execute();
    },
  },
  '2026-11-25-003-registry': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('flakes')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        /** Who may publish: e.g. `github:<repository_id>`, bound at first publish from a CI identity. */
        .addColumn('source_binding', 'text')
        .addColumn('visibility', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('labels', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('flakes_org_name', ['org_id', 'name'])
        .execute();
      await db.schema
        .createTable('releases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('flake_id', 'text', (c) => c.notNull().references('flakes.id'))
        .addColumn('version', 'text', (c) => c.notNull())
        /** major.minor.patch[-pre]: build metadata does not make a new version. */
        .addColumn('version_key', 'text', (c) => c.notNull())
        .addColumn('revision', 'text')
        .addColumn('commit_count', 'integer')
        .addColumn('nar_hash', 'text', (c) => c.notNull())
        .addColumn('last_modified', 'bigint', (c) => c.notNull())
        .addColumn('tarball_key', 'text', (c) => c.notNull())
        .addColumn('tarball_size', 'bigint', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('published_by', 'text', (c) => c.notNull())
        .addColumn('yanked_at', 'text')
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addUniqueConstraint('releases_flake_version', ['flake_id', 'version_key'])
        .execute();
      await db.schema
        .createTable('release_uploads')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('flake', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('tarball_key', 'text')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .execute();
    },
  },
  '2026-11-29-000-policy-and-audit': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('org_policies')
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('message', 'text')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('org_policies_pk', ['org_id', 'version'])
        .execute();
      // Append-only and hash-chained: hash = sha256(prev_hash + canonical entry); seq is gapless.
      await db.schema
        .createTable('audit_log')
        .addColumn('seq', 'bigint', (c) => c.primaryKey())
        .addColumn('at', 'text', (c) => c.notNull())
        .addColumn('org_id', 'text')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('token_id', 'text')
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('detail', 'text', (c) => c.notNull())
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('audit_log_org_seq').on('audit_log').columns(['org_id', 'seq']).execute();
      // Reads are summarized, not logged one by one: per day, principal and store path.
      await db.schema
        .createTable('read_summary')
        .addColumn('day', 'text', (c) => c.notNull())
        .addColumn('org_id', 'text', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('store_path', 'text', (c) => c.notNull())
        .addColumn('narinfo_hits', 'bigint', (c) => c.notNull())
        .addColumn('nar_downloads', 'bigint', (c) => c.notNull())
        .addColumn('bytes', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('read_summary_pk', ['day', 'org_id', 'actor', 'store_path'])
        .execute();
    },
  },
  '2026-11-29-100-retention': {
    async up(db: Kysely<any>) {
      // Server-wide upstream binary caches the server may mirror paths from (issue 7).
      await db.schema
        .createTable('upstreams')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('url', 'text', (c) => c.notNull())
        /** Space-separated `name:base64` Ed25519 public keys trusted for this upstream. */
        .addColumn('public_keys', 'text', (c) => c.notNull())
        .addColumn('pull_through', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(50))
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('pins')
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('store_path', 'text', (c) => c.notNull())
        .addColumn('hash_part', 'text', (c) => c.notNull())
        .addColumn('expires_at', 'text')
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('pins_pk', ['org_id', 'name'])
        .execute();
      await db.schema
        .createTable('org_settings')
        .addColumn('org_id', 'text', (c) => c.primaryKey().references('orgs.id'))
        /** Paths pushed within this many seconds are GC roots; null = keep every push forever. */
        .addColumn('retention_seconds', 'bigint')
        /** Most deduplicated stored bytes the org may use; null = unlimited. */
        .addColumn('quota_bytes', 'bigint')
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .execute();
      // Last time an upload (re)used this NAR: GC leaves it alone for the grace period after that.
      await db.schema.alterTable('nars').addColumn('touched_at', 'text').execute();
      await db.schema.createIndex('paths_by_slice_created').on('paths').columns(['slice_id', 'created_at']).execute();
      await db.schema.createIndex('nar_uploads_by_nar').on('nar_uploads').column('nar_hash').execute();
    },
  },
  '2026-11-29-200-web': {
    async up(db: Kysely<any>) {
      // When a token was last presented (written at most once a minute per token per replica).
      await db.schema.alterTable('tokens').addColumn('last_used_at', 'text').execute();
    },
  },
  '2026-11-29-400-org-signers': {
    async up(db: Kysely<any>) {
      // Nix signing keys an org trusts: only signatures that verify against one count for policies.
      await db.schema
        .createTable('org_signers')
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        .addColumn('added_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('org_signers_pk', ['org_id', 'name'])
        .execute();
    },
  },
  '2026-11-29-300-usage-history': {
    async up(db: Kysely<any>) {
      // One row per org and UTC day: what the org stored that day (for "storage over time").
      await db.schema
        .createTable('usage_history')
        .addColumn('day', 'text', (c) => c.notNull())
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('logical_bytes', 'bigint', (c) => c.notNull())
        .addColumn('stored_bytes', 'bigint', (c) => c.notNull())
        .addColumn('paths', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('usage_history_pk', ['org_id', 'day'])
        .execute();
    },
  },
  '2026-12-01-100-tenant-integrity': {
    async up(db: Kysely<any>) {
      // Views: which slices a caller's `/cache` consults, in which order. Existing slices stay in
      // their org's view (as before the upgrade); new ones are created outside it.
      await db.schema
        .alterTable('slices')
        .addColumn('in_view', 'integer', (c) => c.notNull().defaultTo(1))
        .execute();
      await db.schema
        .alterTable('slices')
        .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(100))
        .execute();
      await db.schema.alterTable('slices').addColumn('global_priority', 'integer').execute();
      await db.schema
        .createTable('org_follows')
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('org_follows_pk', ['org_id', 'slice_id'])
        .execute();
      await db.schema
        .createTable('slice_trusts')
        .addColumn('slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('trusted_slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('created_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('slice_trusts_pk', ['slice_id', 'trusted_slice_id'])
        .execute();
      // Per-org Nix signing keys (created by the server at start for orgs that have none).
      await db.schema
        .createTable('org_keys')
        .addColumn('org_id', 'text', (c) => c.notNull().references('orgs.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('secret', 'text', (c) => c.notNull())
        .addColumn('public', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addColumn('retired_at', 'text')
        .addPrimaryKeyConstraint('org_keys_pk', ['org_id', 'name'])
        .execute();
      // Identity trusts are exclusive: the subject they claim, and whether an overlap awaits approval.
      await db.schema.alterTable('identity_trusts').addColumn('subject_key', 'text').execute();
      await db.schema
        .alterTable('identity_trusts')
        .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
        .execute();
    },
  },
  '2026-12-01-400-realisations': {
    async up(db) {
      // Realisations of CA derivation outputs (`realisations/<id>.doi`), per slice like paths.
      await db.schema
        .createTable('realisations')
        .addColumn('slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('id', 'text', (c) => c.notNull())
        .addColumn('out_path', 'text', (c) => c.notNull())
        .addColumn('body', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('realisations_pk', ['slice_id', 'id'])
        .execute();
      await db.schema.createIndex('realisations_by_id').on('realisations').column('id').execute();
      await db.schema
        .createIndex('realisations_by_out_path')
        .on('realisations')
        .columns(['slice_id', 'out_path'])
        .execute();
    },
  },
  '2026-12-02-540-peers': {
    async up(db) {
      // Stable UUIDv7 names for FlakeHub's clients (magic-nix-cache's cache name), derived per row.
      await db.schema
        .createTable('peer_ids')
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('local_id', 'text', (c) => c.notNull())
        .addColumn('uuid', 'text', (c) => c.notNull().unique())
        .addPrimaryKeyConstraint('peer_ids_pk', ['kind', 'local_id'])
        .execute();
      // Raw CI tokens presented again (to any replica) on the paths that take them on every call.
      await db.schema.alterTable('used_token_ids').addColumn('reusable_sha256', 'text').execute();
    },
  },
  '2026-12-02-560-build-logs': {
    async up(db) {
      // Build logs (`log/<drv>`), per slice next to the outputs whose Deriver is that drv; the
      // text is a zstd blob (`log-<sha256 of the blob>.log.zst`), shared by identical logs.
      await db.schema
        .createTable('build_logs')
        .addColumn('slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('drv', 'text', (c) => c.notNull())
        .addColumn('blob_key', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('stored_size', 'bigint', (c) => c.notNull())
        .addColumn('uploaded_by', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('build_logs_pk', ['slice_id', 'drv'])
        .execute();
      await db.schema.createIndex('build_logs_by_drv').on('build_logs').column('drv').execute();
      // A log is visible and kept through the outputs naming its drv as Deriver.
      await db.schema.createIndex('paths_by_deriver').on('paths').columns(['slice_id', 'deriver']).execute();
    },
  },
  '2026-12-02-600-release-sort-key': {
    async up(db) {
      // Resolution by index: the best match of a requirement is the highest key in its range. The
      // column stays nullable: a release published by an older replica during a rolling upgrade
      // has none, and resolution reads such rows too (see RegistryService.resolve).
      await db.schema.alterTable('releases').addColumn('version_sort', 'text').execute();
      await db.schema
        .createIndex('releases_by_sort_key')
        .on('releases')
        .columns(['flake_id', 'version_sort'])
        .execute();
      const rows: Array<{ id: string; version: string }> = await db
        .selectFrom('releases')
        .select(['id', 'version'])
        .execute();
      for (const r of rows) {
        const key = versionSortKey(parseVersion(r.version));
        await db.updateTable('releases').set({ version_sort: key }).where('id', '=', r.id).execute();
      }
    },
  },
  '2026-12-02-610-narinfo-fields': {
    async up(db) {
      // Narinfo fields Floe does not interpret (Determinate Nix's `Provenance:`), kept as uploaded
      // and rendered after the fields Nix writes; no signature covers them.
      await db.schema.alterTable('paths').addColumn('extra_fields', 'text').execute();
    },
  },
  '2026-12-02-611-debuginfo': {
    async up(db) {
      // Debug info index entries per slice: the client's NAR file name, resolved to the served NAR
      // when a narinfo commits it.
      await db.schema
        .createTable('debuginfo')
        .addColumn('slice_id', 'text', (c) => c.notNull().references('slices.id'))
        .addColumn('build_id', 'text', (c) => c.notNull())
        .addColumn('archive_file', 'text', (c) => c.notNull())
        .addColumn('member', 'text', (c) => c.notNull())
        .addColumn('nar_hash', 'text')
        .addColumn('expires_at', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('debuginfo_pk', ['slice_id', 'build_id'])
        .execute();
      await db.schema.createIndex('debuginfo_by_build_id').on('debuginfo').column('build_id').execute();
      const byArchive = db.schema.createIndex('debuginfo_by_archive').on('debuginfo');
      await byArchive.columns(['slice_id', 'archive_file']).execute();
    },
  },
  '2026-12-03-700-release-sources': {
    async up(db) {
      // Each release's source tree as a NAR (a `nars` row and blob), served on /cache under the
      // fixed-output path Nix substitutes a locked `…-source` input from; releases published
      // before this are filled in by the leader after start (registry/sources.ts).
      await db.schema
        .createTable('release_sources')
        .addColumn('release_id', 'text', (c) => c.primaryKey().references('releases.id'))
        .addColumn('hash_part', 'text', (c) => c.notNull())
        .addColumn('store_path', 'text', (c) => c.notNull())
        .addColumn('nar_hash', 'text', (c) => c.notNull())
        .addColumn('nar_size', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('release_sources_by_hash').on('release_sources').column('hash_part').execute();
      await db.schema.createIndex('release_sources_by_nar').on('release_sources').column('nar_hash').execute();
    },
  },
};

class StaticProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export interface MigrationStatus {
  /** Known to this version and already run. */
  applied: string[];
  /** Known to this version, not run yet: `floe serve` runs them at start. */
  pending: string[];
  /** Run by another (newer) Floe, unknown to this version. */
  unknown: string[];
}

export function knownMigrations(): string[] {
  return Object.keys(migrations).sort();
}

/** Which migrations would run, without running any (the database is only read). */
export async function migrationStatus(db: Kysely<any>): Promise<MigrationStatus> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true });
  const executed = tables.some((t) => t.name === 'kysely_migration')
    ? new Set((await db.selectFrom('kysely_migration').select('name').execute()).map((r: { name: string }) => r.name))
    : new Set<string>();
  const known = knownMigrations();
  return {
    applied: known.filter((n) => executed.has(n)),
    pending: known.filter((n) => !executed.has(n)),
    unknown: [...executed].filter((n) => !(n in migrations)).sort(),
  };
}

/** Refuses a database a newer Floe has upgraded: this code cannot know what its migrations changed. */
export class SchemaTooNew extends Error {
  constructor(readonly unknown: string[]) {
    super(
      `the database was upgraded by a newer Floe: it ran migration${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}, ` +
        'which this version does not know. Run the newer version (replicas that are still running keep serving; ' +
        'a restarted one must be the new version), or restore a backup taken before the upgrade.',
    );
  }
}

export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const { unknown } = await migrationStatus(db);
  if (unknown.length) throw new SchemaTooNew(unknown);
  // Branches land in any order (e.g. 2026-11-29-100-retention after 2026-11-29-200-web ran):
  // migrations are independent of each other, so a missing earlier one simply runs.
  const migrator = new Migrator({ db, provider: new StaticProvider(), allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(
      `database migration ${failed?.migrationName ?? ''} failed: ${(error as Error)?.message ?? 'unknown error'}`,
      { cause: error },
    );
  }
}
