/**
 * Narinfo misses memoized on PostgreSQL replicas, kept safe by acknowledged change notices: two
 * `floe serve` replicas on one database and one bucket (B with two workers, each its own feed),
 * B memoizes a miss, the path is pushed through A, and B answers the very next request with it.
 * B handles every notice 100 ms late (FLOE_TEST_FEED_DELAY_MS, as a slow replica would): on one
 * machine the notice would otherwise beat the client's next request even unacknowledged.
 * A replica that hangs holds a push at most the acknowledgement bound; one that died, not at all.
 */
import { request } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createToken, api, freePort, startFloe, type TestServer } from '../helpers/server.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { ACK_TIMEOUT_MS } from '../../src/storage/acks.js';

const enabled = postgresAvailable() || Boolean(process.env.CI);
const B_DELAY_MS = 100;

interface Answer {
  status: number;
  worker: string;
}

/** A GET on a connection of its own (so B's two workers both take some), with the worker that answered. */
function get(server: TestServer, path: string, token: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}${path}`,
      { headers: { Authorization: basicAuth(token), Connection: 'close' }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, worker: String(res.headers['x-floe-worker'] ?? '') }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Asks until both of B's workers have answered (at least `min` answers); returns the statuses by worker. */
async function askEveryWorker(
  server: TestServer,
  path: string,
  token: string,
  min = 4,
): Promise<Map<string, number[]>> {
  const seen = new Map<string, number[]>();
  for (let i = 0; i < 200 && (seen.size < 2 || i < min); i++) {
    const a = await get(server, path, token);
    seen.set(a.worker, [...(seen.get(a.worker) ?? []), a.status]);
  }
  expect(seen.size).toBe(2);
  return seen;
}

describe.skipIf(!enabled)('narinfo misses memoized on PostgreSQL replicas', () => {
  let pgServer: TestPostgres;
  let s3: TestS3;
  let dbUrl: string;
  let a: TestServer;
  let b: TestServer;
  let rw: string;
  let read: string;
  let env: Record<string, string>;

  const upload = async (server: TestServer, p: FakePath) => {
    const meta = { storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] };
    const res = await fetch(`${server.url}/api/v1/cache/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${rw}` },
      body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar])),
    });
    await res.arrayBuffer();
    return res.status;
  };

  beforeAll(async () => {
    pgServer = await startPostgres();
    s3 = await startS3();
    dbUrl = await pgServer.createDatabase('misses');
    const publicUrl = `http://127.0.0.1:${await freePort()}`;
    env = { FLOE_DATABASE_URL: dbUrl, ...s3.env('misses/'), FLOE_PUBLIC_URL: publicUrl };
    a = await startFloe({ env });
    b = await startFloe({
      env: { ...env, FLOE_WORKERS: '2', FLOE_TEST_WORKER_HEADER: '1', FLOE_TEST_FEED_DELAY_MS: String(B_DELAY_MS) },
    });
    expect((await api(a, a.adminToken, 'POST', '/api/v1/orgs', { name: 'acme' })).status).toBe(201);
    rw = (await createToken(a, 'acme', ['read', 'write'])).token;
    read = (await createToken(a, 'acme', ['read'])).token;
  }, 60_000);

  afterAll(async () => {
    await Promise.all([a, b].filter(Boolean).map((r) => r.cleanup()));
    await s3?.stop();
    await pgServer?.stop();
  });

  it('B memoizes misses (a row written behind Floe’s back stays unseen there for up to 2 s)', async () => {
    // Without this the loop below would pass on a replica that memoizes nothing.
    const known = fakePath('known');
    expect(await upload(a, known)).toBe(201);
    const hidden = fakePath('hidden');
    const before = await askEveryWorker(b, `/cache/${hidden.hashPart}.narinfo`, read);
    for (const statuses of before.values()) expect(statuses.every((s) => s === 404)).toBe(true);
    // The same row under another hash, inserted without any notice.
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    try {
      await c.query('create temp table t as select * from paths where hash_part = $1', [known.hashPart]);
      await c.query('update t set hash_part = $1', [hidden.hashPart]);
      await c.query('insert into paths select * from t');
    } finally {
      await c.end();
    }
    expect((await get(a, `/cache/${hidden.hashPart}.narinfo`, read)).status).toBe(200); // A never asked
    const memoized = await askEveryWorker(b, `/cache/${hidden.hashPart}.narinfo`, read);
    for (const statuses of memoized.values()) expect(statuses[0]).toBe(404);
    await new Promise((r) => setTimeout(r, 2_100));
    const later = await askEveryWorker(b, `/cache/${hidden.hashPart}.narinfo`, read);
    for (const statuses of later.values()) expect(statuses.every((s) => s === 200)).toBe(true);
  });

  it('a path pushed through A is a hit on B’s next request, though B had memoized the miss', async () => {
    for (let i = 0; i < 25; i++) {
      const p = fakePath(`loop-${i}`);
      const path = `/cache/${p.hashPart}.narinfo`;
      for (const statuses of (await askEveryWorker(b, path, read, 2)).values())
        expect(statuses.every((s) => s === 404)).toBe(true);
      expect(await upload(a, p)).toBe(201);
      // At once: the first answer from each of B's workers after the push.
      for (const [worker, statuses] of await askEveryWorker(b, path, read, 2))
        expect(statuses[0], `iteration ${i}, worker ${worker}`).toBe(200);
    }
  }, 120_000);

  it('costs a push little more than the slowest replica’s answer', async () => {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const started = Date.now();
      expect(await upload(a, fakePath(`fast-${i}`))).toBe(201);
      times.push(Date.now() - started);
    }
    times.sort((x, y) => x - y);
    expect(times[5]!).toBeGreaterThanOrEqual(B_DELAY_MS); // it did wait for B
    expect(times[5]!).toBeLessThan(B_DELAY_MS + 150);
  });

  it('a hung replica holds a push at most the bound; a dead one not at all', async () => {
    const c = await startFloe({ env });
    try {
      const pid = c.process.pid!;
      process.kill(pid, 'SIGSTOP'); // its feed connection stays open and listed, but never answers
      const p = fakePath('while-hung');
      const started = Date.now();
      expect(await upload(a, p)).toBe(201);
      const took = Date.now() - started;
      expect(took).toBeGreaterThanOrEqual(ACK_TIMEOUT_MS - 50);
      expect(took).toBeLessThan(ACK_TIMEOUT_MS + 1_500);
      // B answered in time: it was not held up by C.
      for (const statuses of (await askEveryWorker(b, `/cache/${p.hashPart}.narinfo`, read, 2)).values())
        expect(statuses[0]).toBe(200);
      process.kill(pid, 'SIGKILL');
      await new Promise((r) => c.process.once('exit', r));
      // Its session ends with it: pushes are quick again.
      let quick = false;
      for (let i = 0; i < 20 && !quick; i++) {
        const t0 = Date.now();
        expect(await upload(a, fakePath(`after-death-${i}`))).toBe(201);
        quick = Date.now() - t0 < B_DELAY_MS + 150;
      }
      expect(quick).toBe(true);
    } finally {
      await c.cleanup();
    }
  }, 60_000);
});
