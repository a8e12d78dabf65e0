/**
 * Slices are a ceiling on administration: an admin token limited to some slices administers those
 * slices only. Each refused case here is an escape that worked before (a slice-limited admin made
 * a slice public, minted a deploy token reading every slice, added an unlimited trust, followed,
 * trusted and rotated keys org-wide).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';

let server: TestServer;
let team: string; // admin of acme, limited to slices team and team-ci

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  await createOrg(server, 'other');
  for (const name of ['team', 'team-ci', 'secret'])
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name })).status).toBe(201);
  expect(
    (await api(server, server.adminToken, 'POST', '/api/v1/orgs/other/slices', { name: 'oss', public: true })).status,
  ).toBe(201);
  team = (await createToken(server, 'acme', ['admin'], { slices: ['team', 'team-ci'] })).token;
});
afterAll(async () => {
  await server?.cleanup();
});

const refusedOrgWide = (r: { status: number; body: unknown }) => {
  expect(r.status).toBe(403);
  expect((r.body as { message: string }).message).toMatch(
    /token is limited to slices team, team-ci: org-wide administration .* needs a token not limited to slices/,
  );
};

describe('a slice-limited admin token', () => {
  it('administers its own slices: visibility, view settings, trusts between them, tokens limited to them', async () => {
    expect(
      (await api(server, team, 'PATCH', '/api/v1/orgs/acme/slices/team', { public: true, inView: true, priority: 3 }))
        .status,
    ).toBe(200);
    expect((await api(server, team, 'POST', '/api/v1/orgs/acme/slices/team/trusts', { from: 'team-ci' })).status).toBe(
      201,
    );
    expect((await api(server, team, 'DELETE', '/api/v1/orgs/acme/slices/team/trusts/team-ci')).status).toBe(200);
    const minted = await api<{ id: string; slices: string[] }>(server, team, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read', 'write'],
      slices: ['team-ci'],
      ttl: '1h',
    });
    expect(minted.status).toBe(201);
    expect(minted.body.slices).toEqual(['team-ci']);
    expect((await api(server, team, 'DELETE', `/api/v1/tokens/${minted.body.id}`)).status).toBe(200);
  });

  it("cannot touch the org's other slices", async () => {
    const pub = await api<{ message: string }>(server, team, 'PATCH', '/api/v1/orgs/acme/slices/secret', {
      public: true,
    });
    expect(pub.status).toBe(403);
    expect(pub.body.message).toMatch(/limited to slices team, team-ci: it cannot administer secret/);
    // Trusting a slice outside its own (in either direction) would let paths flow across the ceiling.
    expect((await api(server, team, 'POST', '/api/v1/orgs/acme/slices/team/trusts', { from: 'secret' })).status).toBe(
      403,
    );
    expect((await api(server, team, 'POST', '/api/v1/orgs/acme/slices/secret/trusts', { from: 'team' })).status).toBe(
      403,
    );
    expect(
      (
        await api(server, team, 'POST', '/api/v1/tokens', {
          org: 'acme',
          scopes: ['read'],
          slices: ['team', 'secret'],
          ttl: '1h',
        })
      ).status,
    ).toBe(403);
    // A token of the whole org, made by the server admin, is not this admin's to revoke.
    const wide = await createToken(server, 'acme', ['read']);
    expect((await api(server, team, 'DELETE', `/api/v1/tokens/${wide.id}`)).status).toBe(403);
    const slices = await api<{ slices: Array<{ name: string; public: boolean }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme',
    );
    expect(slices.body.slices.find((s) => s.name === 'secret')!.public).toBe(false);
  });

  it('mints no unlimited and no deploy-only token (a deploy token reads closures in every slice)', async () => {
    refusedOrgWide(await api(server, team, 'POST', '/api/v1/tokens', { org: 'acme', scopes: ['read'], ttl: '1h' }));
    refusedOrgWide(
      await api(server, team, 'POST', '/api/v1/tokens', {
        org: 'acme',
        scopes: ['read'],
        slices: ['team'],
        deploy: ['acme/app/*#packages.x86_64-linux.default'],
        ttl: '1h',
      }),
    );
  });

  it('does nothing org-wide: trusts, follows, keys, policies, signers, members, settings, pins', async () => {
    const trust = { provider: 'github', owner: 'acme-gh', ownerId: '1', scopes: ['admin'] };
    refusedOrgWide(await api(server, team, 'POST', '/api/v1/orgs/acme/trusts', trust));
    refusedOrgWide(await api(server, team, 'GET', '/api/v1/orgs/acme/trusts'));
    refusedOrgWide(await api(server, team, 'POST', '/api/v1/orgs/acme/follows', { org: 'other', slice: 'oss' }));
    refusedOrgWide(await api(server, team, 'POST', '/api/v1/orgs/acme/keys/rotate'));
    refusedOrgWide(
      await api(server, team, 'PUT', '/api/v1/orgs/acme/policies', {
        source: '@id("x")\npermit (principal, action, resource);',
      }),
    );
    refusedOrgWide(await api(server, team, 'POST', '/api/v1/orgs/acme/signers', { name: 'k', publicKey: 'k:AAAA' }));
    refusedOrgWide(await api(server, team, 'GET', '/api/v1/orgs/acme/tokens'));
    refusedOrgWide(await api(server, team, 'POST', '/api/v1/orgs/acme/tokens/revoke', { subject: 'x' }));
    refusedOrgWide(await api(server, team, 'POST', '/api/v1/orgs/acme/slices', { name: 'mine' }));
    refusedOrgWide(await api(server, team, 'PATCH', '/api/v1/orgs/acme/settings', { retention: '1d' }));
    refusedOrgWide(await api(server, team, 'GET', '/api/v1/orgs/acme/audit'));
    // Nothing of it happened.
    expect(
      (await api<{ trusts: unknown[] }>(server, server.adminToken, 'GET', '/api/v1/orgs/acme/trusts')).body.trusts,
    ).toEqual([]);
    expect(
      (await api<{ follows: unknown[] }>(server, server.adminToken, 'GET', '/api/v1/orgs/acme/sources')).body.follows,
    ).toEqual([]);
    expect(
      (await api<{ keys: unknown[] }>(server, server.adminToken, 'GET', '/api/v1/orgs/acme/keys')).body.keys,
    ).toHaveLength(1);
  });

  it('an unlimited admin of the org still does all of it', async () => {
    const full = (await createToken(server, 'acme', ['admin'])).token;
    expect((await api(server, full, 'PATCH', '/api/v1/orgs/acme/slices/secret', { inView: true })).status).toBe(200);
    expect((await api(server, full, 'POST', '/api/v1/orgs/acme/follows', { org: 'other', slice: 'oss' })).status).toBe(
      201,
    );
    expect(
      (
        await api(server, full, 'POST', '/api/v1/tokens', {
          org: 'acme',
          scopes: ['read'],
          deploy: ['acme/app/*#packages.x86_64-linux.default'],
          ttl: '1h',
        })
      ).status,
    ).toBe(201);
  });
});
