/**
 * Federated identity over HTTP against a real server: GitHub Actions, GitLab CI and Entra-shaped
 * tokens from local issuers (real keys, discovery, JWKS) are exchanged for Floe tokens, and every
 * attack from the identity reference is refused with a clear error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { entraClaims, githubClaims, gitlabClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

const TENANT = '9a1b2c3d-0000-4000-8000-00000000abcd';
let server: TestServer;
let gh: TestIssuer;
let gl: TestIssuer;
let entra: TestIssuer;
let stranger: TestIssuer;
let audience: string;

async function exchange(token: string, extra: Record<string, unknown> = {}) {
  return api<{ token: string; org: string; scopes: string[]; subject: string; message: string; expiresAt: string }>(
    server,
    undefined,
    'POST',
    '/api/v1/auth/exchange',
    { token, ...extra },
  );
}

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1', FLOE_OIDC_JWKS_COOLDOWN_MS: '0' } });
  audience = server.url;
  gh = await startIssuer({ defaultAudience: audience });
  gl = await startIssuer({ defaultAudience: audience });
  entra = await startIssuer({ pathPrefix: `/${TENANT}/v2.0`, defaultAudience: 'api://floe' });
  stranger = await startIssuer({ defaultAudience: audience });
  await createOrg(server, 'acme');
  await createOrg(server, 'other');
  const admin = server.adminToken;
  const trusts = [
    {
      provider: 'github',
      issuer: gh.issuer,
      ownerId: '1001',
      refs: ['refs/heads/main'],
      scopes: ['read', 'write'],
      ttlSeconds: 1800,
    },
    { provider: 'gitlab', issuer: gl.issuer, namespaceId: 42, scopes: ['read', 'write'] },
    {
      provider: 'oidc',
      issuer: entra.issuer,
      audience: 'api://floe',
      claims: { tid: TENANT, groups: 'aaaaaaaa-0000-0000-0000-000000000002' },
      scopes: ['read'],
    },
  ];
  for (const t of trusts) {
    const r = await api(server, admin, 'POST', '/api/v1/orgs/acme/trusts', t);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
});

afterAll(async () => {
  await server?.cleanup();
  for (const i of [gh, gl, entra, stranger]) await i?.stop();
});

describe('exchange', () => {
  it('GitHub Actions: a push to main gets a short-lived write token with its claims', async () => {
    const r = await exchange(await gh.mint(githubClaims()));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body).toMatchObject({
      org: 'acme',
      scopes: ['read', 'write'],
      subject: 'github:acme-gh/app@2002:refs/heads/main',
    });
    const ttl = (Date.parse(r.body.expiresAt) - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(1700);
    expect(ttl).toBeLessThanOrEqual(1800);
    const who = await api<{ org: string; identity: { provider: string; claims: Record<string, string> } }>(
      server,
      r.body.token,
      'GET',
      '/api/v1/auth/whoami',
    );
    expect(who.body.org).toBe('acme');
    expect(who.body.identity.provider).toBe('github');
    expect(who.body.identity.claims).toMatchObject({
      repository_id: '2002',
      repository_owner_id: '1001',
      event_name: 'push',
    });
    const res = await fetch(`${server.url}/cache/nix-cache-info`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(r.body.token) },
      body: 'StoreDir: /nix/store\n',
    });
    expect(res.status).toBe(204);
  });

  it('GitLab CI: a protected branch pipeline is trusted', async () => {
    const r = await exchange(await gl.mint(gitlabClaims()));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.subject).toBe('gitlab:acme-gl/app@4242:main');
  });

  it('Entra ID (any OIDC provider): tenant and group decide, with its own audience', async () => {
    const r = await exchange(await entra.mint(entraClaims(TENANT)));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.scopes).toEqual(['read']);
    const wrongGroup = await exchange(
      await entra.mint(entraClaims(TENANT, { groups: ['aaaaaaaa-0000-0000-0000-000000000009'] })),
    );
    expect(wrongGroup.status).toBe(403);
    const wrongTenant = await exchange(await entra.mint(entraClaims('00000000-0000-0000-0000-000000000000')));
    expect(wrongTenant.status).toBe(403);
  });

  it('GitHub Enterprise Server and self-hosted GitLab: their own issuers', async () => {
    const ghes = await startIssuer({ pathPrefix: '/_services/token', defaultAudience: audience });
    const gitlabSelf = await startIssuer({ pathPrefix: '/gitlab', defaultAudience: audience });
    try {
      await createOrg(server, 'enterprise');
      expect(
        (
          await api(server, server.adminToken, 'POST', '/api/v1/orgs/enterprise/trusts', {
            provider: 'github',
            issuer: ghes.issuer,
            ownerId: '7',
            scopes: ['read'],
          })
        ).status,
      ).toBe(201);
      expect(
        (
          await api(server, server.adminToken, 'POST', '/api/v1/orgs/enterprise/trusts', {
            provider: 'gitlab',
            issuer: gitlabSelf.issuer,
            namespaceId: '8',
            scopes: ['read'],
          })
        ).status,
      ).toBe(201);
      const a = await exchange(await ghes.mint(githubClaims({ repository_owner_id: '7' })));
      expect(a.status, JSON.stringify(a.body)).toBe(201);
      expect(a.body.org).toBe('enterprise');
      const b = await exchange(await gitlabSelf.mint(gitlabClaims({ namespace_id: '8' })));
      expect(b.status, JSON.stringify(b.body)).toBe(201);
      // The same owner id from github.com's issuer is another identity entirely.
      expect((await exchange(await gh.mint(githubClaims({ repository_owner_id: '7' })))).status).toBe(403);
    } finally {
      await ghes.stop();
      await gitlabSelf.stop();
    }
  });

  it('a renamed repository keeps working: ids are what count', async () => {
    const r = await exchange(
      await gh.mint(githubClaims({ repository: 'acme-renamed/app2', repository_owner: 'acme-renamed' })),
    );
    expect(r.status).toBe(201);
  });

  it('follows the issuer through key rotation', async () => {
    const kid = await gh.rotate();
    const r = await exchange(await gh.mint(githubClaims(), { kid }));
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  });
});

describe('refused, each with a clear error', () => {
  const refused = async (
    token: string | Promise<string>,
    status: number,
    message: RegExp,
    extra: Record<string, unknown> = {},
  ) => {
    const r = await exchange(await token, extra);
    expect(r.status, JSON.stringify(r.body)).toBe(status);
    expect(r.body.message).toMatch(message);
  };

  it('wrong or missing audience (e.g. GitHub default audience)', async () => {
    await refused(gh.mint(githubClaims(), { audience: 'https://github.com/acme-gh' }), 401, /wrong audience/);
    await refused(gh.mint(githubClaims(), { audience: [] }), 401, /audience/);
  });
  it('untrusted issuer, and a lookalike of a trusted one', async () => {
    await refused(stranger.mint(githubClaims()), 401, /not trusted by any org/);
    await refused(
      stranger.mint(githubClaims(), { issuer: `${gh.issuer}.evil.example` }),
      401,
      /not trusted by any org/,
    );
  });
  it('expired, not yet valid, issued in the future', async () => {
    await refused(gh.mint(githubClaims(), { iat: -900, nbf: -900, exp: -600 }), 401, /expired/);
    await refused(gh.mint(githubClaims(), { nbf: 600 }), 401, /not yet valid/);
    await refused(gh.mint(githubClaims(), { iat: 600, nbf: undefined, exp: 900 }), 401, /future|not yet valid/);
  });
  it('alg none and HS256 signed with the public key', async () => {
    await refused(gh.forgeNone(githubClaims()), 401, /algorithm|malformed/);
    await refused(gh.forgeHs256WithPublicKey(githubClaims()), 401, /algorithm/);
  });
  it('a key the issuer does not publish, even after a JWKS refresh', async () => {
    await refused(gh.mint(githubClaims(), { unpublishedKey: true }), 401, /key the issuer does not publish/);
  });
  it('a replayed token', async () => {
    const token = await gh.mint(githubClaims());
    expect((await exchange(token)).status).toBe(201);
    await refused(token, 401, /already exchanged/);
  });
  it('pull_request_target and other workflows that run untrusted code', async () => {
    for (const event_name of ['pull_request_target', 'workflow_run', 'issue_comment', 'pull_request']) {
      await refused(gh.mint(githubClaims({ event_name })), 403, new RegExp(event_name));
    }
  });
  it('a renamed-and-re-registered owner: same names, new ids', async () => {
    // No org claims owner 666: the refusal says nothing about any org's trusts.
    await refused(
      gh.mint(githubClaims({ repository_owner_id: '666', repository_id: '667' })),
      403,
      /^no org on this server trusts this identity$/,
    );
  });
  it('other branches, self-hosted runners', async () => {
    await refused(gh.mint(githubClaims({ ref: 'refs/heads/feature' })), 403, /ref refs\/heads\/feature/);
    await refused(gh.mint(githubClaims({ runner_environment: 'self-hosted' })), 403, /self-hosted/);
  });
  it('GitLab: unprotected refs, merge-request pipelines and fork pipelines', async () => {
    await refused(gl.mint(gitlabClaims({ ref_protected: 'false' })), 403, /protected refs/);
    await refused(gl.mint(gitlabClaims({ pipeline_source: 'merge_request_event' })), 403, /merge request/);
    await refused(gl.mint(gitlabClaims({ job_project_id: '4242', project_id: '9999' })), 403, /fork/);
    await refused(gl.mint(gitlabClaims({ namespace_id: '43' })), 403, /^no org on this server trusts this identity$/);
  });
  it('an org filter that does not trust the identity', async () => {
    await refused(gh.mint(githubClaims()), 403, /^no org on this server trusts this identity in other$/, {
      org: 'other',
    });
  });
  it('garbage', async () => {
    await refused('not-a-jwt', 401, /not a JWT/);
  });
});

describe('trusts and tokens management', () => {
  it('refuses trusts that would trust too much', async () => {
    const noOwner = await api<{ message: string }>(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
      provider: 'github',
      scopes: ['write'],
    });
    expect(noOwner.status).toBe(400);
    expect(noOwner.body.message).toMatch(/ownerId/);
    const noClaims = await api<{ message: string }>(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
      provider: 'oidc',
      issuer: 'https://idp.example.com',
      claims: {},
      scopes: ['read'],
    });
    expect(noClaims.status).toBe(400);
    expect(noClaims.body.message).toMatch(/at least one claim/);
    const outsider = await api(server, undefined, 'POST', '/api/v1/orgs/acme/trusts', {
      provider: 'github',
      ownerId: '1',
      scopes: ['admin'],
    });
    expect(outsider.status).toBe(403);
  });

  it('lists tokens and revokes all of a subject at once', async () => {
    const a = await exchange(await gh.mint(githubClaims({ ref: 'refs/heads/main' })));
    const subject = a.body.subject;
    const list = await api<{ tokens: Array<{ subject: string }> }>(
      server,
      server.adminToken,
      'GET',
      `/api/v1/orgs/acme/tokens?subject=${encodeURIComponent(subject)}`,
    );
    expect(list.body.tokens.length).toBeGreaterThan(0);
    expect(list.body.tokens.every((t) => t.subject === subject)).toBe(true);
    const revoked = await api<{ revoked: number }>(
      server,
      server.adminToken,
      'POST',
      '/api/v1/orgs/acme/tokens/revoke',
      { subject },
    );
    expect(revoked.body.revoked).toBe(list.body.tokens.length);
    expect((await api(server, a.body.token, 'GET', '/api/v1/auth/whoami')).status).toBe(401);
  });
});
