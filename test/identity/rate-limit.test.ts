/** Logins and identity exchanges are rate limited per client address, with a Retry-After. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFloe, type TestServer } from '../helpers/server.js';

let server: TestServer;

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_AUTH_RATE_LIMIT: '3', FLOE_TRUSTED_PROXIES: 'loopback' } });
});
afterAll(async () => {
  await server?.cleanup();
});

const exchange = (from: string) =>
  fetch(`${server.url}/api/v1/auth/exchange`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Forwarded-For': from },
    body: JSON.stringify({ token: 'a.b.c' }),
  });

describe('login rate limit', () => {
  it('refuses the attempt past the limit with 429 and Retry-After, per client address', async () => {
    for (let i = 0; i < 3; i++) expect((await exchange('203.0.113.7')).status).not.toBe(429);
    const limited = await exchange('203.0.113.7');
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited.json()) as { message: string }).message).toMatch(
      /too many login attempts from your address; try again in \d+ s/,
    );
    // Another client is not affected, nor is anything but logins.
    expect((await exchange('203.0.113.8')).status).not.toBe(429);
    expect(
      (await fetch(`${server.url}/cache/nix-cache-info`, { headers: { 'X-Forwarded-For': '203.0.113.7' } })).status,
    ).toBe(200);
    expect(
      (await fetch(`${server.url}/api/v1/auth/info`, { headers: { 'X-Forwarded-For': '203.0.113.7' } })).status,
    ).toBe(200);
  });

  it('a raw CI token as the Basic password on /cache counts as a login: the same limit per address', async () => {
    // magic-nix-cache and flakehub-push send the JWT itself; each new one is traded at the IdP.
    const read = (from: string, i: number) =>
      fetch(`${server.url}/cache/nix-cache-info`, {
        headers: {
          Authorization: `Basic ${Buffer.from(`ci:eyJhbGciOiJSUzI1NiJ9.eyJpIjo${i}fQ.c2ln`).toString('base64')}`,
          'X-Forwarded-For': from,
        },
      });
    for (let i = 0; i < 3; i++) {
      const res = await read('203.0.113.20', i);
      expect(res.status, await res.text()).toBe(400); // not a token anyone issued: refused, not rate limited
    }
    const limited = await read('203.0.113.20', 3);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await limited.text()).toMatch(/too many login attempts from your address/);
    // The exchange endpoint shares the count; another address does not.
    expect((await exchange('203.0.113.20')).status).toBe(429);
    expect((await read('203.0.113.21', 4)).status).toBe(400);
  });
});
