/**
 * The object store going away and coming back: what lives in the database keeps answering
 * (narinfo lookups), what needs the bucket answers 503 naming it (NAR downloads, uploads), nothing
 * is half-written (no spool left, no path committed), and it all works again without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { api, basicAuth, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { countFiles } from '../helpers/backends.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { alive, batchUpload, until } from '../helpers/faults.js';

const enabled = postgresAvailable() || Boolean(process.env.CI);

describe.skipIf(!enabled)('S3 outage', () => {
  let pgServer: TestPostgres;
  let s3: TestS3;
  let server: TestServer;
  let rw: string;
  let stored: FakePath;
  let narUrl: string;

  beforeAll(async () => {
    pgServer = await startPostgres();
    s3 = await startS3();
    server = await startFloe({
      env: { FLOE_DATABASE_URL: await pgServer.createDatabase('s3faults'), ...s3.env('s3faults/') },
    });
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs', { name: 'acme' })).status).toBe(201);
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    stored = fakePath('stored');
    expect((await batchUpload(server, rw, stored)).status).toBe(201);
    const info = await (
      await fetch(`${server.url}/cache/${stored.hashPart}.narinfo`, { headers: { Authorization: basicAuth(rw) } })
    ).text();
    narUrl = /^URL: (.*)$/m.exec(info)![1]!;
  }, 60_000);

  afterAll(async () => {
    await server?.cleanup();
    await s3?.stop();
    await pgServer?.stop();
  });

  const get = (p: string) => fetch(`${server.url}${p}`, { headers: { Authorization: basicAuth(rw) } });

  it('reads from the database keep answering, blob reads and uploads fail with 503, and it recovers without a restart', async () => {
    const during = fakePath('during-outage');
    await s3.pause();
    try {
      expect((await get(`/cache/${stored.hashPart}.narinfo`)).status).toBe(200);

      const nar = await get(`/cache/${narUrl}`);
      const narText = await nar.text();
      expect(nar.status, narText).toBe(503);
      expect(Number(nar.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(narText).toMatch(/blob store/);

      const up = await batchUpload(server, rw, during);
      expect(up.status, up.text).toBe(503);
      expect(up.text).toMatch(/blob store/);
      // Nothing half-written: no spooled upload left behind, no path committed.
      expect(await countFiles(path.join(server.dataDir, 's3-spool'))).toBe(0);
      expect((await get(`/cache/${during.hashPart}.narinfo`)).status).toBe(404);

      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { failed: string[] }).failed).toEqual(['blobs']);
      expect(alive(server)).toBe(true);
    } finally {
      await s3.resume();
    }

    expect(await until(async () => (await fetch(`${server.url}/readyz`)).status === 200, 10_000)).toBe(true);
    const nar = await get(`/cache/${narUrl}`);
    expect(nar.status).toBe(200);
    expect((await nar.arrayBuffer()).byteLength).toBeGreaterThan(0);
    // The upload that failed goes through when retried, and its NAR is really there.
    expect((await batchUpload(server, rw, during)).status).toBe(201);
    const info = await (await get(`/cache/${during.hashPart}.narinfo`)).text();
    const again = await get(`/cache/${/^URL: (.*)$/m.exec(info)![1]!}`);
    expect(again.status).toBe(200);
    expect(server.logs()).not.toMatch(/"level":50/);
  }, 60_000);
});
