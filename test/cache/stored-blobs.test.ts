/**
 * What a NAR upload stores (src/cache/verify-stream.ts), on verifier threads and on the event loop
 * (FLOE_VERIFY_THREADS=0): a zstd upload is stored as sent once its decoded NAR was verified, so
 * the served FileHash/FileSize are those of the uploaded bytes and a GET returns them unchanged;
 * any other compression is recompressed to zstd, and the served FileHash/FileSize describe the
 * bytes served. A zstd body that is more than a valid stream of the NAR is refused, nothing kept.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress, decompress } from 'zstd-napi';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { type FakePath, fakePath, nixStyleUpload } from '../helpers/paths.js';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';

const sha = (b: Buffer) => `sha256:${encodeNix32(createHash('sha256').update(b).digest())}`;
const field = (text: string, name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1];

/** Half text (compressible), half random: a stream whose size depends on who compressed it. */
function mixedPath(name: string): FakePath {
  const text = Buffer.from('all work and no play makes a dull store path\n'.repeat(40_000));
  return fakePath(name, { type: 'regular', contents: Buffer.concat([text, randomBytes(1 << 20)]) });
}

describe.each([
  ['verifier threads', {}],
  ['the event loop', { FLOE_VERIFY_THREADS: '0' }],
])('stored NAR blobs, verified on %s', (_label, env) => {
  let server: TestServer;
  let auth: string;
  const cache = () => `${server.url}/cache/acme/default`;
  const get = (url: string) => fetch(`${server.url}/cache/${url}`, { headers: { Authorization: auth } });

  beforeAll(async () => {
    server = await startFloe({ env });
    await createOrg(server, 'acme');
    auth = basicAuth((await createToken(server, 'acme', ['read', 'write'])).token);
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('stores a zstd upload as sent: FileHash and FileSize are the upload’s, the NAR file is served unchanged', async () => {
    const p = mixedPath('as-sent');
    // Two frames at level 19: nothing Floe's level 3 would make, so a recompression would show.
    const half = p.nar.length >> 1;
    const body = Buffer.concat([
      compress(p.nar.subarray(0, half), { compressionLevel: 19 }),
      compress(p.nar.subarray(half), { compressionLevel: 19 }),
    ]);
    const fileName = `${encodeNix32(createHash('sha256').update(body).digest())}.nar.zst`;
    const up = await nixStyleUpload(cache(), auth, p, { fileName, body });
    expect([up.nar, up.narinfo]).toEqual([201, 201]);

    const info = await (await get(`${p.hashPart}.narinfo`)).text();
    expect(field(info, 'NarHash')).toBe(p.narHash);
    expect(field(info, 'Compression')).toBe('zstd');
    expect(field(info, 'FileSize')).toBe(String(body.length));
    expect(field(info, 'FileHash')).toBe(sha(body));
    const served = Buffer.from(await (await get(field(info, 'URL')!)).arrayBuffer());
    expect(served.equals(body)).toBe(true);
  });

  it('recompresses an upload in another compression, and describes the bytes it serves', async () => {
    for (const [ext, body] of [
      ['nar', (p: FakePath) => p.nar],
      ['nar.xz', undefined],
    ] as const) {
      const p = mixedPath(`recompressed-${ext.replace('.', '-')}`);
      let sent = body?.(p);
      if (!sent) {
        const { compressParts } = await import('../helpers/paths.js');
        sent = await compressParts('xz', [p.nar]);
      }
      const fileName = `${encodeNix32(randomBytes(32))}.${ext}`;
      const up = await nixStyleUpload(cache(), auth, p, { fileName, body: sent });
      expect([up.nar, up.narinfo]).toEqual([201, 201]);
      const info = await (await get(`${p.hashPart}.narinfo`)).text();
      const served = Buffer.from(await (await get(field(info, 'URL')!)).arrayBuffer());
      expect(served.readUInt32LE(0)).toBe(0xfd2fb528); // zstd
      expect(decompress(served).equals(p.nar)).toBe(true);
      expect(field(info, 'FileSize')).toBe(String(served.length));
      expect(field(info, 'FileHash')).toBe(sha(served));
    }
  });

  it('refuses a zstd body with bytes after its last frame, and stores nothing', async () => {
    const p = mixedPath('trailing');
    const body = Buffer.concat([compress(p.nar), Buffer.from('not a zstd frame, appended to a valid one')]);
    const up = await nixStyleUpload(cache(), auth, p, { fileName: `${encodeNix32(randomBytes(32))}.nar.zst`, body });
    expect(up.nar).toBe(400);
    // Found by the frame walker (zstd-frames.ts) before the decoder reaches it.
    expect(up.narText).toMatch(/holds something other than zstd frames after 1/);
    expect(up.narinfo).toBe(400); // no NAR was uploaded under that name
    expect((await get(`${p.hashPart}.narinfo`)).status).toBe(404);
  });
});
