/**
 * A zstd upload is stored and served as sent. Skippable frames decode to nothing, so a NAR with one
 * appended verifies, yet its bytes would be what every reader of that NAR hash downloads (later
 * uploaders of the same NAR and other orgs' readers included): extra data riding on someone else's
 * path. The verifier refuses them, over the batch API and Nix's `PUT nar/` alike, and keeps nothing.
 */
import { createHash, randomBytes } from 'node:crypto';
import { zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { serializeNar } from '../../src/nix/nar.js';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath } from '../helpers/paths.js';

let server: TestServer;
let writer: string;

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  writer = (await createToken(server, 'acme', ['read', 'write'])).token;
});
afterAll(async () => {
  await server?.cleanup();
});

function skippableFrame(data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a5a, 0);
  head.writeUInt32LE(data.length, 4);
  return Buffer.concat([head, data]);
}

function upload(path: ReturnType<typeof fakePath>, nar: Buffer, body: Buffer) {
  const meta = {
    storePath: `/nix/store/${path.base}`,
    narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
    narSize: nar.length,
    references: [],
  };
  return fetch(`${server.url}/api/v1/cache/acme/default/paths`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${writer}` },
    body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), body])),
  });
}

const narinfoStatus = async (hashPart: string) =>
  (await fetch(`${server.url}/cache/${hashPart}.narinfo`, { headers: { Authorization: basicAuth(writer) } })).status;

describe('zstd skippable frames in uploads', () => {
  it('batch upload: refused with a message naming the problem, nothing kept; the plain NAR is then accepted', async () => {
    const nar = serializeNar({ type: 'regular', contents: randomBytes(4096) });
    const path = fakePath('hidden');
    const hidden = Buffer.concat([zstdCompressSync(nar), skippableFrame(Buffer.from('smuggled bytes '.repeat(100)))]);
    const refused = await upload(path, nar, hidden);
    const text = await refused.text();
    expect(refused.status, text).toBe(400);
    expect(text).toMatch(/skippable frame/);
    expect(await narinfoStatus(path.hashPart)).toBe(404);

    const plain = zstdCompressSync(nar);
    const accepted = await upload(path, nar, plain);
    expect(accepted.status, await accepted.text()).toBe(201);
    const info = await (
      await fetch(`${server.url}/cache/${path.hashPart}.narinfo`, { headers: { Authorization: basicAuth(writer) } })
    ).text();
    const url = /^URL: (.*)$/m.exec(info)![1]!;
    const served = Buffer.from(
      await (
        await fetch(`${server.url}/cache/${url}`, { headers: { Authorization: basicAuth(writer) } })
      ).arrayBuffer(),
    );
    expect(served.includes(Buffer.from('smuggled'))).toBe(false);
    expect(served.equals(plain)).toBe(true);
  });

  it("Nix's PUT nar/: a skippable frame between two zstd frames is refused", async () => {
    const nar = serializeNar({ type: 'regular', contents: randomBytes(8192) });
    const body = Buffer.concat([
      zstdCompressSync(nar.subarray(0, 4000)),
      skippableFrame(Buffer.from('x')),
      zstdCompressSync(nar.subarray(4000)),
    ]);
    const res = await fetch(`${server.url}/cache/acme/default/nar/${fakePath('nar').hashPart}.nar.zst`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(writer) },
      body: new Uint8Array(body),
    });
    const text = await res.text();
    expect(res.status, text).toBe(400);
    expect(text).toMatch(/skippable frame/);
  });
});
