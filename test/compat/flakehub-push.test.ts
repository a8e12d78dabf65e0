/**
 * flakehub-push (DeterminateSystems/flakehub-push 3135d10865f2938b309b1fa8f7941c48fe948de8,
 * src/flakehub_client.rs and src/s3.rs) against real `floe serve`s: `User-Agent: flakehub-push`,
 * `Content-Type: application/json` on every API call (a GET included), the raw CI JWT as Bearer
 * each time, the tarball's standard-base64 SHA-256 as the last segment (it may contain `/`),
 * the PUT with `x-amz-checksum-sha256` and `Content-Type: application/gzip`, and publish = exactly
 * 200. The same JWT presented again, to another replica on PostgreSQL, is no replay; used once
 * for a one-time login it still is.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, freePort, startFloe, type TestServer } from '../helpers/server.js';
import { githubClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';

/** A flake tarball whose base64 SHA-256 contains "/" (the greedy tail), different per `seed`. */
function tarball(seed: string): { bytes: Buffer; sha: string } {
  for (let i = 0; ; i++) {
    const root = mkdtempSync('/tmp/floe-fhp-');
    mkdirSync(path.join(root, 'source'));
    writeFileSync(path.join(root, 'source', 'flake.nix'), `{ outputs = _: { v = "${seed}-${i}"; }; }\n`);
    execFileSync('tar', ['-czf', path.join(root, 't.tar.gz'), '-C', root, 'source']);
    const bytes = readFileSync(path.join(root, 't.tar.gz'));
    const sha = createHash('sha256').update(bytes).digest('base64');
    if (sha.includes('/')) return { bytes, sha };
  }
}

const headers = (jwt: string) => ({
  'User-Agent': 'flakehub-push',
  'Content-Type': 'application/json',
  Authorization: `Bearer ${jwt}`,
});

/** One flakehub-push run; each step may go to another replica (`hosts[i % n]`). */
async function push(hosts: string[], jwt: string, flake: string, version: string, opts: { checksum?: string } = {}) {
  const host = (i: number) => hosts[i % hosts.length]!;
  const { bytes, sha } = tarball(`${flake}-${version}`);
  const status = await fetch(`${host(0)}/token/status`, { headers: headers(jwt) });
  if (status.status !== 200) return { step: 'status', status: status.status, body: await status.text() };
  const meta = {
    description: 'x',
    visibility: 'public',
    revision: 'c'.repeat(40),
    commit_count: 3,
    repo: 'acme-gh/app',
    labels: [],
  };
  const stage = await fetch(`${host(1)}/upload/acme/${flake}/${version}/${bytes.length}/${sha}`, {
    method: 'POST',
    headers: headers(jwt),
    body: JSON.stringify(meta),
  });
  if (stage.status !== 200) return { step: 'stage', status: stage.status, body: await stage.text() };
  const staged = (await stage.json()) as { s3_upload_url: string; uuid: string };
  // Behind the load balancer the public URL reaches some replica: here, the next one.
  const put = await fetch(staged.s3_upload_url.replace(/^https?:\/\/[^/]+/, host(3)), {
    method: 'PUT',
    headers: {
      'Content-Length': String(bytes.length),
      'x-amz-checksum-sha256': opts.checksum ?? sha,
      'Content-Type': 'application/gzip',
    },
    body: new Uint8Array(bytes),
  });
  if (put.status !== 200) return { step: 'put', status: put.status, body: await put.text() };
  const publish = await fetch(`${host(2)}/publish/${staged.uuid}`, { method: 'POST', headers: headers(jwt) });
  return { step: 'publish', status: publish.status, body: await publish.text(), uuid: staged.uuid };
}

async function trustGithub(server: TestServer, issuer: string) {
  await createOrg(server, 'acme');
  const t = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'github',
    issuer,
    ownerId: '1001',
    refs: ['refs/heads/main'],
    scopes: ['publish'],
  });
  expect(t.status).toBe(201);
}

describe('flakehub-push on one server', () => {
  let server: TestServer;
  let gh: TestIssuer;
  const aud = () => new URL(server.url).host;

  beforeAll(async () => {
    server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
    gh = await startIssuer();
    await trustGithub(server, gh.issuer);
  }, 60_000);

  afterAll(async () => {
    await server?.cleanup();
    await gh?.stop();
  });

  it('publishes with the exact requests, the hash tail matched greedily; the release is served', async () => {
    const jwt = await gh.mint(githubClaims(), { audience: aud() });
    const r = await push([server.url], jwt, 'app', '1.0.0');
    expect(r).toMatchObject({ step: 'publish', status: 200 });
    expect(r.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const got = await fetch(`${server.url}/f/acme/app/1.0.0.tar.gz`, { redirect: 'manual' });
    expect(got.status).toBe(302);
    // The same version again: 409, as FlakeHub answers.
    expect(await push([server.url], jwt, 'app', '1.0.0')).toMatchObject({ step: 'stage', status: 409 });
  });

  it('refuses a PUT whose x-amz-checksum-sha256 does not match the body', async () => {
    const jwt = await gh.mint(githubClaims(), { audience: aud() });
    const r = await push([server.url], jwt, 'app', '1.1.0', {
      checksum: createHash('sha256').update('other').digest('base64'),
    });
    expect(r).toMatchObject({ step: 'put', status: 400 });
    expect(r.body).toContain('x-amz-checksum-sha256');
  });
});

describe.skipIf(!postgresAvailable() && !process.env.CI)('flakehub-push across two replicas on PostgreSQL + S3', () => {
  let pg: TestPostgres;
  let s3: TestS3;
  let replicas: TestServer[];
  let gh: TestIssuer;
  let publicUrl: string;

  beforeAll(async () => {
    pg = await startPostgres();
    s3 = await startS3();
    gh = await startIssuer();
    publicUrl = `http://127.0.0.1:${await freePort()}`;
    const env = {
      FLOE_DATABASE_URL: await pg.createDatabase('fhpush'),
      FLOE_PUBLIC_URL: publicUrl,
      FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1',
      ...s3.env('fhpush/'),
    };
    replicas = await Promise.all([1, 2].map(() => startFloe({ env })));
    await trustGithub(replicas[0]!, gh.issuer);
  }, 120_000);

  afterAll(async () => {
    await Promise.all((replicas ?? []).map((r) => r.cleanup()));
    await gh?.stop();
    await s3?.stop();
    await pg?.stop();
  });

  it('the same raw JWT on both replicas, call after call, publishes; a one-time login with it is a replay', async () => {
    const jwt = await gh.mint(githubClaims(), { audience: new URL(publicUrl).host });
    const hosts = replicas.map((r) => r.url);
    // status → A, upload → B, publish → A: each replica sees the JWT for the first time at least once.
    expect(await push(hosts, jwt, 'app', '2.0.0')).toMatchObject({ step: 'publish', status: 200 });
    expect(await push([...hosts].reverse(), jwt, 'app', '2.1.0')).toMatchObject({ step: 'publish', status: 200 });
    for (const r of replicas) {
      const login = await api<{ message: string }>(r, undefined, 'POST', '/api/v1/auth/exchange', { token: jwt });
      expect(login.status).toBe(401);
      expect(login.body.message).toMatch(/replay/);
    }
    // And a JWT first used for a login is refused on the publishing paths of either replica.
    const once = await gh.mint(githubClaims(), { audience: new URL(publicUrl).host });
    expect((await api(replicas[1]!, undefined, 'POST', '/api/v1/auth/exchange', { token: once })).status).toBe(201);
    for (const r of replicas)
      expect((await fetch(`${r.url}/token/status`, { headers: headers(once) })).status).toBe(401);
  }, 120_000);
});
