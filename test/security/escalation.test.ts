/**
 * No way to turn a token into a bigger one, or to make the server act for an attacker: found in a
 * security review and fixed. Each case is an attack that worked before.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { CookieJar, webClient } from '../helpers/web-client.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { safeReturnTo } from '../../src/web/session.js';

let server: TestServer;
const { get, post } = webClient(() => server);

const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.slice(5).split('.')[1]!, 'base64url').toString()) as {
    floe: { deploy?: unknown; net?: { cidrs: string[]; countries: string[] } };
  };

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  await createOrg(server, 'beta');
  expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'private' })).status).toBe(
    201,
  );
});
afterAll(async () => {
  await server?.cleanup();
});

async function tokenSignIn(token: string): Promise<{ status: number; location: string; jar: CookieJar }> {
  const jar = new CookieJar();
  await get(jar, '/login');
  const res = await post(jar, '/login/token', { _csrf: jar.csrf, token, return: '/' });
  return { status: res.status, location: res.headers.get('location') ?? '', jar };
}

describe('privilege escalation', () => {
  it('a deploy-only device token cannot become a web session (and so a full read token)', async () => {
    const device = await api<{ token: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      deploy: ['acme/app/*#packages.x86_64-linux.default'],
    });
    const r = await tokenSignIn(device.body.token);
    expect(r.location).toMatch(/^\/login\?error=.*deploy-only/);
    expect(r.jar.cookies.get('floe_session')).toBeUndefined();
  });

  it("a network-limited token's web session keeps its limits", async () => {
    const limited = await api<{ token: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read', 'admin'],
      cidrs: ['127.0.0.1/32'],
    });
    const r = await tokenSignIn(limited.body.token);
    expect(r.status).toBe(303);
    expect(claimsOf(r.jar.cookies.get('floe_session')!).floe.net).toEqual({ cidrs: ['127.0.0.1/32'], countries: [] });
  });

  it('a network-limited admin token mints only tokens as limited (or narrower)', async () => {
    const limited = (
      await api<{ token: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
        org: 'acme',
        scopes: ['admin'],
        cidrs: ['127.0.0.0/8'],
        ttl: '1h',
      })
    ).body.token;
    const inherited = await api<{ token: string; network: unknown }>(server, limited, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['admin'],
      ttl: '30m',
    });
    expect(inherited.status).toBe(201);
    expect(inherited.body.network).toEqual({ cidrs: ['127.0.0.0/8'], countries: [] });
    const narrower = await api<{ network: unknown }>(server, limited, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      cidrs: ['127.0.0.1/32'],
    });
    expect(narrower.body.network).toEqual({ cidrs: ['127.0.0.1/32'], countries: [] });
    const wider = await api<{ message: string }>(server, limited, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['admin'],
      cidrs: ['0.0.0.0/0'],
    });
    expect(wider.status).toBe(403);
    expect(wider.body.message).toMatch(/limited to 127\.0\.0\.0\/8: a token you create cannot reach further/);
  });
});

describe('the server does not act for an attacker', () => {
  it('a forged login cookie naming an unconfigured issuer is refused without contacting it', async () => {
    let contacted = false;
    const { createServer } = await import('node:http');
    const idp = createServer((_req, res) => {
      contacted = true;
      res.end('{}');
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (idp.address() as { port: number }).port;
      const pending = {
        state: 's1',
        verifier: 'v',
        nonce: 'n',
        org: 'acme',
        issuer: `http://127.0.0.1:${port}`,
        clientId: 'x',
        returnTo: '/',
      };
      const res = await fetch(`${server.url}/login/callback?state=s1&code=abc`, {
        headers: { Cookie: `floe_login=${Buffer.from(JSON.stringify(pending)).toString('base64url')}` },
        redirect: 'manual',
      });
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toMatch(/no%20longer%20exists/);
      expect(contacted).toBe(false);
    } finally {
      idp.close();
    }
  });

  it('return paths stay on this site, whatever a browser would strip or fold', () => {
    for (const bad of [
      '//evil.example',
      '/\\evil.example',
      '/\t/evil.example',
      '/\n/evil.example',
      '/%09/evil.example'.replace('%09', '\t'),
      'https://evil.example',
      '/a\\b',
    ])
      expect(safeReturnTo(bad)).toBe('/');
    expect(safeReturnTo('/flakes/acme/hello?x=1')).toBe('/flakes/acme/hello?x=1');
  });
});

describe('denied = missing, and no amplification', () => {
  it("another org's or a private slice URL looks like no cache at all", async () => {
    const other = await createToken(server, 'beta', ['read', 'write']);
    const reader = await createToken(server, 'acme', ['read']);
    const status = async (auth?: string) =>
      (
        await fetch(
          `${server.url}/cache/acme/private/nix-cache-info`,
          auth ? { headers: { Authorization: basicAuth(auth) } } : {},
        )
      ).status;
    expect(await status()).toBe(404);
    expect(await status(other.token)).toBe(404);
    expect(await status(reader.token)).toBe(200);
    expect((await fetch(`${server.url}/cache/acme/nope/nix-cache-info`)).status).toBe(404);
  });

  it('an upload listing the same reference many times is refused before any work', async () => {
    const writer = (await createToken(server, 'acme', ['read', 'write'])).token;
    const dep = fakePath('dep');
    expect((await nixStyleUpload(`${server.url}/cache`, basicAuth(writer), dep)).narinfo).toBe(201);
    const top = fakePath('top');
    // The batch API takes a JSON references list (up to 50,000), unlike a narinfo, whose parser
    // already refuses duplicates.
    const meta = {
      storePath: `/nix/store/${top.base}`,
      narHash: top.narHash,
      narSize: top.narSize,
      references: Array.from({ length: 1000 }, () => `/nix/store/${dep.base}`),
    };
    const res = await fetch(`${server.url}/api/v1/cache/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${writer}` },
      body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), top.nar])),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/listed more than once/);
  });
});
