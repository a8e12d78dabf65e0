/**
 * An answer sent before the request body was read (413 for a declared size over the limit, 401 for
 * a missing token) closes the connection and says so: otherwise the unread body is parsed as the
 * next request, or the connection is cut under the client's next request. A body that was read in
 * full keeps the connection usable, even when the answer is an error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { RawConnection } from '../helpers/faults.js';

describe('keep-alive after an early rejection', () => {
  let server: TestServer;
  let admin: string;
  beforeAll(async () => {
    server = await startFloe();
    await createOrg(server, 'acme');
    admin = (await createToken(server, 'acme', ['read', 'write', 'admin'])).token;
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('413 before the body is read: Connection: close, and the server closes', async () => {
    const conn = new RawConnection(server.port);
    try {
      // Declares 2 MiB to an endpoint that takes at most 1 MiB, sends only the start of it.
      await conn.write(
        `POST /api/v1/orgs HTTP/1.1\r\nHost: floe\r\nAuthorization: Bearer ${server.adminToken}\r\nContent-Type: application/json\r\nContent-Length: ${2 * 2 ** 20}\r\n\r\n{"name":"`,
      );
      const res = await conn.response();
      expect(res.status).toBe(413);
      expect(res.headers.connection).toBe('close');
      // The client's next request would otherwise be read as the rest of this body.
      await conn.write(`GET /healthz HTTP/1.1\r\nHost: floe\r\n\r\n`).catch(() => undefined);
      expect(await conn.closedWithin(3000)).toBe(true);
    } finally {
      conn.close();
    }
  });

  it('401 for an upload without a token, before its body: Connection: close', async () => {
    const conn = new RawConnection(server.port);
    try {
      await conn.write(
        `PUT /api/v1/cache/paths HTTP/1.1\r\nHost: floe\r\nContent-Length: ${8 * 2 ** 20}\r\n\r\n${'x'.repeat(1000)}`,
      );
      const res = await conn.response();
      expect(res.status).toBe(401);
      expect(res.headers.connection).toBe('close');
      expect(await conn.closedWithin(3000)).toBe(true);
    } finally {
      conn.close();
    }
  });

  it('a 400 after the whole body was read keeps the connection for the next request', async () => {
    const conn = new RawConnection(server.port);
    try {
      const bad = '{"name": 42}';
      await conn.write(
        `POST /api/v1/orgs HTTP/1.1\r\nHost: floe\r\nAuthorization: Bearer ${admin}\r\nContent-Type: application/json\r\nContent-Length: ${bad.length}\r\n\r\n${bad}`,
      );
      const first = await conn.response();
      expect(first.status).toBeGreaterThanOrEqual(400);
      expect(first.status).toBeLessThan(500);
      expect(first.headers.connection).not.toBe('close');
      await conn.write(`GET /healthz HTTP/1.1\r\nHost: floe\r\n\r\n`);
      expect((await conn.response()).status).toBe(200);
      // Pipelined: two requests in one write, two answers.
      await conn.write(
        `GET /healthz HTTP/1.1\r\nHost: floe\r\n\r\nGET /.well-known/jwks.json HTTP/1.1\r\nHost: floe\r\n\r\n`,
      );
      expect((await conn.response()).status).toBe(200);
      const key = await conn.response();
      expect(key.status).toBe(200);
      expect(key.body.toString()).toMatch(/:/);
      expect(conn.isClosed).toBe(false);
    } finally {
      conn.close();
    }
  });
});
