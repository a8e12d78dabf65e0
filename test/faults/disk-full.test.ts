/**
 * A full disk under the data directory (a real one: a small tmpfs mounted for the test) is the
 * server's problem, not the client's: uploads answer 507 naming the server's storage, nothing is
 * left half-written, reads keep working, /readyz reports the disk, and uploads work again once
 * space is freed.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { countFiles } from '../helpers/backends.js';
import { fakePath, nixStyleUpload, type FakePath } from '../helpers/paths.js';
import { alive, batchUpload } from '../helpers/faults.js';

/** Mounts a 24 MiB tmpfs at `dir`; returns why it could not, or '' when it did. */
function mountSmallDisk(dir: string): string {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'tmpfs', dir], { stdio: 'pipe' });
    return '';
  } catch (err) {
    return String((err as { stderr?: Buffer }).stderr ?? err).trim() || 'mount failed';
  }
}

// Probed once while collecting (mounted and unmounted at once), so that nothing stays mounted
// when the suite is filtered out; the real mount is made by beforeAll and undone by afterAll.
const probeDir = await mkdtemp(path.join(os.tmpdir(), 'floe-full-probe-'));
const mountError = mountSmallDisk(probeDir);
if (!mountError) execFileSync('umount', [probeDir]);
await rm(probeDir, { recursive: true, force: true });
if (mountError) {
  // Without privileges there is no small file system to fill; under CI that must not pass silently.
  if (process.env.CI) throw new Error(`the disk-full test needs to mount a tmpfs (run as root): ${mountError}`);
  console.warn(`skipping the disk-full test: cannot mount a tmpfs (${mountError})`);
}

/** Writes a file until the file system says ENOSPC; returns its path. */
function fillUp(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = openSync(file, 'w');
  try {
    for (const size of [2 ** 20, 4096, 512]) {
      const chunk = Buffer.alloc(size, 1);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

describe.skipIf(Boolean(mountError))('disk full', () => {
  let server: TestServer;
  let rw: string;
  let stored: FakePath;
  let mountPoint = '';
  let mounted = false;

  beforeAll(async () => {
    mountPoint = await mkdtemp(path.join(os.tmpdir(), 'floe-full-'));
    const failed = mountSmallDisk(mountPoint);
    if (failed) throw new Error(`mounting the tmpfs failed: ${failed}`);
    mounted = true;
    server = await startFloe({ dataDir: mountPoint, env: { FLOE_MIN_FREE_BYTES: '4M' } });
    await createOrg(server, 'acme');
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    stored = fakePath('stored');
    expect((await batchUpload(server, rw, stored)).status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await server?.stop('SIGKILL');
    if (mounted) execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    if (mountPoint) {
      await rm(mountPoint, { recursive: true, force: true });
    }
  });

  const get = (p: string) => fetch(`${server.url}${p}`, { headers: { Authorization: basicAuth(rw) } });

  it('answers 507 naming the server’s storage, keeps reads working, and recovers when space is freed', async () => {
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const big = fakePath('big', { type: 'regular', contents: randomBytes(3 * 2 ** 20) });
    const filler = fillUp(mountPoint);

    const batch = await batchUpload(server, rw, big);
    expect(batch.status, batch.text).toBe(507);
    expect(batch.text).toMatch(/server's storage is full/);
    const nix = await nixStyleUpload(`${server.url}/cache`, basicAuth(rw), big);
    expect(nix.nar, nix.narText).toBe(507);
    expect(nix.narText).toMatch(/server's storage is full/);
    // A zstd upload is stored as sent, through its own loop (verify-zstd.ts): the same answer.
    const zst = await nixStyleUpload(`${server.url}/cache`, basicAuth(rw), big, {
      fileName: `${big.hashPart}.nar.zst`,
      body: compress(big.nar),
    });
    expect(zst.nar, zst.narText).toBe(507);
    expect(zst.narText).toMatch(/server's storage is full/);
    // Nothing half-written: no temp file left, no path committed.
    expect(await countFiles(path.join(mountPoint, 'tmp'))).toBe(0);
    expect((await get(`/cache/${big.hashPart}.narinfo`)).status).toBe(404);

    // What is stored stays readable.
    const info = await get(`/cache/${stored.hashPart}.narinfo`);
    expect(info.status).toBe(200);
    const nar = await get(`/cache/${/^URL: (.*)$/m.exec(await info.text())![1]!}`);
    expect(nar.status).toBe(200);
    expect((await nar.arrayBuffer()).byteLength).toBeGreaterThan(0);

    const ready = await fetch(`${server.url}/readyz`);
    const body = (await ready.json()) as { failed: string[]; checks: Array<{ backend: string; error?: string }> };
    expect(ready.status).toBe(503);
    expect(body.failed).toContain('disk');
    expect(body.checks.find((c) => c.backend === 'disk')!.error).toMatch(/MiB free on the data directory/);
    expect(alive(server)).toBe(true);

    await rm(filler);
    const again = await batchUpload(server, rw, big);
    expect(again.status, again.text).toBe(201);
    expect((await get(`/cache/${big.hashPart}.narinfo`)).status).toBe(200);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  }, 60_000);
});
