/**
 * Batch uploads declaring a small NAR (under 256 KiB) queue for slots of their own, four times as
 * many as large ones get: many small paths upload at once, without taking the slots large uploads
 * wait for. What such an upload may cost stays bounded by what it declared, its body included.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { decompress } from 'zstd-napi';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type FakePath, fakePath } from '../helpers/paths.js';
import { RawConnection, batchUpload } from '../helpers/faults.js';

const metaLine = (p: FakePath, narSize = p.narSize) =>
  JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize, references: [] }) + '\n';

/** Resolves with the status, or 0 if there is no answer within `ms`. */
const within = (ms: number, upload: Promise<{ status: number }>) =>
  Promise.race([upload.then((r) => r.status), new Promise<number>((r) => setTimeout(() => r(0), ms).unref())]);

describe('small uploads', () => {
  let server: TestServer;
  let token: string;
  const open: RawConnection[] = [];

  beforeAll(async () => {
    // One slot per token and per org for large uploads: small ones get four of each.
    server = await startFloe({
      env: { FLOE_INGEST_SLOTS_PER_ORG: '1', FLOE_INGEST_SLOTS_PER_TOKEN: '1', FLOE_BODY_IDLE_SECONDS: '60' },
    });
    await createOrg(server, 'acme');
    token = (await createToken(server, 'acme', ['read', 'write'])).token;
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await server?.cleanup();
  });

  /** An upload that sends its path info and the first bytes of its NAR, then waits. */
  const stall = async (p: FakePath) => {
    const meta = metaLine(p);
    const conn = new RawConnection(server.port);
    open.push(conn);
    await conn.write(
      `PUT /api/v1/cache/paths HTTP/1.1\r\nHost: floe\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${meta.length + p.nar.length}\r\n\r\n${meta}`,
    );
    await conn.write(p.nar.subarray(0, 100));
    return conn;
  };

  it('run several at once for one token, while its large uploads keep their own slot', async () => {
    const small = (name: string) => fakePath(name, { type: 'regular', contents: randomBytes(10 << 10) });
    // Three stalled small uploads hold three of the token's four small slots.
    for (const i of [1, 2, 3]) await stall(small(`stalled-small-${i}`));
    await new Promise((r) => setTimeout(r, 300));
    // With one slot shared by all uploads, each of these would wait a minute for the stalled ones.
    expect(await within(10_000, batchUpload(server, token, small('fourth-small')))).toBe(201);
    const large = fakePath('large', { type: 'regular', contents: randomBytes(1 << 20) });
    expect(await within(10_000, batchUpload(server, token, large))).toBe(201);
    // A stalled large upload holds the one large slot; small ones still go.
    await stall(fakePath('stalled-large', { type: 'regular', contents: randomBytes(1 << 20) }));
    await new Promise((r) => setTimeout(r, 300));
    expect(await within(10_000, batchUpload(server, token, small('fifth-small')))).toBe(201);
  }, 60_000);

  it('a body much larger than the small NAR it declares is refused, and nothing is stored', async () => {
    const p = fakePath('padded', { type: 'regular', contents: randomBytes(1000) });
    // Valid zstd that decodes to exactly this NAR: a frame of 240,000 empty raw blocks, then the
    // NAR as one raw block. 700 KiB read (and stored as sent) for a 1 KiB path.
    const empty = Buffer.alloc(3 * 240_000);
    const last = Buffer.alloc(3);
    last.writeUIntLE((p.nar.length << 3) | 1, 0, 3);
    const zstd = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x08]), empty, last, p.nar]);
    const send = (body: Buffer) =>
      fetch(`${server.url}/api/v1/cache/paths`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${token}`, 'X-Floe-Compression': 'zstd' },
        body: new Uint8Array(Buffer.concat([Buffer.from(metaLine(p)), body])),
      });
    const res = await send(zstd);
    expect(res.status).toBe(413);
    expect(await res.text()).toMatch(/larger than the limit of \d+ bytes/);
    const narinfo = () =>
      fetch(`${server.url}/cache/${p.hashPart}.narinfo`, { headers: { Authorization: `Bearer ${token}` } });
    expect((await narinfo()).status).toBe(404);
    // The same NAR in a body of a sensible size is taken.
    expect((await send(p.nar)).status).toBe(201);
    expect((await narinfo()).status).toBe(200);
  });

  it('small uncompressed NARs, verified without a thread, get every check of the streaming verification', async () => {
    const upload = (p: FakePath, body: Buffer, narSize = p.narSize, narHash = p.narHash) =>
      fetch(`${server.url}/api/v1/cache/paths`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${token}` },
        body: new Uint8Array(
          Buffer.concat([
            Buffer.from(JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash, narSize, references: [] }) + '\n'),
            body,
          ]),
        ),
      });
    const narinfo = (p: FakePath) =>
      fetch(`${server.url}/cache/${p.hashPart}.narinfo`, { headers: { Authorization: `Bearer ${token}` } });
    const refused = async (res: Response, status: number, message: RegExp, p: FakePath) => {
      expect(res.status).toBe(status);
      expect(await res.text()).toMatch(message);
      expect((await narinfo(p)).status).toBe(404);
    };

    const spool = () => readdir(path.join(server.dataDir, 'tmp'));
    const spooled = (await spool()).length; // the stalled uploads' of the tests above
    const bad = fakePath('bad-structure');
    const broken = Buffer.from(bad.nar);
    broken.write('regulax', broken.indexOf('regular'), 'latin1');
    await refused(await upload(bad, broken), 400, /unknown node type .*regulax/, bad);
    const truncated = fakePath('truncated');
    await refused(await upload(truncated, truncated.nar.subarray(0, -8)), 400, /truncated archive/, truncated);
    const longer = fakePath('longer');
    const padded = Buffer.concat([longer.nar, Buffer.alloc(8)]);
    await refused(await upload(longer, padded), 400, /larger than the declared \d+ bytes/, longer);
    const other = fakePath('other-hash');
    await refused(
      await upload(other, other.nar, other.narSize, fakePath('x').narHash),
      400,
      /narHash: mismatch/,
      other,
    );

    const good = fakePath('good', { type: 'regular', contents: randomBytes(20_000) });
    expect((await upload(good, good.nar)).status).toBe(201);
    const text = await (await narinfo(good)).text();
    expect(text).toContain(`NarHash: ${good.narHash}`);
    const file = await fetch(`${server.url}/cache/${/^URL: (.*)$/m.exec(text)![1]!}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const stored = Buffer.from(await file.arrayBuffer());
    expect(text).toContain(`FileHash: sha256:${encodeNix32(createHash('sha256').update(stored).digest())}`);
    expect(text).toContain(`FileSize: ${stored.length}`);
    expect(decompress(stored).equals(good.nar)).toBe(true);
    // Refused uploads leave no spool file behind.
    expect((await spool()).length).toBe(spooled);
  });
});
