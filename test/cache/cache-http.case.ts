/**
 * The cache over real HTTP against a real `floe serve` (SQLite + files): access control, the
 * hash-claim attack, tampered uploads, concurrency and crash safety. Nix itself is exercised in
 * test/nix; here requests are crafted by hand to hit the edges Nix would never send.
 * Written once, run on every storage backend (embedded.test.ts, postgres-s3.test.ts).
 */
import { setupTwoOrgs } from '../helpers/tenants.js';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createToken, type TestServer } from '../helpers/server.js';
import type { Backend } from '../helpers/backends.js';
import { fakePath, killMidUpload, narInfoFor, nixStyleUpload, type FakePath } from '../helpers/paths.js';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { fingerprintPath, verifyFingerprint } from '../../src/nix/signing.js';

/**
 * The status a server answers to a PUT, even when it answers early and closes before the whole
 * body was sent (fetch would report the client's EPIPE instead of the 413 the server sent).
 */
function putAnswer(url: string, auth: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'PUT',
      headers: { Authorization: auth, 'Content-Length': Buffer.byteLength(body) },
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err) => {
      if (!answered) setTimeout(() => (answered ? undefined : reject(err)), 200);
    });
    req.end(body);
  });
}

export function cacheHttpScenarios(backend: Backend): void {
  let server: TestServer;
  let acmeRW: string;
  let acmeRead: string;
  let otherRW: string;
  let otherRead: string;
  let cacheUrl: string;
  let nixKey: { name: string; publicKey: Buffer };

  async function get(url: string, token?: string, method = 'GET') {
    const res = await fetch(url, { method, headers: token ? { Authorization: basicAuth(token) } : {} });
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, body, headers: res.headers };
  }

  async function batchUpload(
    url: string,
    token: string,
    p: FakePath,
    opts: { narHash?: string; narSize?: number; body?: Buffer } = {},
  ) {
    const meta = {
      storePath: `/nix/store/${p.base}`,
      narHash: opts.narHash ?? p.narHash,
      narSize: opts.narSize ?? p.narSize,
      references: p.references.map((r) => `/nix/store/${r}`),
    };
    const res = await fetch(`${url}/api/v1/cache/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}` },
      body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), opts.body ?? p.nar])),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  beforeAll(async () => {
    await backend.setup();
    server = await backend.start();
    cacheUrl = `${server.url}/cache`;
    ({ acmeRW, acmeRead, otherRW, otherRead } = await setupTwoOrgs(server));
    const keyText = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    nixKey = { name: keyText.split(':')[0]!, publicKey: Buffer.from(keyText.split(':')[1]!, 'base64') };
  });

  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  describe('serving', () => {
    it(`runs on the ${backend.name} backend`, () => {
      expect(server.logs()).toMatch(backend.storagePattern);
    });

    it('answers healthz, nix-cache-info and the JWKS', async () => {
      expect((await get(`${server.url}/healthz`)).status).toBe(200);
      const info = await get(`${cacheUrl}/nix-cache-info`);
      expect(info.body.toString()).toBe('StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 30\n');
      const jwks = JSON.parse((await get(`${server.url}/.well-known/jwks.json`)).body.toString());
      expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA' });
    });

    it("serves an uploaded path signed with its org's key, with HEAD and ranges", async () => {
      const p = fakePath('served');
      const up = await nixStyleUpload(cacheUrl, basicAuth(acmeRW), p);
      expect(up).toMatchObject({ nar: 201, narinfo: 201 });
      const res = await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead);
      expect(res.status).toBe(200);
      const info = parseNarInfo(res.body.toString());
      expect(info.compression).toBe('zstd');
      expect(`sha256:${encodeNix32(info.narHash.digest)}`).toBe(p.narHash);
      expect(verifyFingerprint(nixKey, fingerprintPath(info), info.sigs.at(-1)!)).toBe(true);
      const head = await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead, 'HEAD');
      expect(head.status).toBe(200);
      expect(Number(head.headers.get('content-length'))).toBe(res.body.length);
      const nar = await get(`${cacheUrl}/${info.url}`, acmeRead);
      expect(nar.status).toBe(200);
      expect(createHash('sha256').update(nar.body).digest('hex')).toBe(
        Buffer.from(info.fileHash!.digest).toString('hex'),
      );
      const ranged = await fetch(`${cacheUrl}/${info.url}`, {
        headers: { Authorization: basicAuth(acmeRead), Range: 'bytes=2-9' },
      });
      expect(ranged.status).toBe(206);
      expect(Buffer.from(await ranged.arrayBuffer())).toEqual(nar.body.subarray(2, 10));
      // Several ranges at once: the whole body (200), not a 416.
      const multi = await fetch(`${cacheUrl}/${info.url}`, {
        headers: { Authorization: basicAuth(acmeRead), Range: 'bytes=0-1,5-9' },
        redirect: 'follow',
      });
      expect(multi.status).toBe(200);
      expect(Buffer.from(await multi.arrayBuffer())).toEqual(nar.body);
      const beyond = await fetch(`${cacheUrl}/${info.url}`, {
        headers: { Authorization: basicAuth(acmeRead), Range: `bytes=${nar.body.length + 10}-` },
      });
      expect(beyond.status).toBe(416);
      // The slice URL answers too.
      expect((await get(`${cacheUrl}/acme/default/${p.hashPart}.narinfo`, acmeRead)).status).toBe(200);
    });

    it('counts what it serves in /metrics, for the admin only', async () => {
      expect((await get(`${server.url}/metrics`)).status).toBe(403);
      const text = (await get(`${server.url}/metrics`, server.adminToken)).body.toString();
      expect(text).toMatch(/^floe_narinfo_lookups_total\{result="hit"\} [1-9]/m);
      expect(text).toMatch(/^floe_uploads_total\{result="accepted"\} [1-9]/m);
      expect(text).toMatch(/^floe_nar_bytes_served_total [1-9]/m);
      expect(text).toMatch(/^floe_http_requests_total\{area="cache",status="2xx"\} [1-9]/m);
    });
  });

  describe('access control', () => {
    let p: FakePath;
    beforeAll(async () => {
      p = fakePath('private-thing');
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeRW), p)).toMatchObject({ nar: 201, narinfo: 201 });
    });

    it('a denied read is byte-identical to a miss', async () => {
      const missing = fakePath('never-uploaded');
      const answers = await Promise.all([
        get(`${cacheUrl}/${p.hashPart}.narinfo`),
        get(`${cacheUrl}/${p.hashPart}.narinfo`, otherRead),
        get(`${cacheUrl}/${missing.hashPart}.narinfo`),
        get(`${cacheUrl}/${missing.hashPart}.narinfo`, acmeRead),
        get(`${cacheUrl}/acme/default/${p.hashPart}.narinfo`, otherRead),
      ]);
      for (const a of answers) {
        expect(a.status).toBe(404);
        expect(a.body).toEqual(answers[0]!.body);
        expect([...a.headers.keys()].filter((k) => k !== 'date').sort()).toEqual(
          [...answers[0]!.headers.keys()].filter((k) => k !== 'date').sort(),
        );
      }
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).status).toBe(200);
    });

    it('knowing the NAR hash gives another org nothing (GET and HEAD)', async () => {
      const info = parseNarInfo((await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).body.toString());
      expect((await get(`${cacheUrl}/${info.url}`, otherRead)).status).toBe(404);
      expect((await get(`${cacheUrl}/${info.url}`, otherRW, 'HEAD')).status).toBe(404);
      expect((await get(`${cacheUrl}/${info.url}`)).status).toBe(404);
      const clientFile = `${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar`;
      expect((await get(`${cacheUrl}/nar/${clientFile}`, otherRW, 'HEAD')).status).toBe(404);
      expect((await get(`${cacheUrl}/nar/${clientFile}`, acmeRW, 'HEAD')).status).toBe(200);
    });

    it('the hash-claim attack grants nothing', async () => {
      const info = parseNarInfo((await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).body.toString());
      const clientFile = `${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar`;
      for (const url of [info.url, `nar/${clientFile}`]) {
        const res = await fetch(`${cacheUrl}/${p.hashPart}.narinfo`, {
          method: 'PUT',
          headers: { Authorization: basicAuth(otherRW) },
          body: narInfoFor(p, url),
        });
        expect(res.status).toBe(400);
        expect(await res.text()).toMatch(/upload the NAR/);
      }
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, otherRead)).status).toBe(404);
      expect((await get(`${cacheUrl}/${info.url}`, otherRead)).status).toBe(404);
    });

    it("another org's write token cannot write to or overwrite acme's slice", async () => {
      const before = (await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).body.toString();
      const evil = { ...fakePath('evil'), hashPart: p.hashPart, base: p.base };
      evil.nar = Buffer.from(evil.nar);
      const direct = await nixStyleUpload(`${cacheUrl}/acme/default`, basicAuth(otherRW), {
        ...evil,
        nar: fakePath('x').nar,
      });
      // Another org's slice URL looks like no cache at all, for every method (no existence oracle).
      expect(direct.nar).toBe(404);
      expect(direct.narinfo).toBe(404);
      // Through the unified URL the write lands in other/default, never in acme's slice.
      const other = fakePath('evil-content');
      const sameName = { ...other, base: p.base, hashPart: p.hashPart };
      expect(await nixStyleUpload(cacheUrl, basicAuth(otherRW), sameName)).toMatchObject({ nar: 201, narinfo: 201 });
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).body.toString()).toBe(before);
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, otherRead)).body.toString()).not.toBe(before);
    });

    it('answers a refused upload before its body is sent (Expect: 100-continue)', async () => {
      const q = fakePath('expect-continue');
      const attempt = (token: string) =>
        new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
          let continued = false;
          const req = request(`${cacheUrl}/nar/${q.hashPart}.nar`, {
            method: 'PUT',
            headers: {
              Authorization: basicAuth(token),
              Expect: '100-continue',
              'Content-Length': String(q.nar.length),
            },
          });
          req.on('continue', () => {
            continued = true;
            req.end(q.nar);
          });
          req.on('response', (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode!, continued }));
            if (!continued) req.destroy();
          });
          req.on('error', (err) => (continued ? reject(err) : undefined));
          req.flushHeaders();
        });
      expect(await attempt(acmeRead)).toEqual({ status: 403, continued: false });
      expect(await attempt(acmeRW)).toEqual({ status: 201, continued: true });
    });

    it('read tokens cannot write; anonymous writes are 401', async () => {
      const q = fakePath('readonly');
      expect((await nixStyleUpload(cacheUrl, basicAuth(acmeRead), q)).nar).toBe(403);
      const anon = await nixStyleUpload(cacheUrl, undefined, q);
      expect(anon.nar).toBe(401);
    });

    it('public slices are readable anonymously, and only their paths', async () => {
      expect(
        (await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'oss', public: true }))
          .status,
      ).toBe(201);
      const q = fakePath('public-thing');
      expect(await nixStyleUpload(`${cacheUrl}/acme/oss`, basicAuth(acmeRW), q)).toMatchObject({
        nar: 201,
        narinfo: 201,
      });
      // A public slice always answers at its own URL; on /cache anonymous callers get only the
      // slices the server admin lists as global.
      expect((await get(`${cacheUrl}/acme/oss/${q.hashPart}.narinfo`)).status).toBe(200);
      expect((await get(`${cacheUrl}/${q.hashPart}.narinfo`)).status).toBe(404);
      expect(
        (await api(server, server.adminToken, 'PUT', '/api/v1/orgs/acme/slices/oss/global', { priority: 10 })).status,
      ).toBe(200);
      expect((await get(`${cacheUrl}/${q.hashPart}.narinfo`)).status).toBe(200);
      // Private slices cannot be made global.
      expect(
        (await api(server, server.adminToken, 'PUT', '/api/v1/orgs/acme/slices/default/global', { priority: 1 }))
          .status,
      ).toBe(400);
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`)).status).toBe(404);
      expect((await get(`${cacheUrl}/acme/oss/${p.hashPart}.narinfo`, acmeRead)).status).toBe(404);
    });

    it('slice-limited tokens see only their slices', async () => {
      const limited = (await createToken(server, 'acme', ['read'], { slices: ['oss'] })).token;
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, limited)).status).toBe(404);
    });

    it('bad, expired and revoked tokens are a loud 400 on reads (Nix takes 401 for "absent"), 401 on writes, never anonymous', async () => {
      const t = await createToken(server, 'acme', ['read', 'write']);
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, t.token)).status).toBe(200);
      expect((await api(server, server.adminToken, 'DELETE', `/api/v1/tokens/${t.id}`)).status).toBe(200);
      const revoked = await get(`${cacheUrl}/${p.hashPart}.narinfo`, t.token);
      expect(revoked.status).toBe(400);
      expect(revoked.body.toString()).toMatch(/revoked/);
      expect(revoked.headers.get('www-authenticate')).toBeNull();
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, t.token, 'HEAD')).status).toBe(400);
      // Writes keep the 401 (Nix reports a failed upload either way).
      expect((await nixStyleUpload(cacheUrl, basicAuth(t.token), fakePath('revoked-writer'))).nar).toBe(401);
      const garbage = await get(`${cacheUrl}/nix-cache-info`, 'floe_garbage');
      expect(garbage.status).toBe(400);
      expect(garbage.body.toString()).toMatch(/invalid token/);
      expect(garbage.body.toString()).not.toContain('floe_garbage');
      const short = await createToken(server, 'acme', ['read'], { ttl: '1s' });
      await new Promise((r) => setTimeout(r, 2100));
      const expired = await get(`${cacheUrl}/${p.hashPart}.narinfo`, short.token);
      expect(expired.status).toBe(400);
      expect(expired.body.toString()).toMatch(/token expired; get a new one/);
      expect(expired.body.toString()).not.toContain(short.token.slice(5, 40));
      // A tampered signature is refused.
      const forged = acmeRead.slice(0, -4) + (acmeRead.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, forged)).status).toBe(400);
      // No credential at all is still anonymous: a miss is the one 404.
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`)).status).toBe(404);
    });

    it('never logs tokens', () => {
      for (const t of [acmeRW, acmeRead, otherRW, server.adminToken]) {
        expect(server.logs()).not.toContain(t.slice(5, 60));
      }
    });
  });

  describe('verified uploads', () => {
    const tmpFiles = () => backend.countTemp(server);
    const blobs = () => backend.countBlobs(server);

    it('rejects a narinfo whose NarHash or NarSize does not match the NAR, leaving nothing', async () => {
      const p = fakePath('tampered');
      const other = fakePath('other');
      const wrongHash = await nixStyleUpload(cacheUrl, basicAuth(acmeRW), p, {
        narinfo: narInfoFor(p, `nar/${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar`, {
          narHash: other.narHash,
        }),
      });
      expect(wrongHash.narinfo).toBe(400);
      expect(wrongHash.narinfoText).toMatch(/NarHash: mismatch/);
      const wrongSize = await nixStyleUpload(cacheUrl, basicAuth(acmeRW), p, {
        narinfo: narInfoFor(p, `nar/${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar`, {
          narSize: p.narSize + 8,
        }),
      });
      expect(wrongSize.narinfo).toBe(400);
      expect(wrongSize.narinfoText).toMatch(/NarSize: mismatch/);
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).status).toBe(404);
    });

    it('rejects truncated, padded and garbage bodies while streaming, leaving nothing', async () => {
      const before = await blobs();
      const p = fakePath('truncated', { type: 'regular', contents: 'x'.repeat(100_000) });
      for (const body of [
        p.nar.subarray(0, p.nar.length - 50),
        Buffer.concat([p.nar, Buffer.alloc(8)]),
        Buffer.from('definitely not a nar, not compressed either'),
      ]) {
        const r = await nixStyleUpload(cacheUrl, basicAuth(acmeRW), p, { body });
        expect(r.nar).toBe(400);
        expect(r.narinfo).toBe(400);
      }
      const batch = await batchUpload(server.url, acmeRW, p, { body: p.nar.subarray(0, 1000) });
      expect(batch.status).toBe(400);
      expect(String(batch.body.message)).toMatch(/truncated/);
      expect((await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).status).toBe(404);
      expect(await blobs()).toBe(before);
      expect(await tmpFiles()).toBe(0);
    });

    it('rejects references that are not in the slice', async () => {
      const dep = fakePath('dep');
      const top = fakePath('top', undefined, [dep.base]);
      const r = await nixStyleUpload(cacheUrl, basicAuth(acmeRW), top);
      expect(r.narinfo).toBe(400);
      expect(r.narinfoText).toMatch(/References: 1 missing from acme\/default/);
      expect(r.narinfoText).toContain(dep.base);
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeRW), dep)).toMatchObject({ narinfo: 201 });
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeRW), top)).toMatchObject({ narinfo: 201 });
    });

    it('links references the writer can read from another slice, keeping slices closure-complete', async () => {
      expect(
        (await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'deploy' })).status,
      ).toBe(201);
      const dep = fakePath('linked-dep');
      const top = fakePath('linked-top', undefined, [dep.base]);
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeRW), dep)).toMatchObject({ narinfo: 201 });
      expect(await nixStyleUpload(`${cacheUrl}/acme/deploy`, basicAuth(acmeRW), top)).toMatchObject({ narinfo: 201 });
      expect((await get(`${cacheUrl}/acme/deploy/${dep.hashPart}.narinfo`, acmeRead)).status).toBe(200);
    });

    it('stores identical content once across orgs', async () => {
      const before = await blobs();
      const p = fakePath('shared');
      const q = { ...fakePath('shared-too'), nar: p.nar, narHash: p.narHash, narSize: p.narSize };
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeRW), p)).toMatchObject({ narinfo: 201 });
      expect(await nixStyleUpload(cacheUrl, basicAuth(otherRW), q)).toMatchObject({ narinfo: 201 });
      expect(await blobs()).toBe(before + 1);
    });

    it('batch API: reports missing paths and uploads metadata + NAR in one request', async () => {
      const a = fakePath('batch-a');
      const b = fakePath('batch-b', undefined, [a.base]);
      const m1 = await api<{ missing: string[] }>(server, acmeRW, 'POST', '/api/v1/cache/missing', {
        paths: [`/nix/store/${a.base}`, `/nix/store/${b.base}`],
      });
      expect(m1.body.missing).toEqual([`/nix/store/${a.base}`, `/nix/store/${b.base}`]);
      expect((await batchUpload(server.url, acmeRW, a)).status).toBe(201);
      expect((await batchUpload(server.url, acmeRW, b)).status).toBe(201);
      expect((await batchUpload(server.url, acmeRW, b)).body.status).toBe('exists');
      const m2 = await api<{ missing: string[] }>(server, acmeRW, 'POST', '/api/v1/cache/missing', {
        paths: [`/nix/store/${a.base}`, b.base],
      });
      expect(m2.body.missing).toEqual([]);
      const bad = await batchUpload(server.url, acmeRW, fakePath('batch-c'), { narHash: a.narHash });
      expect(bad.status).toBe(400);
      expect(String(bad.body.message)).toMatch(/narHash: mismatch/);
    });

    it('concurrent uploads of the same path give one consistent result', async () => {
      const p = fakePath('concurrent', { type: 'regular', contents: Buffer.alloc(300_000, 7) });
      const results = await Promise.all([
        ...Array.from({ length: 6 }, () => batchUpload(server.url, acmeRW, p)),
        ...Array.from({ length: 4 }, () => nixStyleUpload(cacheUrl, basicAuth(acmeRW), p)),
      ]);
      for (const r of results) {
        if ('nar' in r) expect([200, 201]).toContain(r.narinfo);
        else expect([200, 201]).toContain(r.status);
      }
      const created = results.filter((r) => ('nar' in r ? r.narinfo === 201 : r.status === 201));
      expect(created.length).toBe(1);
      const info = parseNarInfo((await get(`${cacheUrl}/${p.hashPart}.narinfo`, acmeRead)).body.toString());
      const nar = await get(`${cacheUrl}/${info.url}`, acmeRead);
      expect(Buffer.from(info.fileHash!.digest)).toEqual(createHash('sha256').update(nar.body).digest());
      expect(await tmpFiles()).toBe(0);
    });

    it('malformed requests are 4xx, never 5xx', async () => {
      const urls = [
        `${cacheUrl}/not-a-hash.narinfo`,
        `${cacheUrl}/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo`,
        `${cacheUrl}/nar/../../etc/passwd`,
        `${cacheUrl}/nar/%2e%2e%2fetc`,
        `${cacheUrl}/acme/nope/nix-cache-info`,
        `${cacheUrl}/a/b/c/d/e`,
        `${server.url}/api/v1/nothing`,
      ];
      for (const u of urls) {
        const r = await get(u, acmeRW);
        expect(r.status, u).toBeGreaterThanOrEqual(400);
        expect(r.status, u).toBeLessThan(500);
      }
      const p = fakePath('malformed');
      const bodies = [
        '',
        'garbage',
        narInfoFor(p, 'nar/x.nar').replace(/\n/g, '\r\n'),
        'StorePath: /etc/passwd\n',
        'x'.repeat(2 << 20),
      ];
      for (const body of bodies) {
        const status = await putAnswer(`${cacheUrl}/${p.hashPart}.narinfo`, basicAuth(acmeRW), body);
        expect(status, body.slice(0, 30)).toBeGreaterThanOrEqual(400);
        expect(status).toBeLessThan(500);
      }
      const badJson = await fetch(`${server.url}/api/v1/tokens`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${server.adminToken}` },
        body: '{"org":',
      });
      expect(badJson.status).toBe(400);
      const badScope = await api(server, server.adminToken, 'POST', '/api/v1/tokens', {
        org: 'acme',
        scopes: ['root'],
      });
      expect(badScope.status).toBe(400);
    });
  });

  describe('crash safety', () => {
    it('a server killed mid-upload shows no partial path after restart and keeps acknowledged ones', async () => {
      const kept = fakePath('acknowledged');
      expect(await nixStyleUpload(cacheUrl, basicAuth(acmeRW), kept)).toMatchObject({ narinfo: 201 });
      const big = fakePath('killed', { type: 'regular', contents: Buffer.alloc(4 << 20, 1) });
      await killMidUpload(server, acmeRW, big);
      await server.restart();
      expect((await get(`${cacheUrl}/${big.hashPart}.narinfo`, acmeRead)).status).toBe(404);
      expect(await backend.countTemp(server)).toBe(0);
      const info = parseNarInfo((await get(`${cacheUrl}/${kept.hashPart}.narinfo`, acmeRead)).body.toString());
      const nar = await get(`${cacheUrl}/${info.url}`, acmeRead);
      expect(nar.status).toBe(200);
      expect(Buffer.from(info.fileHash!.digest)).toEqual(createHash('sha256').update(nar.body).digest());
    });
  });
}
