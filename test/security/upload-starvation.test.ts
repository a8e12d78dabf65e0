/**
 * Resource exhaustion through uploads that never finish: one org opens many uploads that send their
 * headers and a few bytes, then nothing. Ingestion slots are shared fairly between orgs (another
 * org's upload completes at once), stalled bodies are answered 408 and closed after
 * FLOE_BODY_IDLE_SECONDS, and one client address cannot hold more than
 * FLOE_MAX_CONNECTIONS_PER_CLIENT connections.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { batchUpload, RawConnection, until } from '../helpers/faults.js';

const IDLE_SECONDS = 4;

describe('stalled uploads', () => {
  let server: TestServer;
  let hog: string;
  let victim: string;
  let crowdA: string;
  let crowdB: string;
  beforeAll(async () => {
    server = await startFloe({
      env: { FLOE_BODY_IDLE_SECONDS: String(IDLE_SECONDS), FLOE_MAX_CONNECTIONS_PER_CLIENT: '40' },
    });
    await createOrg(server, 'hog');
    await createOrg(server, 'victim');
    hog = (await createToken(server, 'hog', ['read', 'write'])).token;
    victim = (await createToken(server, 'victim', ['read', 'write'])).token;
    await createOrg(server, 'crowd');
    crowdA = (await createToken(server, 'crowd', ['read', 'write'])).token;
    crowdB = (await createToken(server, 'crowd', ['read', 'write'])).token;
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  /** An upload that sends its head and the first bytes of a large NAR, then nothing. */
  const stall = async (i: number, token = hog) => {
    const p = fakePath(`stalled-${i}`, { type: 'regular', contents: randomBytes(4 << 20) });
    const conn = new RawConnection(server.port);
    if (i % 2 === 0) {
      await conn.write(
        `PUT /cache/nar/${'1'.repeat(51)}${i % 10}.nar HTTP/1.1\r\nHost: floe\r\nAuthorization: ${basicAuth(token)}\r\nContent-Length: ${p.nar.length}\r\n\r\n`,
      );
    } else {
      const meta =
        JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] }) +
        '\n';
      await conn.write(
        `PUT /api/v1/cache/paths HTTP/1.1\r\nHost: floe\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${meta.length + p.nar.length}\r\n\r\n${meta}`,
      );
    }
    await conn.write(p.nar.subarray(0, 200));
    return conn;
  };

  it("another org's upload completes promptly while one org holds 20 stalled uploads, which get 408 after the idle time", async () => {
    const stalled = await Promise.all(Array.from({ length: 20 }, (_, i) => stall(i)));
    await new Promise((r) => setTimeout(r, 500)); // every stalled upload is in, slots taken or queued
    const started = Date.now();
    const nix = await nixStyleUpload(
      `${server.url}/cache`,
      basicAuth(victim),
      fakePath('victim-nix', { type: 'regular', contents: randomBytes(256 << 10) }),
    );
    const batch = await batchUpload(
      server,
      victim,
      fakePath('victim-batch', { type: 'regular', contents: randomBytes(256 << 10) }),
    );
    const took = Date.now() - started;
    expect([nix.nar, nix.narinfo, batch.status]).toEqual([201, 201, 201]);
    // Well before the stalled ones time out: the victim never waited for them.
    expect(took).toBeLessThan((IDLE_SECONDS * 1000) / 2);

    const answers = await Promise.all(
      stalled.map((c) =>
        c.response(IDLE_SECONDS * 1000 + 10_000).then(
          (r) => r,
          () => undefined,
        ),
      ),
    );
    expect(answers.map((a) => a?.status)).toEqual(Array.from({ length: 20 }, () => 408));
    expect(answers[0]!.body.toString()).toMatch(/no byte received for \d+ s/);
    expect(await until(() => stalled.every((c) => c.isClosed), 5000)).toBe(true);
    // Still serving, and the hog's own uploads work again.
    expect((await batchUpload(server, hog, fakePath('hog-after'))).status).toBe(201);
    expect(server.logs()).not.toMatch(/"level":50/);
  }, 60_000);

  it('a slow upload that keeps sending is not cut, and an upload queued behind stalled ones of its own org still completes', async () => {
    // Sends a 300 KiB body in 30 steps over about 3 s (under the idle time per gap, over the minimum rate).
    const p = fakePath('steady', { type: 'regular', contents: randomBytes(300 << 10) });
    const meta =
      JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] }) +
      '\n';
    const stalled = await Promise.all(Array.from({ length: 6 }, (_, i) => stall(100 + i))); // more than the org's 4 slots
    const conn = new RawConnection(server.port);
    await conn.write(
      `PUT /api/v1/cache/paths HTTP/1.1\r\nHost: floe\r\nAuthorization: Bearer ${hog}\r\nContent-Length: ${meta.length + p.nar.length}\r\n\r\n${meta}`,
    );
    const step = Math.ceil(p.nar.length / 30);
    for (let off = 0; off < p.nar.length; off += step) {
      await conn.write(p.nar.subarray(off, off + step));
      await new Promise((r) => setTimeout(r, 100));
    }
    const res = await conn.response(IDLE_SECONDS * 1000 * 4 + 10_000);
    expect(res.status).toBe(201);
    for (const c of stalled) c.close();
  }, 60_000);

  it("another token of the same org uploads promptly while one token holds 10 stalled uploads (it gets 3 of the org's 4 slots)", async () => {
    const stalled = await Promise.all(Array.from({ length: 10 }, (_, i) => stall(200 + i, crowdA)));
    await new Promise((r) => setTimeout(r, 500)); // every stalled upload is in, slots taken or queued
    const started = Date.now();
    const batch = await batchUpload(
      server,
      crowdB,
      fakePath('crowd-b', { type: 'regular', contents: randomBytes(256 << 10) }),
    );
    expect(batch.status).toBe(201);
    // Well before the stalled ones time out: the second token never waited for the first's.
    expect(Date.now() - started).toBeLessThan((IDLE_SECONDS * 1000) / 2);
    for (const c of stalled) c.close();
  }, 60_000);

  it('closes connections from one address beyond FLOE_MAX_CONNECTIONS_PER_CLIENT at once', async () => {
    const capped = await startFloe({ env: { FLOE_MAX_CONNECTIONS_PER_CLIENT: '10' } });
    try {
      const conns = Array.from({ length: 30 }, () => new RawConnection(capped.port));
      await new Promise((r) => setTimeout(r, 500));
      const closed = conns.filter((c) => c.isClosed).length;
      // 10 stay open (fewer if the test's own keep-alive connection from start-up still counts).
      expect(closed).toBeGreaterThanOrEqual(20);
      expect(closed).toBeLessThanOrEqual(22);
      for (const c of conns) c.close();
      await new Promise((r) => setTimeout(r, 300));
      // Closing frees the address's share again.
      expect((await fetch(`${capped.url}/healthz`)).status).toBe(200);
      expect(capped.logs()).toMatch(/too many connections from one client/);
    } finally {
      await capped.cleanup();
    }
  });
});
