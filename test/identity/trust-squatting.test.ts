/**
 * An external identity belongs to one org. An attacker with an org of their own on the same
 * server declares a trust for the victim's GitHub owner, GitLab namespace or AWS account: it waits
 * for the server admin, the victim's CI keeps logging in unchanged (never minted for the attacker's
 * org, not even for a branch the victim's trust does not cover), and refusals tell nothing about
 * other orgs' trusts. Real local issuers (keys, discovery, JWKS) and a real server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { githubClaims, gitlabClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { trustsOverlap, trustSpecSchema } from '../../src/identity/trust.js';

let server: TestServer;
let gh: TestIssuer;
let gl: TestIssuer;
let evilAdmin: string;

async function exchange(token: string, extra: Record<string, unknown> = {}) {
  return api<{ token: string; org: string; message: string }>(server, undefined, 'POST', '/api/v1/auth/exchange', {
    token,
    ...extra,
  });
}

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1', FLOE_OIDC_JWKS_COOLDOWN_MS: '0' } });
  gh = await startIssuer({ defaultAudience: server.url });
  gl = await startIssuer({ defaultAudience: server.url });
  await createOrg(server, 'acme');
  await createOrg(server, 'evil');
  for (const t of [
    { provider: 'github', issuer: gh.issuer, ownerId: '1001', refs: ['refs/heads/main'], scopes: ['read', 'write'] },
    { provider: 'gitlab', issuer: gl.issuer, namespaceId: 42, scopes: ['read', 'write'] },
  ]) {
    const r = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', t);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
  evilAdmin = (
    await api<{ token: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
      org: 'evil',
      scopes: ['admin'],
    })
  ).body.token;
});

afterAll(async () => {
  await server?.cleanup();
  for (const i of [gh, gl]) await i?.stop();
});

describe('trust squatting', () => {
  let pendingId: string;

  it("another org's trust for acme's GitHub owner waits for the server admin and does nothing", async () => {
    // Broader than acme's: any branch. It would catch acme's feature branches.
    const r = await api<{ id: string; status: string; message: string }>(
      server,
      evilAdmin,
      'POST',
      '/api/v1/orgs/evil/trusts',
      { provider: 'github', issuer: gh.issuer, ownerId: '1001', scopes: ['read', 'write'] },
    );
    expect(r.status).toBe(202);
    expect(r.body.status).toBe('pending');
    expect(r.body.message).toMatch(/server admin approves/);
    pendingId = r.body.id;
    // A GitLab namespace and an AWS account are claimed the same way.
    const gitlab = await api<{ status: string }>(server, evilAdmin, 'POST', '/api/v1/orgs/evil/trusts', {
      provider: 'gitlab',
      issuer: gl.issuer,
      namespaceId: '42',
      scopes: ['read'],
    });
    expect(gitlab.body.status).toBe('pending');
    // Another owner is evil's own business.
    const own = await api<{ status: string }>(server, evilAdmin, 'POST', '/api/v1/orgs/evil/trusts', {
      provider: 'github',
      issuer: gh.issuer,
      ownerId: '6666',
      scopes: ['read'],
    });
    expect(own.body.status).toBe('active');
  });

  it("acme's CI logs in unchanged, and a feature branch is refused, never minted for evil", async () => {
    const main = await exchange(await gh.mint(githubClaims()));
    expect(main.status, JSON.stringify(main.body)).toBe(201);
    expect(main.body.org).toBe('acme');
    const branch = await exchange(await gh.mint(githubClaims({ ref: 'refs/heads/feature' })));
    expect(branch.status).toBe(403);
    // acme's own CI learns why from acme's trust; nothing names evil.
    expect(branch.body.message).toMatch(/ref refs\/heads\/feature is not trusted/);
    expect(branch.body.message).not.toMatch(/evil/);
    const gitlab = await exchange(await gl.mint(gitlabClaims()));
    expect(gitlab.body.org).toBe('acme');
  });

  it('naming the org gives evil nothing, and tells the caller nothing about trusts', async () => {
    const named = await exchange(await gh.mint(githubClaims({ ref: 'refs/heads/feature' })), { org: 'evil' });
    expect(named.status).toBe(403);
    expect(named.body.message).toBe('no org on this server trusts this identity in evil');
    // An identity no org claims gets the same words as one whose trusts are all pending.
    const stranger = await exchange(await gh.mint(githubClaims({ repository_owner_id: '999999' })));
    expect(stranger.status).toBe(403);
    expect(stranger.body.message).toBe('no org on this server trusts this identity');
  });

  it('each refusal is recorded in the org it concerns, and not in the other', async () => {
    await exchange(await gh.mint(githubClaims({ ref: 'refs/heads/other-feature' })));
    const acme = await api<{ entries: Array<{ action: string; outcome: string; reason: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/audit?action=auth.login&outcome=deny',
    );
    expect(acme.body.entries.some((e) => /other-feature is not trusted/.test(e.reason))).toBe(true);
    const evil = await api<{ entries: Array<{ reason: string }> }>(
      server,
      evilAdmin,
      'GET',
      '/api/v1/orgs/evil/audit?action=auth.login&outcome=deny',
    );
    expect(evil.body.entries.some((e) => /other-feature/.test(e.reason))).toBe(false);
  });

  it('only the server admin approves an overlap; then every login must name its org', async () => {
    expect((await api(server, evilAdmin, 'POST', `/api/v1/trusts/${pendingId}/approve`)).status).toBe(403);
    const pending = await api<{ trusts: Array<{ id: string; org: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/trusts/pending',
    );
    expect(pending.body.trusts.map((t) => t.id)).toContain(pendingId);
    expect((await api(server, server.adminToken, 'POST', `/api/v1/trusts/${pendingId}/approve`)).status).toBe(200);
    const unnamed = await exchange(await gh.mint(githubClaims()));
    expect(unnamed.status).toBe(400);
    expect(unnamed.body.message).toMatch(/name the org/);
    expect(unnamed.body.message).not.toMatch(/evil|acme/);
    expect((await exchange(await gh.mint(githubClaims()), { org: 'acme' })).body.org).toBe('acme');
    expect((await exchange(await gh.mint(githubClaims({ ref: 'refs/heads/feature' })), { org: 'evil' })).body.org).toBe(
      'evil',
    );
  });
});

describe('trust overlap (pure)', () => {
  const spec = (x: Record<string, unknown>) => trustSpecSchema.parse({ scopes: ['read'], ...x });
  it('is decided by issuer and owner id, and for OIDC by claim conditions that could both hold', () => {
    expect(
      trustsOverlap(
        spec({ provider: 'github', ownerId: '1' }),
        spec({ provider: 'github', ownerId: '1', refs: ['refs/heads/x'] }),
      ),
    ).toBe(true);
    expect(trustsOverlap(spec({ provider: 'github', ownerId: '1' }), spec({ provider: 'github', ownerId: '2' }))).toBe(
      false,
    );
    expect(
      trustsOverlap(
        spec({ provider: 'github', ownerId: '1' }),
        spec({ provider: 'github', ownerId: '1', issuer: 'https://ghe.example.com/_services/token' }),
      ),
    ).toBe(false);
    expect(
      trustsOverlap(
        spec({ provider: 'aws', accountId: '123456789012', arnPatterns: ['arn:aws:iam::123456789012:role/a'] }),
        spec({ provider: 'aws', accountId: '123456789012', arnPatterns: ['arn:aws:iam::123456789012:role/b'] }),
      ),
    ).toBe(true);
    const oidc = (claims: Record<string, unknown>) =>
      spec({ provider: 'oidc', issuer: 'https://login.example.com/t/v2.0', claims });
    expect(trustsOverlap(oidc({ tid: 'a' }), oidc({ tid: 'b' }))).toBe(false);
    expect(trustsOverlap(oidc({ tid: 'a' }), oidc({ tid: ['b', 'a'] }))).toBe(true);
    expect(trustsOverlap(oidc({ tid: 'a' }), oidc({ groups: 'g' }))).toBe(true);
  });
});
