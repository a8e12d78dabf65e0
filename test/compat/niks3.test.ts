/**
 * niks3's self-configuration endpoint (Mic92/niks3 780939adecefc2f84be700a6f9ae1cc9385ad240,
 * server/cache_config.go, api/types.go): `GET /api/cache-config?issuer=<url>` without a credential
 * → `{substituter_url, public_keys, oidc_audience}`, the audience only when an issuer is named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, startFloe, type TestServer } from '../helpers/server.js';

describe('niks3 cache-config', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startFloe();
    await createOrg(server, 'acme');
    await createOrg(server, 'hidden');
    expect(
      (await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'pub', public: true })).status,
    ).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await server?.cleanup();
  });

  it("answers anonymous callers with the substituter, the public view's keys and the audience", async () => {
    const none = await (await fetch(`${server.url}/api/cache-config`)).json();
    expect(none).toEqual({ substituter_url: `${server.url}/cache`, public_keys: [] });
    // A public slice in the anonymous view (global priority, set by the server admin) brings its org's key.
    expect(
      (await api(server, server.adminToken, 'PUT', '/api/v1/orgs/acme/slices/pub/global', { priority: 10 })).status,
    ).toBe(200);
    const acmeKey = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim().split(' ');
    const hiddenKey = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=hidden`)).text()).trim();
    const withIssuer = await (
      await fetch(
        `${server.url}/api/cache-config?issuer=${encodeURIComponent('https://token.actions.githubusercontent.com')}`,
      )
    ).json();
    expect(withIssuer.substituter_url).toBe(`${server.url}/cache`);
    expect(withIssuer.oidc_audience).toBe(server.url);
    expect(withIssuer.public_keys).toEqual(acmeKey);
    expect(withIssuer.public_keys).not.toContain(hiddenKey);
  });

  it('refuses an absurd issuer with a 400', async () => {
    expect((await fetch(`${server.url}/api/cache-config?issuer=${'x'.repeat(3000)}`)).status).toBe(400);
  });
});
