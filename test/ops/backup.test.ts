/**
 * `floe backup` while a real `floe serve` takes a stream of pushes, then `floe restore` into
 * another directory and a second server on it: every narinfo the restored server answers has its
 * NAR, byte-exact (file hash) and content-exact (NAR hash after decompression), the paths pushed
 * before the backup began are all there, and the audit chain verifies.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decompress } from 'zstd-napi';
import { FLOE_BIN, api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type FakePath, fakePath, nixStyleUpload } from '../helpers/paths.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nix32.js';

const exec = promisify(execFile);
const floe = (args: string[], env: Record<string, string> = {}) =>
  exec(process.execPath, [FLOE_BIN, ...args], {
    env: { ...process.env, FLOE_DATABASE_URL: '', FLOE_S3_BUCKET: '', ...env },
  });

let scratch: string;
let server: TestServer;
let restored: TestServer | undefined;
let rw: string;
// Both servers stand for one installation: tokens name it (their issuer), not the port.
const SAME_URL = { FLOE_PUBLIC_URL: 'http://floe.backup.test' };

beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'floe-backup-'));
  server = await startFloe({ env: SAME_URL });
  await createOrg(server, 'acme');
  rw = (await createToken(server, 'acme', ['read', 'write'])).token;
});

afterAll(async () => {
  await restored?.cleanup();
  await server?.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

async function push(p: FakePath): Promise<void> {
  const r = await nixStyleUpload(`${server.url}/cache`, basicAuth(rw), p);
  if (r.nar !== 201 || r.narinfo !== 201) throw new Error(`push ${p.base}: ${JSON.stringify(r)}`);
}

describe('floe backup and restore of the embedded backend', () => {
  it('backs up while pushes stream in, and the restore serves every backed-up path intact', async () => {
    const before = Array.from({ length: 20 }, (_, i) => fakePath(`before-${i}`));
    for (const p of before) await push(p);

    // Pushes keep coming during the backup (two uploaders), until it is done.
    const during: FakePath[] = [];
    let backupDone = false;
    const uploader = async () => {
      while (!backupDone) {
        const p = fakePath(`during-${during.length}`);
        during.push(p);
        await push(p);
      }
    };
    const uploaders = [uploader(), uploader()];
    const backupDir = path.join(scratch, 'backup');
    const backup = await floe(['backup', '--data-dir', server.dataDir, '--to', backupDir]).finally(
      () => (backupDone = true),
    );
    await Promise.all(uploaders);
    expect(backup.stderr).toMatch(/floe backup: done/);
    expect(during.length).toBeGreaterThan(0);

    const manifest = JSON.parse(await readFile(path.join(backupDir, 'floe-backup.json'), 'utf8'));
    // It holds the server's private keys: private like the data directory.
    expect((await stat(backupDir)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(backupDir, 'floe.sqlite'))).mode & 0o777).toBe(0o600);
    expect(manifest.counts.paths).toBeGreaterThanOrEqual(before.length);
    expect(manifest.files.filter((f: { path: string }) => f.path.startsWith('blobs/'))).toHaveLength(
      manifest.counts.nars,
    );

    const dataDir = path.join(scratch, 'restored');
    const restore = await floe(['restore', '--from', backupDir, '--data-dir', dataDir]);
    expect(restore.stderr).toMatch(/floe restore: done/);
    restored = await startFloe({ dataDir, env: SAME_URL });

    // Tokens issued before the backup stay valid.
    const read = rw;
    let found = 0;
    for (const p of [...before, ...during]) {
      const res = await fetch(`${restored.url}/cache/${p.hashPart}.narinfo`, {
        headers: { Authorization: basicAuth(read) },
      });
      if (before.includes(p)) expect(res.status, `${p.base} was pushed before the backup`).toBe(200);
      if (res.status !== 200) {
        await res.arrayBuffer();
        continue;
      }
      found++;
      const info = parseNarInfo(await res.text());
      const nar = await fetch(`${restored.url}/cache/${info.url}`, { headers: { Authorization: basicAuth(read) } });
      expect(nar.status).toBe(200);
      const file = Buffer.from(await nar.arrayBuffer());
      expect(encodeNix32(createHash('sha256').update(file).digest())).toBe(encodeNix32(info.fileHash!.digest));
      const content = info.compression === 'zstd' ? decompress(file) : file;
      expect(`sha256:${encodeNix32(createHash('sha256').update(content).digest())}`).toBe(p.narHash);
    }
    // The restore holds exactly the snapshot's paths (the org's pushes are all it has).
    expect(found).toBe(manifest.counts.paths);

    const audit = await api<{ ok: boolean; entries: number }>(
      restored,
      restored.adminToken,
      'GET',
      '/api/v1/audit/verify',
    );
    expect(audit.status).toBe(200);
    expect(audit.body.ok).toBe(true);
    expect(audit.body.entries).toBe(manifest.counts.auditEntries);
    // The chain goes on from the restored one.
    await createToken(restored, 'acme', ['read']);
    const after = await api<{ ok: boolean; entries: number }>(
      restored,
      restored.adminToken,
      'GET',
      '/api/v1/audit/verify',
    );
    expect(after.body).toMatchObject({ ok: true, entries: manifest.counts.auditEntries + 1 });
    expect(restored.adminToken).toBe(server.adminToken);
  });

  it('refuses a non-empty target, and a backup whose files were changed', async () => {
    const occupied = path.join(scratch, 'occupied');
    await floe(['restore', '--from', path.join(scratch, 'backup'), '--data-dir', path.join(scratch, 'copy')]);
    const toFull = await floe(['backup', '--data-dir', server.dataDir, '--to', path.join(scratch, 'copy')]).catch(
      (e: { stderr: string; code: number }) => e,
    );
    expect(toFull).toMatchObject({ code: 1, stderr: expect.stringMatching(/is not empty/) });
    const intoFull = await floe([
      'restore',
      '--from',
      path.join(scratch, 'backup'),
      '--data-dir',
      path.join(scratch, 'copy'),
    ]).catch((e: { stderr: string; code: number }) => e);
    expect(intoFull).toMatchObject({ code: 1, stderr: expect.stringMatching(/data directory .* is not empty/) });

    // One flipped byte in one blob: restore names the file and creates nothing.
    const blobs = path.join(scratch, 'backup', 'blobs');
    const fan = (await readdir(blobs))[0]!;
    const blob = path.join(blobs, fan, (await readdir(path.join(blobs, fan)))[0]!);
    const bytes = await readFile(blob);
    bytes[bytes.length - 1]! ^= 1;
    await writeFile(blob, bytes);
    const damaged = await floe(['restore', '--from', path.join(scratch, 'backup'), '--data-dir', occupied]).catch(
      (e: { stderr: string; code: number }) => e,
    );
    expect(damaged).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/blobs\/.* differs from its manifest entry/),
    });
    expect(await readdir(scratch)).not.toContain('occupied');
    expect((await readdir(scratch)).filter((n) => n.includes('.restoring-'))).toEqual([]);

    const notBackup = await floe(['restore', '--from', scratch, '--data-dir', occupied]).catch(
      (e: { stderr: string; code: number }) => e,
    );
    expect(notBackup).toMatchObject({ code: 1, stderr: expect.stringMatching(/not a finished Floe backup/) });
  });
});
