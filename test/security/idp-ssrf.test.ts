/**
 * An org's OIDC trust cannot turn the server into a probe of its own network: the issuer (and the
 * endpoints its discovery document names) must be https and resolve to public addresses, checked
 * after DNS and pinned; what a fetch met (status, error, body) is never told to the caller.
 * Before, the anonymous web sign-in fetched any issuer URL (http, loopback, internal; `?` made it
 * any path) and echoed the status and the first bytes of the answer.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { CookieJar, webClient } from '../helpers/web-client.js';

const SECRET = 'INTERNAL-ONLY-7f3a';
let probe: Server;
let probePort = 0;
const hits: string[] = [];
/** Answers like an internal service; as the issuer's discovery when asked for it (with bad endpoints). */
let discovery: Record<string, unknown> | undefined;

let strict: TestServer; // production rules
let dev: TestServer; // FLOE_OIDC_ALLOW_HTTP_ISSUERS=1: http and loopback allowed, nothing else internal

beforeAll(async () => {
  probe = createServer((req, res) => {
    hits.push(req.url ?? '');
    if (discovery && req.url?.endsWith('/.well-known/openid-configuration')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(discovery));
      return;
    }
    res.writeHead(500, { 'content-type': 'text/plain' }).end(`${SECRET} internal admin console`);
  });
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  probePort = (probe.address() as AddressInfo).port;
  strict = await startFloe();
  dev = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
  for (const s of [strict, dev]) await createOrg(s, 'acme');
});
afterAll(async () => {
  await strict?.cleanup();
  await dev?.cleanup();
  await new Promise((r) => probe?.close(r));
});

async function addTrust(server: TestServer, issuer: string) {
  return api<{ message: string }>(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'oidc',
    issuer,
    clientId: 'floe-web',
    claims: { sub: 'someone' },
    scopes: ['read'],
  });
}

/** Starts a web sign-in as an anonymous visitor; returns where the server sent the browser. */
async function startSignIn(server: TestServer, issuer: string): Promise<{ location: string; jar: CookieJar }> {
  const { get, post } = webClient(() => server);
  const jar = new CookieJar();
  await get(jar, '/login');
  const res = await post(jar, '/login/start', { _csrf: jar.csrf, org: 'acme', issuer, return: '/' });
  expect(res.status).toBe(303);
  return { location: decodeURIComponent(res.headers.get('location') ?? ''), jar };
}

/** The reason goes to the server's log (read from its output, which arrives a moment later). */
async function logged(server: TestServer, re: RegExp): Promise<void> {
  for (let i = 0; i < 100 && !re.test(server.logs()); i++) await new Promise((r) => setTimeout(r, 50));
  expect(server.logs()).toMatch(re);
}

const unsignedJwt = (iss: string) =>
  `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss, sub: 'someone', aud: 'x', exp: 9999999999, iat: 1 })).toString('base64url')}.c2ln`;

describe('OIDC issuers and SSRF', () => {
  it('refuses issuer URLs with a query or fragment when the trust is added', async () => {
    for (const issuer of [
      `https://169.254.169.254/latest/meta-data/iam?`,
      'https://idp.example.com/x?a=b',
      'https://idp.example.com/x#frag',
    ]) {
      const r = await addTrust(strict, issuer);
      expect(r.status).toBe(400);
      expect(r.body.message).toMatch(/issuer URL may not have a (query|fragment)/);
    }
  });

  it('without the test flag: no http, no loopback (by address or by name), nothing fetched, nothing reflected', async () => {
    for (const issuer of [
      `http://127.0.0.1:${probePort}/realm`,
      `https://127.0.0.1:${probePort}/realm`,
      `https://localhost:${probePort}/realm`,
    ]) {
      expect((await addTrust(strict, issuer)).status).toBe(201);
      const before = hits.length;
      const { location } = await startSignIn(strict, issuer);
      expect(location).toBe('/login?error=the identity provider could not be reached');
      // The CI exchange path refuses alike, and says no more.
      const ex = await api<{ message: string }>(strict, undefined, 'POST', '/api/v1/auth/exchange', {
        token: unsignedJwt(issuer),
      });
      expect(ex.status).toBe(401);
      // The issuer's own URL is echoed; only what lies beyond it would tell something (its port
      // may contain "500", so the status is matched as a word, outside the URL).
      expect(ex.body.message.replace(issuer, '<issuer>')).not.toMatch(/HTTP|ECONN|not https|public address|\b500\b/);
      expect(hits.length).toBe(before); // not even a connection attempt reached the probe
    }
    await logged(strict, /identity provider unusable/);
    await logged(strict, /not a public address|not https/);
  });

  it('with the flag: loopback is reachable, but the answer never reaches the caller', async () => {
    const issuer = `http://127.0.0.1:${probePort}/leaky`;
    expect((await addTrust(dev, issuer)).status).toBe(201);
    const before = hits.length;
    const { location } = await startSignIn(dev, issuer);
    expect(hits.length).toBe(before + 1);
    expect(location).toBe('/login?error=the identity provider could not be reached');
    expect(location).not.toContain(SECRET);
    const page = await (await fetch(`${dev.url}${location}`)).text();
    expect(page).not.toContain(SECRET);
    expect(page).not.toMatch(/HTTP 500/);
    const ex = await api<{ message: string }>(dev, undefined, 'POST', '/api/v1/auth/exchange', {
      token: unsignedJwt(issuer),
    });
    expect(ex.status).toBe(401);
    expect(ex.body.message).not.toContain(SECRET);
    expect(ex.body.message).not.toMatch(/HTTP 500/);
  });

  it("with the flag: a discovery document's token endpoint on an internal address is not fetched", async () => {
    const issuer = `http://127.0.0.1:${probePort}/evil-idp`;
    discovery = {
      issuer,
      authorization_endpoint: `http://127.0.0.1:${probePort}/authorize`,
      token_endpoint: 'http://169.254.169.254/latest/meta-data/',
      jwks_uri: 'http://10.0.0.1/keys',
    };
    try {
      expect((await addTrust(dev, issuer)).status).toBe(201);
      const { location, jar } = await startSignIn(dev, issuer);
      expect(location.startsWith(`http://127.0.0.1:${probePort}/authorize?`)).toBe(true);
      const state = new URL(location).searchParams.get('state')!;
      const { get } = webClient(() => dev);
      const started = Date.now();
      const cb = await get(jar, `/login/callback?state=${encodeURIComponent(state)}&code=abc`);
      expect(cb.status).toBe(303);
      expect(decodeURIComponent(cb.headers.get('location') ?? '')).toBe(
        '/login?error=the identity provider could not be reached',
      );
      // Refused before connecting (a connection to the metadata address would hang until the timeout).
      expect(Date.now() - started).toBeLessThan(5_000);
      await logged(dev, /169\.254\.169\.254 .*not a public address/);
      // And the JWKS of that issuer is never fetched from 10.0.0.1 either.
      const ex = await api<{ message: string }>(dev, undefined, 'POST', '/api/v1/auth/exchange', {
        token: unsignedJwt(issuer),
      });
      expect(ex.status).toBe(401);
      expect(ex.body.message).not.toMatch(/10\.0\.0\.1|ETIMEDOUT|ECONN/);
    } finally {
      discovery = undefined;
    }
  }, 30_000);
});
