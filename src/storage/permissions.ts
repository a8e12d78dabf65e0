/**
 * The data directory holds the database with the server's private keys (JWT signing, Nix
 * signing) and every NAR of every private slice: only the server's own user may read it. A
 * directory made beforehand by a package, a volume or systemd's `StateDirectory=` is often 0755,
 * and files created under a 022 umask are 0644: any local user could mint a server-admin token.
 *
 * Floe creates what it owns 0700 (directories) and 0600 (files), and at start tightens what it
 * finds more open, reporting each fix (something may have been read already) and what it could
 * not fix (not its own).
 */
import { chmod, mkdir, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

export interface PermissionFinding {
  path: string;
  /** The mode found, as octal text (`0755`). */
  was: string;
  /** Tightened to 0700/0600, or left as it is (owned by another user, or chmod refused). */
  fixed: boolean;
}

/** Every path under the data directory that Floe owns, with what it is. */
function knownPaths(dataDir: string): Array<{ path: string; dir: boolean }> {
  const sqlite = path.join(dataDir, 'floe.sqlite');
  return [
    { path: dataDir, dir: true },
    { path: path.join(dataDir, 'blobs'), dir: true },
    { path: path.join(dataDir, 'tmp'), dir: true },
    { path: path.join(dataDir, 's3-spool'), dir: true },
    { path: sqlite, dir: false },
    { path: `${sqlite}-wal`, dir: false },
    { path: `${sqlite}-shm`, dir: false },
    { path: path.join(dataDir, 'admin-token'), dir: false },
  ];
}

/**
 * Creates the data directory 0700 if missing, and makes it and what Floe keeps in it (database
 * files, blob directories and their fan-out) private to this user. Call before opening storage:
 * a private data directory closes everything below it at once.
 */
export async function restrictDataDir(dataDir: string): Promise<PermissionFinding[]> {
  await mkdir(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const findings: PermissionFinding[] = [];
  const candidates = knownPaths(dataDir);
  const fanOut = await readdir(path.join(dataDir, 'blobs'), { withFileTypes: true }).catch(() => []);
  for (const d of fanOut)
    if (d.isDirectory()) candidates.push({ path: path.join(dataDir, 'blobs', d.name), dir: true });
  for (const c of candidates) {
    const found = await restrict(c.path, c.dir ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE);
    if (found) findings.push(found);
  }
  return findings;
}

/** Group/world bits cleared on one path, if it exists and has any. */
async function restrict(p: string, mode: number): Promise<PermissionFinding | undefined> {
  const st = await stat(p).catch(() => undefined);
  if (!st || (st.mode & 0o077) === 0) return undefined;
  const was = `0${(st.mode & 0o777).toString(8)}`;
  const uid = process.getuid?.();
  if (uid !== undefined && uid !== 0 && st.uid !== uid) return { path: p, was, fixed: false };
  try {
    await chmod(p, mode);
    return { path: p, was, fixed: true };
  } catch {
    return { path: p, was, fixed: false };
  }
}
