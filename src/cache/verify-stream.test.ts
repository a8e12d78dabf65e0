import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { serializeNar } from '../nix/nar.js';

// Counts the early flushes (and lets a test hold one in flight) without changing what they do.
const syncs = vi.hoisted(() => ({ count: 0, hold: undefined as Promise<void> | undefined }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const fdatasync = (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    syncs.count++;
    const run = () => fs.fdatasync(fd, cb);
    if (syncs.hold) void syncs.hold.then(run);
    else run();
  };
  return { ...fs, default: { ...fs, fdatasync }, fdatasync };
});

const { EARLY_SYNC_BYTES, NarVerification } = await import('./verify-stream.js');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'floe-verify-stream-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const nar = serializeNar({ type: 'regular', contents: randomBytes(EARLY_SYNC_BYTES * 2 + 12345) });
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function verify(body: Buffer, compression: 'none' | 'zstd', syncFile: boolean, file: string) {
  await writeFile(file, '');
  const v = new NarVerification({ compression, maxNarBytes: 1 << 30, bodyBytes: body.length, file, syncFile });
  for (let o = 0; o < body.length; o += 64 << 10) await v.write(Buffer.from(body.subarray(o, o + (64 << 10))));
  return v.end();
}

describe('NarVerification: a spool file fsynced as it closes is flushed early', () => {
  for (const compression of ['none', 'zstd'] as const) {
    it(`${compression}: flushed every EARLY_SYNC_BYTES in the background, the file written whole and described exactly`, async () => {
      const body = compression === 'zstd' ? zlib.zstdCompressSync(nar) : nar;
      const file = path.join(dir, `whole-${compression}`);
      syncs.count = 0;
      const r = await verify(body, compression, true, file);
      expect(syncs.count).toBeGreaterThanOrEqual(1);
      expect(syncs.count).toBeLessThanOrEqual(2);
      const stored = await readFile(file);
      expect([stored.length, sha(stored)]).toEqual([r.fileSize, Buffer.from(r.fileHash).toString('hex')]);
      expect(zlib.zstdDecompressSync(stored).equals(nar)).toBe(true);
      expect([r.narSize, Buffer.from(r.narHash).toString('hex')]).toEqual([nar.length, sha(nar)]);
    });
  }

  it('not when the file is not fsynced as it closes (the S3 store only uploads it)', async () => {
    syncs.count = 0;
    await verify(nar, 'none', false, path.join(dir, 'unsynced'));
    expect(syncs.count).toBe(0);
  });

  it('the file is closed only after a flush in flight ends, and an abort while one runs fails cleanly', {
    timeout: 20_000,
  }, async () => {
    let release!: () => void;
    syncs.hold = new Promise<void>((r) => (release = r));
    try {
      const file = path.join(dir, 'held');
      await writeFile(file, '');
      const v = new NarVerification({ compression: 'none', maxNarBytes: 1 << 30, file, syncFile: true });
      let settled = false;
      void v.result.then(
        () => (settled = true),
        () => (settled = true),
      );
      for (let o = 0; o < nar.length; o += 1 << 20) await v.write(Buffer.from(nar.subarray(o, o + (1 << 20))));
      void v.end();
      await new Promise((r) => setTimeout(r, 50));
      expect(settled).toBe(false); // waiting for the flush before it closes
      release();
      const r = await v.result;
      expect(r.narSize).toBe(nar.length);

      syncs.hold = new Promise<void>((r) => (release = r));
      const aborted = new NarVerification({ compression: 'none', maxNarBytes: 1 << 30, file, syncFile: true });
      for (let o = 0; o < EARLY_SYNC_BYTES + (1 << 20); o += 1 << 20)
        await aborted.write(Buffer.from(nar.subarray(o, o + (1 << 20))));
      aborted.abort(new Error('client went away'));
      release();
      await expect(aborted.result).rejects.toThrow('client went away');
    } finally {
      syncs.hold = undefined;
    }
  });
});
