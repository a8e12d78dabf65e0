/**
 * The edge keeps the credential it last parsed per connection (http/edge.ts), so a keep-alive
 * connection's repeated Authorization header is not decoded again. What it must not change, on
 * one connection: a different header is a different caller, a bad header is refused as ever,
 * and a token revoked mid-connection is refused on that same connection.
 */
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath } from '../helpers/paths.js';
import { batchUpload } from '../helpers/faults.js';

let server: TestServer;
beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  await createOrg(server, 'globex');
});
afterAll(async () => {
  await server?.cleanup();
});

describe('credentials on one keep-alive connection', () => {
  it('follow the header of each request, and a revocation, on the same socket', async () => {
    const acme = await createToken(server, 'acme', ['read', 'write']);
    const globex = (await createToken(server, 'globex', ['read'])).token;
    const p = fakePath('one-connection');
    expect((await batchUpload(server, acme.token, p)).status).toBe(201);

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const get = (authorization?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          `${server.url}/cache/${p.hashPart}.narinfo`,
          { agent, headers: authorization ? { Authorization: authorization } : {} },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode!));
          },
        );
        req.on('socket', (s) => sockets.add(s));
        req.on('error', reject);
        req.end();
      });
    try {
      expect(await get(basicAuth(acme.token))).toBe(200);
      expect(await get(basicAuth(acme.token))).toBe(200);
      // Another org's token on the same connection: its own view, where the path is missing.
      expect(await get(basicAuth(globex))).toBe(404);
      // No header: anonymous (acme's default slice is private).
      expect(await get()).toBe(404);
      // A token in the Basic user name is refused (a read answers 400, see cache-handler.ts).
      expect(await get(`Basic ${Buffer.from(`${acme.token}:`).toString('base64')}`)).toBe(400);
      expect(await get(basicAuth(acme.token))).toBe(200);
      // Revoked while the connection stays open: refused on it (within the revocation recheck).
      expect((await api(server, server.adminToken, 'DELETE', `/api/v1/tokens/${acme.id}`)).status).toBe(200);
      let status = 200;
      for (let i = 0; i < 40 && status === 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        status = await get(basicAuth(acme.token));
      }
      expect(status).toBe(400);
      expect(sockets.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });
});
