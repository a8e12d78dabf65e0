/**
 * Several stateless `floe serve` replicas sharing one PostgreSQL database and one S3 bucket, as
 * behind a load balancer: started together, pushed to through one and read through another, with
 * concurrent pushes of the same path, revocation across replicas, and a replica killed mid-upload.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createToken, freePort, startFloe, type TestServer } from '../helpers/server.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import {
  buildClosure,
  fixtureDir,
  hostNix,
  requireNix,
  writeClosureExpr,
  writeNetrc,
  copyFromCacheArgs,
} from '../helpers/nix.js';
import { fakePath, killMidUpload } from '../helpers/paths.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';

const nixVersion = await requireNix(hostNix);
const enabled = postgresAvailable() || Boolean(process.env.CI);

describe.skipIf(!enabled)('three replicas on PostgreSQL + S3', () => {
  let pg: TestPostgres;
  let s3: TestS3;
  let replicas: TestServer[];
  let publicUrl: string;
  let rw: string;
  let read: string;
  const prefix = 'replicas/';

  const upload = async (server: TestServer, token: string, p: ReturnType<typeof fakePath>) => {
    const meta = { storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] };
    const res = await fetch(`${server.url}/api/v1/cache/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}` },
      body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar])),
    });
    return res.status;
  };
  const narinfo = async (server: TestServer, hash: string, token = read) =>
    fetch(`${server.url}/cache/${hash}.narinfo`, { headers: { Authorization: basicAuth(token) } });

  beforeAll(async () => {
    pg = await startPostgres();
    s3 = await startS3();
    const env = { FLOE_DATABASE_URL: await pg.createDatabase('replicas'), ...s3.env(prefix) };
    // Behind a load balancer every replica has the same public URL (token issuer, key name).
    publicUrl = `http://127.0.0.1:${await freePort()}`;
    // Started together: migrations and first-start key creation must not race.
    replicas = await Promise.all([1, 2, 3].map(() => startFloe({ env: { ...env, FLOE_PUBLIC_URL: publicUrl } })));
    const a = replicas[0]!;
    expect((await api(a, a.adminToken, 'POST', '/api/v1/orgs', { name: 'acme' })).status).toBe(201);
    rw = (await createToken(a, 'acme', ['read', 'write'])).token;
    read = (await createToken(a, 'acme', ['read'])).token;
  });

  afterAll(async () => {
    await Promise.all((replicas ?? []).map((r) => r.cleanup()));
    await s3?.stop();
    await pg?.stop();
  });

  it('share one signing key and one JWKS, and accept each other’s tokens', async () => {
    const keys = await Promise.all(
      replicas.map(async (r) => (await fetch(`${r.url}/.well-known/nix-cache-key?org=acme`)).text()),
    );
    expect(new Set(keys).size).toBe(1);
    const jwks = await Promise.all(replicas.map(async (r) => (await fetch(`${r.url}/.well-known/jwks.json`)).text()));
    expect(new Set(jwks).size).toBe(1);
    for (const r of replicas)
      expect(
        (await fetch(`${r.url}/cache/nix-cache-info`, { headers: { Authorization: basicAuth(read) } })).status,
      ).toBe(200);
  });

  it('a path pushed through one replica is served by the others at once', async () => {
    const p = fakePath('at-once');
    // Warm replica B's lookup of this hash first: a cached miss must not hide the new path.
    expect((await narinfo(replicas[1]!, p.hashPart)).status).toBe(404);
    expect(await upload(replicas[0]!, rw, p)).toBe(201);
    for (const r of replicas) expect((await narinfo(r, p.hashPart)).status).toBe(200);
  });

  it.skipIf(!nixVersion)('real Nix pushes through one replica and substitutes through another', async () => {
    const dir = await fixtureDir('replicas');
    const expr = await writeClosureExpr(dir);
    const out = await buildClosure(hostNix, expr, `rep${Date.now()}`, path.join(dir, 'm0'));
    const netrcRW = await writeNetrc(dir, 'rw', rw);
    const netrcRead = await writeNetrc(dir, 'r', read);
    const pushed = await hostNix.run(
      ['nix', 'copy', '--option', 'netrc-file', netrcRW, '--to', `${replicas[0]!.url}/cache`, out],
      { cacheHome: path.join(dir, 'm1') },
    );
    expect(pushed.code, pushed.stderr).toBe(0);
    const key = (await (await fetch(`${replicas[1]!.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    const got = await hostNix.run(
      copyFromCacheArgs({ key, netrc: netrcRead, from: `${replicas[1]!.url}/cache`, to: path.join(dir, 'store') }, out),
      { cacheHome: path.join(dir, 'm2') },
    );
    expect(got.code, got.stderr).toBe(0);
  });

  it('the same path pushed through all replicas at once is stored once and correct', async () => {
    const before = await s3.countObjects(prefix);
    const p = fakePath('racing', { type: 'regular', contents: Buffer.alloc(2 << 20, 3) });
    const statuses = await Promise.all(replicas.flatMap((r) => [upload(r, rw, p), upload(r, rw, p)]));
    for (const s of statuses) expect([200, 201]).toContain(s);
    expect(statuses.filter((s) => s === 201).length).toBe(1);
    expect(await s3.countObjects(prefix)).toBe(before + 1);
    const texts = await Promise.all(replicas.map(async (r) => (await narinfo(r, p.hashPart)).text()));
    expect(new Set(texts).size).toBe(1);
    const info = parseNarInfo(texts[0]!);
    const nar = Buffer.from(
      await (
        await fetch(`${replicas[2]!.url}/cache/${info.url}`, { headers: { Authorization: basicAuth(read) } })
      ).arrayBuffer(),
    );
    expect(createHash('sha256').update(nar).digest()).toEqual(Buffer.from(info.fileHash!.digest));
  });

  it('a token revoked on one replica is refused by all at once (LISTEN/NOTIFY; 2 s recheck as the bound)', async () => {
    const t = await createToken(replicas[0]!, 'acme', ['read']);
    for (const r of replicas)
      expect(
        (await fetch(`${r.url}/cache/nix-cache-info`, { headers: { Authorization: basicAuth(t.token) } })).status,
      ).toBe(200);
    expect((await api(replicas[0]!, replicas[0]!.adminToken, 'DELETE', `/api/v1/tokens/${t.id}`)).status).toBe(200);
    expect(
      (await fetch(`${replicas[0]!.url}/cache/nix-cache-info`, { headers: { Authorization: basicAuth(t.token) } }))
        .status,
    ).toBe(400);
    // Well inside the 2 s recheck: only the notice can explain a refusal this early.
    await new Promise((r) => setTimeout(r, 250));
    for (const r of replicas)
      expect(
        (await fetch(`${r.url}/cache/nix-cache-info`, { headers: { Authorization: basicAuth(t.token) } })).status,
      ).toBe(400);
  });

  it('a policy applied through one replica is enforced by all at once, and audited in one chain', async () => {
    const p = fakePath('policy-replicas');
    expect(await upload(replicas[0]!, rw, p)).toBe(201);
    for (const r of replicas) expect((await narinfo(r, p.hashPart)).status).toBe(200);
    const put = await api(replicas[1]!, replicas[1]!.adminToken, 'PUT', '/api/v1/orgs/acme/policies', {
      source: '@id("lockdown") forbid (principal, action == Floe::Action::"cache.read", resource);',
    });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect((await narinfo(replicas[1]!, p.hashPart)).status).toBe(404); // the applying replica: at once
    // The others hear of it by NOTIFY (their 1 s poll is the bound if a notice is lost).
    await new Promise((r) => setTimeout(r, 250));
    for (const r of replicas) expect((await narinfo(r, p.hashPart)).status).toBe(404);
    const back = await api(replicas[2]!, replicas[2]!.adminToken, 'PUT', '/api/v1/orgs/acme/policies', { source: '' });
    expect(back.status).toBe(201);
    await new Promise((r) => setTimeout(r, 250));
    for (const r of replicas) expect((await narinfo(r, p.hashPart)).status).toBe(200);
    // Denials were logged by every replica into one gapless chain.
    const verify = await api<{ ok: boolean; entries: number }>(
      replicas[0]!,
      replicas[0]!.adminToken,
      'GET',
      '/api/v1/audit/verify',
    );
    expect(verify.body.ok).toBe(true);
    const denies = await api<{ entries: Array<{ reason: string }> }>(
      replicas[0]!,
      replicas[0]!.adminToken,
      'GET',
      '/api/v1/orgs/acme/audit?outcome=deny&action=cache.read',
    );
    expect(
      denies.body.entries.filter((e) => e.reason === 'forbidden by org policy lockdown').length,
    ).toBeGreaterThanOrEqual(3);
  });

  it('rotating the signing key on one replica logs nobody out, and the others accept new tokens at once', async () => {
    const old = await createToken(replicas[0]!, 'acme', ['read']);
    const rotated = await api<{ kid: string }>(replicas[0]!, replicas[0]!.adminToken, 'POST', '/api/v1/keys/rotate');
    expect(rotated.status).toBe(200);
    const fresh = await createToken(replicas[0]!, 'acme', ['read']);
    const kidOf = (t: string) =>
      JSON.parse(Buffer.from(t.slice(5).split('.')[0]!, 'base64url').toString()).kid as string;
    expect(kidOf(fresh.token)).toBe(rotated.body.kid);
    expect(kidOf(old.token)).not.toBe(rotated.body.kid);
    for (const r of replicas) {
      for (const t of [old.token, fresh.token])
        expect(
          (await fetch(`${r.url}/cache/nix-cache-info`, { headers: { Authorization: basicAuth(t) } })).status,
        ).toBe(200);
      const jwks = (await (await fetch(`${r.url}/.well-known/jwks.json`)).json()) as { keys: Array<{ kid: string }> };
      expect(jwks.keys.map((k) => k.kid)).toContain(rotated.body.kid);
    }
  });

  it('a replica killed mid-upload leaves no visible path and no object', async () => {
    const victim = replicas[2]!;
    const before = await s3.countObjects(prefix);
    const big = fakePath('killed', { type: 'regular', contents: Buffer.alloc(8 << 20, 9) });
    await killMidUpload(victim, rw, big);
    for (const r of replicas.slice(0, 2)) expect((await narinfo(r, big.hashPart)).status).toBe(404);
    expect(await s3.countObjects(prefix)).toBe(before);
    await victim.restart();
    expect((await narinfo(victim, big.hashPart)).status).toBe(404);
    expect(await upload(victim, rw, big)).toBe(201);
    for (const r of replicas) expect((await narinfo(r, big.hashPart)).status).toBe(200);
  });
});
