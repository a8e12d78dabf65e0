/**
 * Storage exhaustion through NARs that never get a narinfo, and GC racing pushes. NARs uploaded
 * without a narinfo count against their org's quota until they expire (FLOE_UPLOAD_EXPIRY), a full
 * org is refused before its NAR body is sent, and expired uploads are swept even with GC off.
 * GC with grace 0 back to back never makes a concurrent push fail, and its mark does not block the
 * event loop on a large store.
 */
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { batchUpload, RawConnection, counts, until } from '../helpers/faults.js';

async function blobCount(dataDir: string): Promise<number> {
  let n = 0;
  for (const dir of await readdir(path.join(dataDir, 'blobs')).catch(() => [] as string[])) {
    n += (await readdir(path.join(dataDir, 'blobs', dir)).catch(() => [] as string[])).filter((f) =>
      f.endsWith('.nar.zst'),
    ).length;
  }
  return n;
}

describe('uncommitted uploads and quotas', () => {
  let server: TestServer;
  let rw: string;
  beforeAll(async () => {
    server = await startFloe({ env: { FLOE_UPLOAD_EXPIRY: '3s', FLOE_GC_GRACE: '1s' } });
    await createOrg(server, 'q');
    rw = (await createToken(server, 'q', ['read', 'write'])).token;
    expect((await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/q/settings', { quota: '1M' })).status).toBe(
      200,
    );
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('stops accepting NAR PUTs without narinfos once the quota is reached, refuses before the body, and deletes them after the expiry', async () => {
    const statuses: number[] = [];
    let refusal = '';
    for (let i = 0; i < 12; i++) {
      const p = fakePath(`pending-${i}`, { type: 'regular', contents: randomBytes(256 << 10) }); // incompressible
      const res = await fetch(`${server.url}/cache/nar/${'2'.repeat(50)}${String(i).padStart(2, '0')}.nar`, {
        method: 'PUT',
        headers: { Authorization: basicAuth(rw) },
        body: new Uint8Array(p.nar),
      });
      statuses.push(res.status);
      if (res.status === 413) refusal = await res.text();
      else await res.arrayBuffer();
    }
    const accepted = statuses.filter((s) => s === 201).length;
    // 1 MiB of 256 KiB NARs: four fit, the fifth may overshoot (the check is before its body).
    expect(accepted, JSON.stringify(counts(statuses))).toBeGreaterThanOrEqual(4);
    expect(accepted).toBeLessThanOrEqual(5);
    expect(statuses.slice(accepted).every((s) => s === 413)).toBe(true);
    expect(refusal).toMatch(/quota exceeded: org q .*without a narinfo/);
    const stored = await blobCount(server.dataDir);
    expect(stored).toBe(accepted);

    // Refused before the body: no 100 Continue, the 413 is the first answer.
    const conn = new RawConnection(server.port);
    await conn.write(
      `PUT /cache/nar/${'3'.repeat(52)}.nar HTTP/1.1\r\nHost: floe\r\nAuthorization: ${basicAuth(rw)}\r\nExpect: 100-continue\r\nContent-Length: ${64 << 20}\r\n\r\n`,
    );
    expect((await conn.response()).status).toBe(413);
    conn.close();
    // The batch upload counts them too.
    expect((await batchUpload(server, rw, fakePath('batch-while-full'))).status).toBe(413);

    // After the expiry (3 s) and the grace (1 s) the sweep deletes them, though GC is off.
    expect(await until(async () => (await blobCount(server.dataDir)) === 0, 20_000, 250)).toBe(true);
    // The files go before the sweep finishes its pass (and logs it): poll for the line and the usage.
    await expect.poll(() => server.logs(), { timeout: 10_000 }).toMatch(/uncommitted uploads swept/);
    await expect
      .poll(
        async () =>
          (await api<{ storedBytes: number }>(server, server.adminToken, 'GET', '/api/v1/orgs/q/usage')).body
            .storedBytes,
        { timeout: 10_000 },
      )
      .toBe(0);
    // And the org has its quota back.
    expect((await batchUpload(server, rw, fakePath('after-expiry'))).status).toBe(201);
  }, 60_000);
});

describe('GC racing pushes', () => {
  let server: TestServer;
  let rw: string;
  beforeAll(async () => {
    server = await startFloe();
    await createOrg(server, 'racer');
    rw = (await createToken(server, 'racer', ['read', 'write'])).token;
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('back-to-back GC with grace 0 never makes a concurrent push fail', async () => {
    let running = true;
    let runs = 0;
    const gcLoop = (async () => {
      while (running) {
        const r = await api(server, server.adminToken, 'POST', '/api/v1/gc', { grace: 0 });
        expect(r.status).toBe(200);
        runs++;
      }
    })();
    const pushes = await Promise.all(
      Array.from({ length: 15 }, async (_, i) => {
        const p = fakePath(`race-${i}`, { type: 'regular', contents: randomBytes(64 << 10) });
        if (i % 2) {
          const r = await batchUpload(server, rw, p);
          return `${r.status}`;
        }
        const r = await nixStyleUpload(`${server.url}/cache`, basicAuth(rw), p);
        return `${r.nar}/${r.narinfo}${r.narinfo >= 400 ? ` ${r.narinfoText}` : ''}`;
      }),
    );
    running = false;
    await gcLoop;
    expect(runs).toBeGreaterThan(0);
    expect(pushes.filter((s) => s !== '201' && s !== '201/201')).toEqual([]);
  }, 60_000);

  // The mark reads paths in yielding batches, converts them batch by batch, and plans by object
  // identity per slice (reachability.ts): no single synchronous step over all 100k paths is long.
  it('a GC dry run over 100k paths leaves /healthz fast (the mark yields between batches)', async () => {
    expect((await batchUpload(server, rw, fakePath('bulk-nar'))).status).toBe(201);
    const db = new Database(path.join(server.dataDir, 'floe.sqlite'));
    db.pragma('busy_timeout = 10000');
    const slice = db
      .prepare(
        "select slices.id from slices join orgs on orgs.id = slices.org_id where orgs.name = 'racer' and slices.name = 'default'",
      )
      .get() as { id: string };
    const nar = db.prepare('select nar_hash from nars limit 1').get() as { nar_hash: string };
    const insert = db.prepare(
      "insert into paths (slice_id, hash_part, store_path, nar_hash, nar_size, refs, deriver, ca, sigs, narinfo, uploaded_by, created_at) values (?, ?, ?, ?, 100, '', null, null, '', 'StorePath: x', 'test', ?)",
    );
    const now = new Date().toISOString();
    db.transaction(() => {
      for (let i = 0; i < 100_000; i++) {
        const hash = encodeNix32(Buffer.from(i.toString(16).padStart(40, '0'), 'hex'));
        insert.run(slice.id, hash, `${hash}-bulk`, nar.nar_hash, now);
      }
    })();
    db.close();

    let worst = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const t = performance.now();
        expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
        worst = Math.max(worst, performance.now() - t);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const dry = await api<{ paths: { total: number } }>(server, server.adminToken, 'POST', '/api/v1/gc', {
      dryRun: true,
    });
    polling = false;
    await poller;
    expect(dry.body.paths.total).toBeGreaterThanOrEqual(100_000);
    // It was 1.7-3 s; now a few hundred ms on two shared cores (the bound only says "no stall").
    expect(worst).toBeLessThan(1000);
  }, 120_000);
});
