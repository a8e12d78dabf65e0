/**
 * SIGTERM drains instead of cutting: /readyz fails at once, no new connections are accepted, idle
 * keep-alive connections close, requests in flight (a slowly sent upload, a slowly read download)
 * finish, and then the process exits. A client that never finishes cannot hold the exit beyond
 * FLOE_SHUTDOWN_GRACE_SECONDS.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { batchUpload, RawConnection, until } from '../helpers/faults.js';
import { encodeNix32 } from '../../src/nix/nix32.js';

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.cleanup();
});

/** A batch upload whose body is sent in pieces: `send(fraction)` sends up to that share of it. */
function slowUpload(server: TestServer, token: string, p: FakePath) {
  const meta = Buffer.from(
    JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] }) +
      '\n',
  );
  const body = Buffer.concat([meta, p.nar]);
  const req = request(`${server.url}/api/v1/cache/paths`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${token}`, 'Content-Length': String(body.length) },
  });
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, text }));
    });
  });
  let sent = 0;
  return {
    answer,
    get sent() {
      return sent;
    },
    async send(fraction: number, chunkBytes = 64 * 1024, pauseMs = 40) {
      const until = Math.floor(body.length * fraction);
      while (sent < until) {
        const chunk = body.subarray(sent, Math.min(until, sent + chunkBytes));
        await new Promise<void>((resolve) => req.write(chunk, () => resolve()));
        sent += chunk.length;
        await new Promise((r) => setTimeout(r, pauseMs));
      }
      if (sent === body.length) req.end();
    },
  };
}

const exited = (server: TestServer) =>
  new Promise<number | null>((resolve) =>
    server.process.exitCode !== null
      ? resolve(server.process.exitCode)
      : server.process.once('exit', (code) => resolve(code)),
  );

describe('SIGTERM', () => {
  it('lets a slow upload and a slow download finish, fails /readyz at once, closes idle connections, then exits', async () => {
    const server = await startFloe({ env: { FLOE_SHUTDOWN_GRACE_SECONDS: '30' } });
    servers.push(server);
    await createOrg(server, 'acme');
    const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    // Random bytes: zstd cannot shrink them, so the download is as large as the NAR.
    const big = fakePath('big', { type: 'regular', contents: randomBytes(16 * 2 ** 20) });
    expect((await batchUpload(server, rw, big)).status).toBe(201);
    const info = await (
      await fetch(`${server.url}/cache/${big.hashPart}.narinfo`, { headers: { Authorization: basicAuth(rw) } })
    ).text();
    const narUrl = /^URL: (.*)$/m.exec(info)![1]!;
    const fileHash = /^FileHash: sha256:(.*)$/m.exec(info)![1]!;

    // An idle keep-alive connection: closed at once by the drain.
    const idle = new RawConnection(server.port);
    await idle.write(`GET /healthz HTTP/1.1\r\nHost: floe\r\n\r\n`);
    expect((await idle.response()).status).toBe(200);

    // A download read slowly (about 3 MB/s), and an upload sent slowly.
    const download = new RawConnection(server.port, { throttleMs: 20 });
    await download.write(`GET /cache/${narUrl} HTTP/1.1\r\nHost: floe\r\nAuthorization: ${basicAuth(rw)}\r\n\r\n`);
    const small = fakePath('slow-upload', { type: 'regular', contents: randomBytes(2 * 2 ** 20) });
    const upload = slowUpload(server, rw, small);
    await upload.send(0.3);
    expect(await until(() => download.received > 1024 * 1024, 10_000)).toBe(true);

    const exit = exited(server);
    server.process.kill('SIGTERM');
    // New connections are refused once the listener is closed.
    expect(
      await until(
        async () =>
          !(await fetch(`${server.url}/healthz`).then(
            () => true,
            () => false,
          )),
        5000,
      ),
    ).toBe(true);
    expect(await idle.closedWithin(2000)).toBe(true);
    // A request pipelined on a busy connection is still answered, with "not ready" and a close.
    await download.write(`GET /readyz HTTP/1.1\r\nHost: floe\r\n\r\n`);
    await upload.send(1);

    const uploaded = await upload.answer;
    expect(uploaded.status, uploaded.text).toBe(201);
    const nar = await download.response(30_000);
    expect(nar.status).toBe(200);
    expect(nar.body.length).toBe(Number(nar.headers['content-length']));
    expect(encodeNix32(createHash('sha256').update(nar.body).digest())).toBe(fileHash);
    const ready = await download.response();
    expect(ready.status).toBe(503);
    expect(ready.headers.connection).toBe('close');
    expect(JSON.parse(ready.body.toString())).toMatchObject({ failed: ['server'] });
    expect(await download.closedWithin(2000)).toBe(true);

    // And only then does the process end, cleanly.
    expect(await exit).toBe(0);
    expect(server.logs()).toMatch(/shutting down: finishing the requests in flight/);

    // The upload that finished during the drain was committed.
    await server.restart();
    expect(
      (await fetch(`${server.url}/cache/${small.hashPart}.narinfo`, { headers: { Authorization: basicAuth(rw) } }))
        .status,
    ).toBe(200);
  }, 90_000);

  it('does not wait beyond the grace period for a client that never finishes', async () => {
    const server = await startFloe({ env: { FLOE_SHUTDOWN_GRACE_SECONDS: '2' } });
    servers.push(server);
    await createOrg(server, 'acme');
    const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    const stuck = slowUpload(
      server,
      rw,
      fakePath('never-finished', { type: 'regular', contents: randomBytes(256 * 1024) }),
    );
    stuck.answer.catch(() => undefined);
    await stuck.send(0.5);
    const exit = exited(server);
    const started = Date.now();
    server.process.kill('SIGTERM');
    expect(await exit).toBe(0);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(1500);
    expect(took).toBeLessThan(10_000);
    expect(server.logs()).toMatch(/grace period over/);
  }, 60_000);
});
