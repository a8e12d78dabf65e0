/** `floe migrate`: an embedded installation moves to PostgreSQL + S3 with nothing lost. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FLOE_BIN,
  basicAuth,
  createOrg,
  createToken,
  freePort,
  startFloe,
  api,
  type TestServer,
} from '../helpers/server.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { fakePath, narInfoFor, nixStyleUpload } from '../helpers/paths.js';
import { parseHash } from '../../src/nix/hash.js';
import { hashPartOf } from '../../src/nix/store-path.js';
import { sourceStorePath } from '../../src/registry/sources.js';

const exec = promisify(execFile);

async function publishTinyFlake(server: TestServer, token: string): Promise<Buffer> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'floe-migrate-flake-'));
  await mkdir(path.join(root, 'source'));
  await writeFile(path.join(root, 'source', 'flake.nix'), '{ outputs = _: { }; }\n');
  await exec('tar', ['-czf', path.join(root, 't.tar.gz'), '-C', root, 'source']);
  const bytes = await readFile(path.join(root, 't.tar.gz'));
  const sha = createHash('sha256').update(bytes).digest('base64');
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
  const stage = await fetch(`${server.url}/upload/acme/hello/1.0.0/${bytes.length}/${sha}`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ visibility: 'public' }),
  });
  const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
  // The upload URL names FLOE_PUBLIC_URL (the load balancer's); this server listens elsewhere.
  const upload = new URL(s3_upload_url);
  expect(
    (await fetch(`${server.url}${upload.pathname}${upload.search}`, { method: 'PUT', body: new Uint8Array(bytes) })).ok,
  ).toBe(true);
  expect((await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers })).status).toBe(200);
  return bytes;
}

describe.skipIf(!postgresAvailable() && !process.env.CI)('floe migrate', () => {
  let pg: TestPostgres;
  let s3: TestS3;
  let before: TestServer;
  let after: TestServer | undefined;
  let publicUrl: string;
  let targetEnv: Record<string, string>;

  beforeAll(async () => {
    pg = await startPostgres();
    s3 = await startS3();
    publicUrl = `http://127.0.0.1:${await freePort()}`;
    targetEnv = {
      FLOE_DATABASE_URL: await pg.createDatabase('migrated'),
      ...s3.env('migrated/'),
      FLOE_PUBLIC_URL: publicUrl,
    };
    before = await startFloe({ env: { FLOE_PUBLIC_URL: publicUrl } });
  });
  afterAll(async () => {
    await after?.cleanup();
    await before?.cleanup();
    await s3?.stop();
    await pg?.stop();
  });

  it('copies orgs, slices, tokens, keys, paths and NARs, verifies them, and keeps tokens valid', async () => {
    await createOrg(before, 'acme');
    expect(
      (await api(before, before.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'oss', public: true })).status,
    ).toBe(201);
    const rw = (await createToken(before, 'acme', ['read', 'write'])).token;
    const read = (await createToken(before, 'acme', ['read'])).token;
    const revoked = await createToken(before, 'acme', ['read']);
    await api(before, before.adminToken, 'DELETE', `/api/v1/tokens/${revoked.id}`);
    const dep = fakePath('dep');
    const top = fakePath(
      'top',
      {
        type: 'directory',
        entries: { bin: { type: 'regular', contents: Buffer.alloc(200_000, 5), executable: true } },
      },
      [dep.base],
    );
    const pub = fakePath('public');
    expect(await nixStyleUpload(`${before.url}/cache`, basicAuth(rw), dep)).toMatchObject({ narinfo: 201 });
    expect(await nixStyleUpload(`${before.url}/cache`, basicAuth(rw), top)).toMatchObject({ narinfo: 201 });
    expect(await nixStyleUpload(`${before.url}/cache/acme/oss`, basicAuth(rw), pub)).toMatchObject({ narinfo: 201 });
    // A path built from a derivation, with its build log.
    const built = fakePath('built');
    const drv = `${built.hashPart.replace(/^./, (c) => (c === '0' ? '1' : '0'))}-built.drv`;
    const builtFile = `${built.hashPart}.nar`;
    expect(
      await nixStyleUpload(`${before.url}/cache`, basicAuth(rw), built, {
        fileName: builtFile,
        narinfo: `${narInfoFor(built, `nar/${builtFile}`)}Deriver: ${drv}\n`,
      }),
    ).toMatchObject({ narinfo: 201 });
    const logText = 'the build said this\n'.repeat(50);
    expect(
      (
        await fetch(`${before.url}/cache/log/${drv}`, {
          method: 'PUT',
          headers: { Authorization: basicAuth(rw) },
          body: logText,
        })
      ).status,
    ).toBe(201);
    const narinfos = await Promise.all(
      [dep, top].map(async (p) =>
        (
          await fetch(`${before.url}/cache/${p.hashPart}.narinfo`, { headers: { Authorization: basicAuth(read) } })
        ).text(),
      ),
    );
    const key = await (await fetch(`${before.url}/.well-known/nix-cache-key?org=acme`)).text();
    // Registry data, policies and the audit trail move too.
    const publisher = (await createToken(before, 'acme', ['publish'])).token;
    const tarball = await publishTinyFlake(before, publisher);
    // The release's source tree, served on /cache as the path Nix substitutes the locked input from.
    const release = await api<{ releases: Array<{ narHash: string }> }>(
      before,
      read,
      'GET',
      '/api/v1/flakes/acme/hello/releases',
    );
    const source = hashPartOf(sourceStorePath(parseHash(release.body.releases[0]!.narHash)));
    const sourceNarinfo = await (await fetch(`${before.url}/cache/${source}.narinfo`)).text();
    expect(sourceNarinfo).toMatch(/^CA: fixed:r:sha256:/m);
    expect(
      (
        await api(before, before.adminToken, 'PUT', '/api/v1/orgs/acme/policies', {
          source:
            '@id("keep") forbid (principal, action == Floe::Action::"cache.write", resource == Floe::Slice::"acme/oss");',
        })
      ).status,
    ).toBe(201);
    await before.stop();

    const newDir = await mkdtemp(path.join(os.tmpdir(), 'floe-migrated-'));
    const run = await exec(process.execPath, [FLOE_BIN, 'migrate', '--from', before.dataDir, '--data-dir', newDir], {
      env: { ...process.env, ...targetEnv },
    });
    expect(run.stderr).toMatch(
      /verified: 1 orgs, 0 org_settings, 0 pins, 0 upstreams, 2 slices, 5 tokens, 2 server_keys, 5 nars, 4 paths, 0 identity_trusts, 1 flakes, 1 releases, 1 release_sources, 1 org_policies, \d+ audit_log, \d+ read_summary, 0 org_signers, \d+ usage_history, 1 org_keys, 0 org_follows, 0 slice_trusts, 0 realisations, 1 build_logs, \d+ peer_ids, 0 debuginfo; 7 blobs re-hashed/,
    );
    expect(await s3.countObjects('migrated/')).toBe(7);

    after = await startFloe({ dataDir: newDir, env: targetEnv });
    expect(after.logs()).toMatch(/PostgreSQL .*NARs in S3 bucket/);
    expect(await (await fetch(`${after.url}/.well-known/nix-cache-key?org=acme`)).text()).toBe(key);
    for (const [i, p] of [dep, top].entries()) {
      const res = await fetch(`${after.url}/cache/${p.hashPart}.narinfo`, {
        headers: { Authorization: basicAuth(read) },
      });
      expect(await res.text()).toBe(narinfos[i]);
    }
    expect(await (await fetch(`${after.url}/cache/${source}.narinfo`)).text()).toBe(sourceNarinfo);
    const sourceNar = /URL: (.*)/.exec(sourceNarinfo)![1]!;
    expect((await fetch(`${after.url}/cache/${sourceNar}`)).status).toBe(200);
    const log = await fetch(`${after.url}/cache/log/${drv}`, { headers: { Authorization: basicAuth(read) } });
    expect(await log.text()).toBe(logText);
    const url = /URL: (.*)/.exec(narinfos[1]!)![1]!;
    expect((await fetch(`${after.url}/cache/${url}`, { headers: { Authorization: basicAuth(read) } })).status).toBe(
      200,
    );
    expect((await fetch(`${after.url}/cache/acme/oss/${pub.hashPart}.narinfo`)).status).toBe(200);
    expect((await fetch(`${after.url}/cache/${top.hashPart}.narinfo`)).status).toBe(404);
    expect(
      (await fetch(`${after.url}/cache/nix-cache-info`, { headers: { Authorization: basicAuth(revoked.token) } }))
        .status,
    ).toBe(400);
    expect((await api(after, before.adminToken, 'POST', '/api/v1/orgs', { name: 'second' })).status).toBe(201);
    const redirect = await fetch(`${after.url}/f/acme/hello/*.tar.gz`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    const pinned = new URL(redirect.headers.get('location')!, after.url);
    const fetched = await fetch(`${after.url}${pinned.pathname}`);
    expect(fetched.status).toBe(200);
    expect(Buffer.from(await fetched.arrayBuffer()).equals(tarball)).toBe(true);
    expect(
      (await api<{ version: number }>(after, before.adminToken, 'GET', '/api/v1/orgs/acme/policies')).body.version,
    ).toBe(1);
    expect((await nixStyleUpload(`${after.url}/cache/acme/oss`, basicAuth(rw), fakePath('after'))).nar).toBe(403);
    const chain = await api<{ ok: boolean; entries: number }>(after, before.adminToken, 'GET', '/api/v1/audit/verify');
    expect(chain.body.ok).toBe(true);
    expect(chain.body.entries).toBeGreaterThan(5);
  });

  it('refuses a target that already holds data', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'floe-migrated-again-'));
    const again = await exec(process.execPath, [FLOE_BIN, 'migrate', '--from', before.dataDir, '--data-dir', dir], {
      env: { ...process.env, ...targetEnv },
    }).catch((e) => e as { code: number; stderr: string });
    expect((again as { code: number }).code).not.toBe(0);
    expect(again.stderr).toMatch(/already holds data/);
  });
});
