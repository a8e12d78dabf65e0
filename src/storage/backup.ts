/**
 * Online backup and restore of the embedded backend (SQLite + files in a data directory).
 *
 * The backup runs in its own process beside a serving `floe serve`: SQLite's online backup API
 * copies the database in one step, i.e. inside one read transaction, so the copy is one committed
 * state (WAL: writers go on meanwhile). Blobs are copied *after* that snapshot, and only the ones
 * it references: a NAR row is written after its blob is committed, so every blob the snapshot
 * names exists by then. The one thing that can remove such a blob meanwhile is a garbage
 * collection that deletes the path after the snapshot; the backup then starts over.
 *
 * The manifest (written last: a directory without one is not a backup) lists every file with its
 * size and SHA-256; restore checks each one before the data directory appears.
 */
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { encodeNix32 } from '../nix/nix32.js';
import { blobFile } from './blob/fs.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './permissions.js';

export const MANIFEST = 'floe-backup.json';
const DATABASE = 'floe.sqlite';
/** Plain files of a data directory worth keeping besides the database and blobs. */
const EXTRA_FILES = ['admin-token'];

const fileEntry = z.object({
  path: z.string().min(1),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
});
const manifestSchema = z.object({
  format: z.literal('floe-backup-1'),
  createdAt: z.string(),
  /** Schema migrations the snapshot had run: restore into a Floe that knows them all. */
  migrations: z.array(z.string()),
  counts: z.object({ paths: z.number(), nars: z.number(), releases: z.number(), auditEntries: z.number() }),
  files: z.array(fileEntry),
});
export type BackupManifest = z.infer<typeof manifestSchema>;
type FileEntry = z.infer<typeof fileEntry>;

/** A blob the snapshot references disappeared before it was copied (a GC deleted its path meanwhile). */
class BlobVanished extends Error {}

async function emptyOrMissing(dir: string, what: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw new Error(`${what} ${dir} is a file, not a directory`);
    throw err;
  }
  if (names.length > 0)
    throw new Error(`${what} ${dir} is not empty (${names.length} entries): choose a new or empty directory`);
}

/** Copies `from` to `to` (0600, fsynced), returning its size and SHA-256; `expect` checks it against a known hash. */
async function copyFile(
  from: string,
  to: string,
  expect?: (digest: Buffer) => boolean,
): Promise<{ size: number; sha256: string }> {
  await mkdir(path.dirname(to), { recursive: true, mode: PRIVATE_DIR_MODE });
  const sha = createHash('sha256');
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, done) {
      sha.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(
    createReadStream(from, { highWaterMark: 1 << 20 }),
    tap,
    createWriteStream(to, { flags: 'wx', mode: PRIVATE_FILE_MODE }),
  );
  const fh = await open(to, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  const digest = sha.digest();
  if (expect && !expect(digest)) throw new Error(`${from} does not match its recorded hash (damaged)`);
  return { size, sha256: digest.toString('hex') };
}

async function writeFileAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: PRIVATE_FILE_MODE, flag: 'wx' });
  const fh = await open(tmp, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/** What the snapshot references, read from the copy (never from the live database). */
function snapshotContents(file: string) {
  const db = new Database(file, { fileMustExist: true });
  try {
    // The copy is one self-contained file (no -wal/-shm beside it).
    db.pragma('journal_mode = DELETE');
    const nars = db.prepare('select nar_hash, file_hash from nars').all() as Array<{
      nar_hash: string;
      file_hash: string;
    }>;
    const tarballs = db
      .prepare('select distinct tarball_key from releases where tarball_key is not null')
      .all() as Array<{ tarball_key: string }>;
    const count = (table: string) => (db.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n;
    const migrations = (
      db.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>
    ).map((r) => r.name);
    return {
      nars,
      tarballs: tarballs.map((t) => t.tarball_key),
      migrations,
      counts: {
        paths: count('paths'),
        nars: nars.length,
        releases: count('releases'),
        auditEntries: count('audit_log'),
      },
    };
  } finally {
    db.close();
  }
}

async function backupOnce(dataDir: string, toDir: string, progress: (line: string) => void): Promise<BackupManifest> {
  const dbFile = path.join(toDir, DATABASE);
  const live = new Database(path.join(dataDir, DATABASE), { fileMustExist: true });
  try {
    live.pragma('busy_timeout = 5000');
    // The first step only sizes the copy; then everything in one step, i.e. one read transaction.
    // (Small steps would restart whenever the server commits in between, forever under load.)
    await live.backup(dbFile, { progress: () => 0x7fffffff });
  } finally {
    live.close();
  }
  await chmod(dbFile, PRIVATE_FILE_MODE);
  const snap = snapshotContents(dbFile);
  const files: FileEntry[] = [{ path: DATABASE, ...(await hashFile(dbFile)) }];
  progress(`database: ${snap.counts.paths} paths, ${snap.counts.nars} NARs, ${snap.counts.auditEntries} audit entries`);

  const copyBlob = async (key: string, expect?: (digest: Buffer) => boolean) => {
    const to = blobFile(toDir, key);
    try {
      const copied = await copyFile(blobFile(dataDir, key), to, expect);
      files.push({ path: path.relative(toDir, to), ...copied });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new BlobVanished(key);
      throw err;
    }
  };
  let bytes = 0;
  for (const [i, nar] of snap.nars.entries()) {
    await copyBlob(`${nar.nar_hash}.nar.zst`, (digest) => encodeNix32(digest) === nar.file_hash);
    bytes += files.at(-1)!.size;
    if ((i + 1) % 200 === 0 || i + 1 === snap.nars.length)
      progress(`blobs: ${i + 1}/${snap.nars.length} (${(bytes / 2 ** 20).toFixed(1)} MiB)`);
  }
  // Release tarballs are named by their SHA-256 (tarball-<hex>.tar.gz).
  for (const key of snap.tarballs) await copyBlob(key, (digest) => key.includes(digest.toString('hex')));
  if (snap.tarballs.length) progress(`release tarballs: ${snap.tarballs.length}`);

  for (const name of EXTRA_FILES) {
    const from = path.join(dataDir, name);
    if (
      await stat(from).then(
        () => true,
        () => false,
      )
    )
      files.push({ path: name, ...(await copyFile(from, path.join(toDir, name))) });
  }
  const manifest: BackupManifest = {
    format: 'floe-backup-1',
    createdAt: new Date().toISOString(),
    migrations: snap.migrations,
    counts: snap.counts,
    files,
  };
  await writeFileAtomically(path.join(toDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

async function hashFile(file: string): Promise<{ size: number; sha256: string }> {
  const sha = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    sha.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: sha.digest('hex') };
}

/** `floe backup`: a consistent copy of the embedded data directory `dataDir` (served or not) into the new or empty `toDir`. */
export async function backupDataDir(
  dataDir: string,
  toDir: string,
  progress: (line: string) => void,
): Promise<BackupManifest> {
  const source = path.join(dataDir, DATABASE);
  if (
    !(await stat(source).then(
      (s) => s.isFile(),
      () => false,
    ))
  )
    throw new Error(`no embedded database at ${source}`);
  if (path.resolve(toDir).startsWith(path.resolve(dataDir) + path.sep))
    throw new Error('the backup directory must be outside the data directory');
  await emptyOrMissing(toDir, 'backup directory');
  await mkdir(toDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  // An existing empty directory keeps its mode otherwise: the backup holds the private keys.
  await chmod(toDir, PRIVATE_DIR_MODE);
  for (let attempt = 1; ; attempt++) {
    try {
      return await backupOnce(dataDir, toDir, progress);
    } catch (err) {
      if (!(err instanceof BlobVanished) || attempt === 3) throw err;
      progress(`blob ${err.message} was garbage-collected after the snapshot: starting over`);
      for (const name of await readdir(toDir)) await rm(path.join(toDir, name), { recursive: true, force: true });
    }
  }
}

export async function readManifest(fromDir: string): Promise<BackupManifest> {
  let text: string;
  try {
    text = await readFile(path.join(fromDir, MANIFEST), 'utf8');
  } catch {
    throw new Error(`${fromDir} holds no ${MANIFEST}: not a finished Floe backup`);
  }
  const parsed = manifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new Error(
      `${path.join(fromDir, MANIFEST)} is not a Floe backup manifest: ${parsed.error.issues[0]?.message}`,
    );
  for (const f of parsed.data.files) {
    // A manifest names files inside its own directory only.
    if (path.isAbsolute(f.path) || path.normalize(f.path).split(path.sep).includes('..'))
      throw new Error(`the manifest names a path outside the backup: ${f.path}`);
  }
  return parsed.data;
}

/** `floe restore`: checks every file of the backup against the manifest and makes `dataDir` (new or empty) from it. */
export async function restoreDataDir(
  fromDir: string,
  dataDir: string,
  progress: (line: string) => void,
): Promise<BackupManifest> {
  const manifest = await readManifest(fromDir);
  await emptyOrMissing(dataDir, 'data directory');
  // Built beside the target and renamed into place: a failed restore leaves no half data dir.
  const staging = `${path.resolve(dataDir)}.restoring-${randomBytes(4).toString('hex')}`;
  await mkdir(path.dirname(staging), { recursive: true });
  await mkdir(staging, { mode: PRIVATE_DIR_MODE });
  try {
    for (const [i, f] of manifest.files.entries()) {
      const copied = await copyFile(path.join(fromDir, f.path), path.join(staging, f.path));
      if (copied.size !== f.size || copied.sha256 !== f.sha256)
        throw new Error(`${f.path} in the backup differs from its manifest entry (damaged or changed)`);
      if ((i + 1) % 200 === 0 || i + 1 === manifest.files.length)
        progress(`files: ${i + 1}/${manifest.files.length} checked and copied`);
    }
    const db = new Database(path.join(staging, DATABASE), { readonly: true, fileMustExist: true });
    try {
      const check = db.pragma('integrity_check', { simple: true });
      if (check !== 'ok') throw new Error(`the restored database fails SQLite's integrity check: ${String(check)}`);
    } finally {
      db.close();
    }
    await rmdir(dataDir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rename(staging, dataDir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  progress(
    `restored ${manifest.counts.paths} paths, ${manifest.counts.nars} NARs, ${manifest.counts.auditEntries} audit entries (backup of ${manifest.createdAt})`,
  );
  return manifest;
}
