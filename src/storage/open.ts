/** The only place that chooses storage backends (the composition root calls it). */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { PRIVATE_DIR_MODE } from './permissions.js';
import type { Kysely } from 'kysely';
import { FsBlobStore } from './blob/fs.js';
import { S3BlobStore, type S3BlobConfig } from './blob/s3.js';
import { type MigrationStatus, knownMigrations, migrateToLatest, migrationStatus } from './sql/migrations.js';
import { existsSync } from 'node:fs';
import { type FeedEvents, PgChangeFeed, openPostgres, redactUrl } from './sql/postgres.js';
import cluster from 'node:cluster';
import { type ChangeFeed, LocalChangeFeed } from './changes.js';
import { ClusterChangeFeed, WorkersAndReplicasFeed } from './cluster-changes.js';
import type { Schema } from './sql/schema.js';
import { openSqlite } from './sql/sqlite.js';
import type { BlobStore, Storage } from './types.js';

export interface StorageConfig {
  dataDir: string;
  /** postgres://… ; undefined = embedded SQLite in dataDir. */
  databaseUrl?: string;
  /** S3 settings; undefined = files in dataDir. */
  s3?: Omit<S3BlobConfig, 'spoolDir'>;
  /** What the PostgreSQL change feed reports (its connection's failures, replicas that did not answer). */
  feedEvents?: FeedEvents;
}

export async function openStorage(config: StorageConfig): Promise<Storage> {
  await mkdir(config.dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  let db: Kysely<Schema>;
  let dbDescription: string;
  if (config.databaseUrl) {
    db = await openPostgres(config.databaseUrl);
    dbDescription = `PostgreSQL ${redactUrl(config.databaseUrl)}`;
  } else {
    db = openSqlite(path.join(config.dataDir, 'floe.sqlite')).db;
    dbDescription = `SQLite ${path.join(config.dataDir, 'floe.sqlite')}`;
  }
  // Workers of one `floe serve --workers N` on SQLite hear each other through the primary.
  let changes: ChangeFeed = cluster.isWorker && !config.databaseUrl ? new ClusterChangeFeed() : new LocalChangeFeed();
  let blobs: BlobStore & { close?: () => void };
  let blobDescription: string;
  try {
    await migrateToLatest(db);
    if (config.databaseUrl) {
      const replicas = await PgChangeFeed.open(config.databaseUrl, db, config.feedEvents);
      changes = cluster.isWorker ? new WorkersAndReplicasFeed(replicas) : replicas;
    }
    if (config.s3) {
      blobs = await S3BlobStore.open({ ...config.s3, spoolDir: path.join(config.dataDir, 's3-spool') });
      blobDescription = `S3 bucket ${config.s3.bucket}${config.s3.endpoint ? ` at ${config.s3.endpoint}` : ''}${config.s3.prefix ? ` prefix ${config.s3.prefix}` : ''}`;
    } else {
      blobs = await FsBlobStore.open(config.dataDir);
      blobDescription = `files in ${path.join(config.dataDir, 'blobs')}`;
    }
  } catch (err) {
    await changes.close().catch(() => undefined);
    await db.destroy().catch(() => undefined);
    throw err;
  }
  return {
    db,
    blobs,
    changes,
    dialect: config.databaseUrl ? 'postgres' : 'sqlite',
    description: `${dbDescription}; NARs in ${blobDescription}`,
    async close() {
      blobs.close?.();
      await changes.close();
      await db.destroy();
    },
  };
}

/** The schema's migration status, without migrating (`floe migrate --status`); a missing SQLite database is not created. */
export async function inspectSchema(
  config: Pick<StorageConfig, 'dataDir' | 'databaseUrl'>,
): Promise<MigrationStatus & { description: string }> {
  if (!config.databaseUrl) {
    const file = path.join(config.dataDir, 'floe.sqlite');
    if (!existsSync(file))
      return { applied: [], pending: knownMigrations(), unknown: [], description: `SQLite ${file} (not created yet)` };
    const db = openSqlite(file).db;
    try {
      return { ...(await migrationStatus(db)), description: `SQLite ${file}` };
    } finally {
      await db.destroy();
    }
  }
  const db = await openPostgres(config.databaseUrl);
  try {
    return { ...(await migrationStatus(db)), description: `PostgreSQL ${redactUrl(config.databaseUrl)}` };
  } finally {
    await db.destroy();
  }
}
