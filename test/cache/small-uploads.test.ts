/**
 * Batch uploads declaring a small NAR (under 256 KiB) queue for slots of their own, four times as
 * many as large ones get: many small paths upload at once, without taking the slots large uploads
 * wait for. What such an upload may cost stays bounded by what it declared, its body included.
 */
import { randomBytes } from 'node:crypto';
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
});
