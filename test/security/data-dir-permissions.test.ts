/**
 * The data directory is private to the user running floe: it holds the database with the
 * server's private keys and every private NAR. Found in a security review: when the directory
 * already existed (made by a package, a volume or systemd's StateDirectory=, mode 0755), the
 * SQLite file was 0644 and any local user could read the signing keys and mint a server-admin token.
 */
import { chmod, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';

const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

/** Every file and directory under `dir` that is open to group or others, with its mode. */
async function openToOthers(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (p: string) => {
    const m = await modeOf(p);
    if (m & 0o077) found.push(`${path.relative(dir, p) || '.'} ${m.toString(8)}`);
    if ((await stat(p)).isDirectory()) for (const e of await readdir(p)) await walk(path.join(p, e));
  };
  await walk(dir);
  return found;
}

let root: string;
let previousUmask: number;

beforeAll(async () => {
  // The usual umask of packages and services: what makes files 0644 unless Floe says otherwise.
  previousUmask = process.umask(0o022);
  root = await mkdtemp(path.join(os.tmpdir(), 'floe-perms-'));
});
afterAll(async () => {
  process.umask(previousUmask);
  await rm(root, { recursive: true, force: true });
});

describe('data directory permissions', () => {
  let server: TestServer | undefined;
  afterAll(async () => {
    await server?.cleanup();
  });

  it('a pre-existing 0755 data directory is made 0700, and everything floe creates in it is private', async () => {
    const dataDir = path.join(root, 'state');
    await mkdir(dataDir, { mode: 0o755 });
    await chmod(dataDir, 0o755);
    server = await startFloe({ dataDir });
    await createOrg(server, 'acme');
    const writer = (await createToken(server, 'acme', ['read', 'write'])).token;
    expect((await nixStyleUpload(`${server.url}/cache`, basicAuth(writer), fakePath('private-thing'))).narinfo).toBe(
      201,
    );

    expect(await modeOf(dataDir)).toBe(0o700);
    for (const f of ['floe.sqlite', 'floe.sqlite-wal', 'floe.sqlite-shm', 'admin-token'])
      expect(await modeOf(path.join(dataDir, f)), f).toBe(0o600);
    for (const d of ['blobs', 'tmp']) expect(await modeOf(path.join(dataDir, d)), d).toBe(0o700);
    const blobs = await readdir(path.join(dataDir, 'blobs'));
    expect(blobs.length).toBeGreaterThan(0); // the NAR was stored, in a fan-out directory
    expect(await openToOthers(dataDir)).toEqual([]);
    expect(server.logs()).toMatch(new RegExp(`"path":"${dataDir}","mode":"0755","fixed":true`));
  });

  it('an install whose files are already open (an older floe, a copied backup) is tightened at start, with a warning for each', async () => {
    const dataDir = server!.dataDir;
    await server!.stop();
    const loosened = ['floe.sqlite', 'admin-token'];
    for (const f of loosened) await chmod(path.join(dataDir, f), 0o644);
    const blobDirs = await readdir(path.join(dataDir, 'blobs'));
    for (const d of ['', 'blobs', ...blobDirs.map((b) => path.join('blobs', b))])
      await chmod(path.join(dataDir, d), 0o755);
    expect((await openToOthers(dataDir)).length).toBeGreaterThanOrEqual(4);

    await server!.restart();
    expect(await openToOthers(dataDir)).toEqual([]);
    for (const f of loosened)
      expect(server!.logs()).toMatch(new RegExp(`"path":"${path.join(dataDir, f)}","mode":"0644","fixed":true`));
    expect(server!.logs()).toMatch(
      new RegExp(`"path":"${path.join(dataDir, 'blobs', blobDirs[0]!)}","mode":"0755","fixed":true`),
    );
    // Still the same server: its keys and data survived the tightening.
    const res = await fetch(`${server!.url}/api/v1/orgs/acme`, {
      headers: { Authorization: `Bearer ${server!.adminToken}` },
    });
    expect(res.status).toBe(200);
  });

  it('a fresh data directory is created 0700', async () => {
    const dataDir = path.join(root, 'fresh', 'nested');
    const fresh = await startFloe({ dataDir });
    try {
      expect(await modeOf(dataDir)).toBe(0o700);
      expect(await openToOthers(dataDir)).toEqual([]);
      expect(fresh.logs()).not.toMatch(/open to other local users/);
    } finally {
      await fresh.cleanup();
    }
  });
});
