/**
 * The zstd loop (verify-zstd.ts) through NarVerification, on real files: any chunking gives the
 * same verified bytes and the same stored file (the upload as sent); writes issued back to back
 * are taken in order; decoding stops at the first piece past the allowed size; an abort stops a
 * chunk that decodes to much at its next slice; truncated and skippable-frame streams are refused.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress } from 'zstd-napi';
import { serializeNar } from '../nix/nar.js';
import { NarVerification, type VerifyParams } from './verify-stream.js';

let dir: string;
let n = 0;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'floe-verify-zstd-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function params(extra: Partial<VerifyParams> = {}): Promise<VerifyParams> {
  const file = path.join(dir, `spool-${n++}`);
  await writeFile(file, '');
  return { compression: 'zstd', maxNarBytes: 1 << 30, file, syncFile: false, ...extra };
}

/** Writes every chunk without waiting (as a verifier thread does), then ends. */
async function run(v: NarVerification, body: Buffer, chunk: number) {
  const writes: Array<Promise<void>> = [];
  for (let o = 0; o < body.length; o += chunk) {
    const write = v.write(Buffer.from(body.subarray(o, o + chunk)));
    write.catch(() => undefined); // a failure is the result's
    writes.push(write);
  }
  const result = await v.end();
  await Promise.all(writes);
  return result;
}

describe('NarVerification of zstd uploads (stored as sent)', () => {
  // Several files, in two frames back to back (as a multi-threaded zstd writes them).
  const nar = serializeNar({
    type: 'directory',
    entries: {
      a: { type: 'regular', contents: randomBytes(200_000) },
      b: { type: 'regular', contents: Buffer.alloc(300_000, 7), executable: true },
      c: { type: 'symlink', target: 'a' },
    },
  });
  const body = Buffer.concat([compress(nar.subarray(0, 250_000)), compress(nar.subarray(250_000))]);

  it('gives the same result, and stores the upload byte for byte, whatever the chunking', async () => {
    for (const chunk of [1, 7, 4096, 65_536, body.length]) {
      const p = await params();
      const r = await run(new NarVerification(p), body, chunk);
      expect(Buffer.from(r.narHash).toString('hex'), `chunk ${chunk}`).toBe(sha(nar));
      expect(r.narSize).toBe(nar.length);
      expect(r.fileSize).toBe(body.length);
      expect(Buffer.from(r.fileHash).toString('hex')).toBe(sha(body));
      expect((await readFile(p.file)).equals(body)).toBe(true);
    }
  });

  it('stops decoding at the first piece past the declared NarSize', async () => {
    const zeros = compress(serializeNar({ type: 'regular', contents: Buffer.alloc(64 << 20) }));
    let decoded = 0;
    const v = new NarVerification(await params({ declaredNarSize: 1 << 20 }), (piece) => (decoded += piece.length));
    await expect(run(v, zeros, zeros.length)).rejects.toThrow(/larger than the declared 1048576 bytes/);
    // One piece (at most zstd's output block, 128 KiB) past the bound, not 64 MiB.
    expect(decoded).toBeLessThanOrEqual((1 << 20) + (256 << 10));
  });

  it('an abort stops a chunk that decodes to much at its next slice', async () => {
    const zeros = compress(serializeNar({ type: 'regular', contents: Buffer.alloc(128 << 20) }));
    let decoded = 0;
    const v = new NarVerification(await params(), (piece) => (decoded += piece.length));
    const write = v.write(zeros);
    setImmediate(() => v.abort(new Error('client went away')));
    await expect(write).rejects.toThrow(/client went away/);
    await expect(v.result).rejects.toThrow(/client went away/);
    expect(decoded).toBeLessThan(64 << 20);
  });

  it('refuses a stream that ends inside a frame, or holds a skippable frame', async () => {
    const cut = new NarVerification(await params());
    await expect(run(cut, body.subarray(0, body.length - 100), 4096)).rejects.toThrow(/middle of a frame/);
    const skippable = Buffer.alloc(8 + 16);
    skippable.writeUInt32LE(0x184d2a50, 0);
    skippable.writeUInt32LE(16, 4);
    const hidden = new NarVerification(await params());
    await expect(run(hidden, Buffer.concat([body, skippable]), 65_536)).rejects.toThrow(/skippable/);
  });

  it('refuses bytes that are not zstd as undecodable, and a bad NAR inside as such', async () => {
    // A well-formed frame header, then compressed blocks with bytes overwritten in the middle.
    const garbage = compress(serializeNar({ type: 'regular', contents: Buffer.from('ab'.repeat(50_000) + 'cd') }));
    garbage.fill(0xff, 20, 60);
    await expect(run(new NarVerification(await params()), garbage, 4096)).rejects.toThrow(
      /could not decompress the body as zstd/,
    );
    const notNar = compress(Buffer.from('this is not a NAR at all, but long enough to parse'));
    await expect(run(new NarVerification(await params()), notNar, 4096)).rejects.toThrow(/NAR/);
  });
});
