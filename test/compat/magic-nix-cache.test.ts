/**
 * magic-nix-cache's FlakeHub push path (DeterminateSystems/magic-nix-cache
 * 03659f4394aec2317771e29041ef266669e2ee12, magic-nix-cache/src/flakehub.rs and main.rs) against
 * a real `floe serve`: the netrc login/password (the raw GitHub Actions JWT) as Basic on
 * `GET /project[/{org}/{flake}]` with `User-Agent: magic-nix-cache`, the cache name
 * `<organization_uuid_v7>:<project_uuid_v7>`, then Attic's API with the same JWT as the bearer
 * token from five push workers at once, and Nix reading `<cache server>?trusted=1` with the JWT
 * in the netrc.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { githubClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { parseHash } from '../../src/nix/hash.js';
import { AtticApiClient, type UploadPathNarInfo } from './attic-client.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const basic = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;

function infoOf(cache: string, p: FakePath): UploadPathNarInfo {
  return {
    cache,
    store_path_hash: p.hashPart,
    store_path: `/nix/store/${p.base}`,
    references: p.references.map((r) => `/nix/store/${r}`),
    system: null,
    deriver: null,
    sigs: [],
    ca: null,
    nar_hash: `sha256:${Buffer.from(parseHash(p.narHash).digest).toString('hex')}`,
    nar_size: p.narSize,
  };
}

describe('magic-nix-cache (FlakeHub Cache push path)', () => {
  let server: TestServer;
  let gh: TestIssuer;
  const host = () => new URL(server.url).host;
  const project = (jwt: string, suffix = '') =>
    fetch(`${server.url}/project${suffix}`, {
      headers: { 'User-Agent': 'magic-nix-cache', Authorization: basic('flakehub', jwt) },
    });

  beforeAll(async () => {
    server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
    gh = await startIssuer();
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    const t = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
      provider: 'github',
      issuer: gh.issuer,
      ownerId: '1001',
      refs: ['refs/heads/main'],
      scopes: ['read', 'write'],
    });
    expect(t.status).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await server?.cleanup();
    await gh?.stop();
  });

  it('GET /project names the org and project by stable UUIDv7s', async () => {
    const jwt = await gh.mint(githubClaims(), { audience: host() });
    const named = await project(jwt, '/acme/app');
    expect(named.status, await named.clone().text()).toBe(200);
    const a = await named.json();
    expect(a.organization_uuid_v7).toMatch(UUID_V7);
    expect(a.project_uuid_v7).toMatch(UUID_V7);
    // Without a flake name: the job's own org, and its repository as the project.
    const implicit = await (await project(jwt)).json();
    expect(implicit.organization_uuid_v7).toBe(a.organization_uuid_v7);
    expect(implicit.project_name).toBe('acme-gh/app');
    expect(implicit.project_uuid_v7).not.toBe(a.project_uuid_v7);
    // Stable across restarts (and replicas: derived from the rows, stored for the reverse lookup).
    await server.restart();
    const again = await (await project(await gh.mint(githubClaims(), { audience: host() }), '/acme/app')).json();
    expect(again).toEqual(a);
  });

  it('other orgs, untrusted identities and anonymous callers get no project', async () => {
    const jwt = await gh.mint(githubClaims(), { audience: host() });
    expect((await project(jwt, '/other/app')).status).toBe(404);
    const stranger = await gh.mint(githubClaims({ repository_owner_id: '666', repository_owner: 'evil' }), {
      audience: host(),
    });
    expect((await project(stranger, '/acme/app')).status).toBeGreaterThanOrEqual(401);
    expect((await fetch(`${server.url}/project`)).status).toBe(401);
  });

  it('pushes through the Attic API with the raw JWT from five workers at once, then Nix reads with it', async () => {
    const jwt = await gh.mint(githubClaims(), { audience: host() });
    const ids = await (await project(jwt, '/acme/app')).json();
    const cache = `${ids.organization_uuid_v7}:${ids.project_uuid_v7}`;
    // flakehub_cache_server = <floe>/cache: the API endpoint joins to /_api/..., Nix reads /cache.
    const client = new AtticApiClient(`${server.url}/cache`, jwt);
    expect(client.cacheConfigUrl(cache)).toBe(`${server.url}/_api/v1/cache-config/${cache}`);
    const config = await client.getCacheConfig(cache);
    expect(config.status, config.text).toBe(200);
    expect(config.json.substituter_endpoint).toBe(`${server.url}/cache/acme/default`);

    const paths = Array.from({ length: 10 }, (_, i) => fakePath(`mnc-${i}`));
    const missing = await client.getMissingPaths(
      cache,
      paths.map((p) => p.hashPart),
    );
    expect(missing.json.missing_paths.length).toBe(10);
    // num_workers = 5: the same JWT on concurrent first requests must not be taken for a replay.
    const results = await Promise.all(paths.map((p) => client.uploadPath(infoOf(cache, p), p.nar)));
    for (const r of results) expect(r.status, r.text).toBe(200);
    expect(
      (
        await client.getMissingPaths(
          cache,
          paths.map((p) => p.hashPart),
        )
      ).json.missing_paths,
    ).toEqual([]);
    // A long push repeats the same token far past the login rate limit (120 a minute): only
    // exchanges count, not the memoized presentations.
    for (let i = 0; i < 150; i++) expect((await client.getMissingPaths(cache, [paths[0]!.hashPart])).status).toBe(200);

    // nix.conf gets `extra-substituters = <cache server>?trusted=1` and the netrc holding the JWT.
    const narinfo = await fetch(`${server.url}/cache/${paths[0]!.hashPart}.narinfo`, {
      headers: { Authorization: basic('flakehub', jwt) },
    });
    expect(narinfo.status).toBe(200);
    expect(await narinfo.text()).toContain(`StorePath: /nix/store/${paths[0]!.base}`);
  });

  it('an unknown org UUID is a missing cache; a reader-only token cannot push', async () => {
    const client = new AtticApiClient(server.url, (await createToken(server, 'acme', ['read'])).token);
    const r = await client.getCacheConfig('01900000-0000-7000-8000-000000000000:01900000-0000-7000-8000-000000000001');
    expect(r.status).toBe(404);
    const jwt = await gh.mint(githubClaims(), { audience: host() });
    const ids = await (await project(jwt, '/acme/app')).json();
    const p = fakePath('mnc-ro');
    expect(
      (await client.uploadPath(infoOf(`${ids.organization_uuid_v7}:${ids.project_uuid_v7}`, p), p.nar)).status,
    ).toBe(403);
  });

  it('a JWT used for a one-time login stays refused here, and one used here cannot log in again', async () => {
    const login = await gh.mint(githubClaims(), { audience: host() });
    expect((await api(server, undefined, 'POST', '/api/v1/auth/exchange', { token: login })).status).toBe(201);
    expect((await project(login, '/acme/app')).status).toBe(401);
    const raw = await gh.mint(githubClaims(), { audience: host() });
    expect((await project(raw, '/acme/app')).status).toBe(200);
    const replay = await api<{ message: string }>(server, undefined, 'POST', '/api/v1/auth/exchange', { token: raw });
    expect(replay.status).toBe(401);
    expect(replay.body.message).toMatch(/replay/);
  });
});
