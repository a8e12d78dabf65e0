/**
 * `floe migrate`: moves an embedded installation (SQLite + files) to the scale-out backends
 * (PostgreSQL + S3, or any other pair `openStorage` accepts), then verifies the copy: row counts
 * per table, and every NAR blob re-read from the target and checked against its recorded hash.
 * Run it with the source server stopped. The target must be empty. The source is only read (its
 * schema is brought up to date first, as `floe serve` would).
 */
import { createHash } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { encodeNix32 } from './nix/nix32.js';
import { openStorage, type StorageConfig } from './storage/open.js';
import type { Schema, Storage } from './storage/types.js';

export interface MigrateReport {
  rows: Record<string, number>;
  blobs: number;
  bytes: number;
}

/** Tables in foreign-key order. Upload records are transient proofs of possession and not copied. */
const TABLES = [
  'orgs',
  'org_settings',
  'pins',
  'upstreams',
  'slices',
  'tokens',
  'server_keys',
  'nars',
  'paths',
  'identity_trusts',
  'flakes',
  'releases',
  'release_sources',
  'org_policies',
  'audit_log',
  'read_summary',
  'org_signers',
  'usage_history',
  'org_keys',
  'org_follows',
  'slice_trusts',
  'realisations',
  'build_logs',
  'peer_ids',
  'debuginfo',
] as const satisfies ReadonlyArray<keyof Schema>;
const BATCH = 200;

async function copyBlob(from: Storage, to: Storage, key: string): Promise<void> {
  const read = await from.blobs.get(key);
  if (!read)
    throw new Error(
      `source blob ${key} is missing: the source installation is damaged (run without it or restore it first)`,
    );
  const writer = await to.blobs.begin();
  try {
    read.body.pipe(writer.body);
    await finished(writer.body);
    await writer.commit(key);
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

export async function migrateInstallation(
  source: StorageConfig,
  target: StorageConfig,
  progress: (line: string) => void,
): Promise<MigrateReport> {
  const from = await openStorage(source);
  let to: Storage | undefined;
  try {
    to = await openStorage(target);
    const existing = await to.db.selectFrom('orgs').select('id').limit(1).execute();
    const keys = await to.db.selectFrom('server_keys').select('id').limit(1).execute();
    if (existing.length > 0 || keys.length > 0) {
      throw new Error(`the target (${to.description}) already holds data; migrate into an empty database and bucket`);
    }
    const report: MigrateReport = { rows: {}, blobs: 0, bytes: 0 };

    // Blobs first: a path row is only useful once its NAR is there.
    const nars = await from.db.selectFrom('nars').selectAll().execute();
    for (const nar of nars) {
      await copyBlob(from, to, `${nar.nar_hash}.nar.zst`);
      report.blobs++;
      report.bytes += Number(nar.file_size);
      if (report.blobs % 100 === 0 || report.blobs === nars.length)
        progress(`blobs: ${report.blobs}/${nars.length} (${(report.bytes / 2 ** 20).toFixed(1)} MiB)`);
    }

    // Release tarballs (content-addressed keys, so the copy is checked against its own name).
    const tarballs = await from.db.selectFrom('releases').select('tarball_key').distinct().execute();
    for (const t of tarballs) {
      await copyBlob(from, to, t.tarball_key);
      report.blobs++;
    }
    if (tarballs.length) progress(`release tarballs: ${tarballs.length}`);

    // Build logs (keys carry the SHA-256 of the stored bytes, checked like tarballs).
    const logs = await from.db.selectFrom('build_logs').select('blob_key').distinct().execute();
    for (const l of logs) {
      await copyBlob(from, to, l.blob_key);
      report.blobs++;
    }
    if (logs.length) progress(`build logs: ${logs.length}`);

    await to.db.transaction().execute(async (trx) => {
      for (const table of TABLES) {
        const rows = await from.db.selectFrom(table).selectAll().execute();
        for (let i = 0; i < rows.length; i += BATCH) {
          await trx
            .insertInto(table)
            .values(rows.slice(i, i + BATCH) as never)
            .execute();
        }
        report.rows[table] = rows.length;
        progress(`${table}: ${rows.length} rows`);
      }
    });

    progress('verifying...');
    for (const table of TABLES) {
      const { n } = (await to.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .executeTakeFirstOrThrow()) as { n: number | string };
      if (Number(n) !== report.rows[table])
        throw new Error(
          `verification failed: ${table} has ${n} rows in the target, ${report.rows[table]} in the source`,
        );
    }
    for (const nar of nars) {
      const read = await to.blobs.get(`${nar.nar_hash}.nar.zst`);
      if (!read) throw new Error(`verification failed: blob ${nar.nar_hash} is missing in the target`);
      const sha = createHash('sha256');
      for await (const chunk of read.body) sha.update(chunk as Buffer);
      if (encodeNix32(sha.digest()) !== nar.file_hash)
        throw new Error(`verification failed: blob ${nar.nar_hash} differs in the target`);
    }
    for (const t of tarballs) {
      const read = await to.blobs.get(t.tarball_key);
      if (!read) throw new Error(`verification failed: release tarball ${t.tarball_key} is missing in the target`);
      const sha = createHash('sha256');
      for await (const chunk of read.body) sha.update(chunk as Buffer);
      // Keys are content-addressed: tarball-<sha256>.tar.gz.
      if (!t.tarball_key.includes(sha.digest('hex')))
        throw new Error(`verification failed: release tarball ${t.tarball_key} differs in the target`);
    }
    for (const l of logs) {
      const read = await to.blobs.get(l.blob_key);
      if (!read) throw new Error(`verification failed: build log ${l.blob_key} is missing in the target`);
      const sha = createHash('sha256');
      for await (const chunk of read.body) sha.update(chunk as Buffer);
      if (!l.blob_key.includes(sha.digest('hex')))
        throw new Error(`verification failed: build log ${l.blob_key} differs in the target`);
    }
    progress(`verified: ${TABLES.map((t) => `${report.rows[t]} ${t}`).join(', ')}; ${report.blobs} blobs re-hashed`);
    return report;
  } finally {
    await to?.close();
    await from.close();
  }
}
