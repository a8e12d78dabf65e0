/**
 * A token never outlives the token (or web session) that created it, the server admin excepted:
 * a one-hour CI admin token or an eight-hour web session used to mint 366-day tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { webClient } from '../helpers/web-client.js';

let server: TestServer;
const { get, post, signedIn } = webClient(() => server);

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
});
afterAll(async () => {
  await server?.cleanup();
});

const expiryOf = async (token: string) =>
  new Date((await api<{ expiresAt: string }>(server, token, 'GET', '/api/v1/auth/whoami')).body.expiresAt).getTime();

describe('token lifetimes', () => {
  it('through the API: a one-hour admin token cannot mint a longer-lived one, and its default is shortened', async () => {
    const ci = (await createToken(server, 'acme', ['admin'], { ttl: '1h' })).token;
    const ciExpiry = await expiryOf(ci);
    const long = await api<{ message: string }>(server, ci, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      ttl: '366d',
    });
    expect(long.status).toBe(403);
    expect(long.body.message).toMatch(/your token expires at .*: a token you create cannot outlive it/);
    const justOver = await api(server, ci, 'POST', '/api/v1/tokens', { org: 'acme', scopes: ['read'], ttl: '61m' });
    expect(justOver.status).toBe(403);
    const shorter = await api<{ expiresAt: string }>(server, ci, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      ttl: '30m',
    });
    expect(shorter.status).toBe(201);
    // No ttl: the default (24h) ends with the creator.
    const dflt = await api<{ token: string; expiresAt: string }>(server, ci, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['admin'],
    });
    expect(dflt.status).toBe(201);
    expect(new Date(dflt.body.expiresAt).getTime()).toBeLessThanOrEqual(ciExpiry);
    // And a child cannot extend the chain either.
    expect(
      (await api(server, dflt.body.token, 'POST', '/api/v1/tokens', { org: 'acme', scopes: ['read'], ttl: '2h' }))
        .status,
    ).toBe(403);
  });

  it('the server admin is not bounded', async () => {
    const r = await api<{ expiresAt: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      ttl: '366d',
    });
    expect(r.status).toBe(201);
    expect(new Date(r.body.expiresAt).getTime()).toBeGreaterThan(Date.now() + 365 * 86400_000);
  });

  it("through the web: a session's token form creates tokens that end with the session at the latest", async () => {
    const admin = (await createToken(server, 'acme', ['admin'], { ttl: '2h' })).token;
    const adminExpiry = await expiryOf(admin);
    const jar = await signedIn(admin);
    await get(jar, '/manage/acme/tokens');
    const res = await post(jar, '/manage/acme/tokens', {
      _csrf: jar.csrf,
      name: 'web-long',
      kind: 'api',
      scopes: 'read',
      slices: '*',
      ttl: '365d',
    });
    expect(res.status).toBe(201);
    const listed = await api<{ tokens: Array<{ subject: string; expiresAt: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/tokens?subject=token:web-long',
    );
    expect(listed.body.tokens).toHaveLength(1);
    const expires = new Date(listed.body.tokens[0]!.expiresAt).getTime();
    // The session ends no later than the pasted token (≤ 8 h in any case), and so does its token.
    expect(expires).toBeLessThanOrEqual(adminExpiry);
    expect(expires).toBeLessThanOrEqual(Date.now() + 8 * 3600_000);
    expect(await res.text()).toContain(new Date(expires).toISOString().slice(0, 16));
  });
});
