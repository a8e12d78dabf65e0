/**
 * A client that goes away mid-request (a cancelled `nix copy`, a closed download) is not a server
 * failure: /metrics counts it as `client_closed` (nginx's 499), never as a 5xx, and the log says so
 * at debug level instead of printing an error.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath } from '../helpers/paths.js';
import { batchUpload, RawConnection, until } from '../helpers/faults.js';

describe('client disconnects', () => {
  let server: TestServer;
  let rw: string;
  beforeAll(async () => {
    server = await startFloe();
    await createOrg(server, 'acme');
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  const metric = async (labels: string) => {
    const text = await (
      await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
    ).text();
    const line = text.split('\n').find((l) => l.startsWith(`floe_http_requests_total{${labels}}`));
    return { value: line ? Number(line.split(' ').pop()) : 0, text };
  };

  /** Sends the head and the start of the body, then drops the connection. */
  const abandon = async (head: string, part: Buffer) => {
    const conn = new RawConnection(server.port);
    await conn.write(head);
    await conn.write(part);
    await new Promise((r) => setTimeout(r, 200));
    conn.close();
  };

  it('cancelled uploads and a download cut short are counted as client_closed, not as 5xx, and not logged as errors', async () => {
    const big = fakePath('big', { type: 'regular', contents: randomBytes(8 * 2 ** 20) });
    expect((await batchUpload(server, rw, big)).status).toBe(201);
    const info = await (
      await fetch(`${server.url}/cache/${big.hashPart}.narinfo`, { headers: { Authorization: basicAuth(rw) } })
    ).text();
    const narUrl = /^URL: (.*)$/m.exec(info)![1]!;

    // nix copy's NAR PUT, cancelled after a quarter of a valid NAR.
    const cancelled = fakePath('cancelled', { type: 'regular', contents: randomBytes(2 ** 20) });
    const quarter = cancelled.nar.subarray(0, cancelled.nar.length / 4);
    await abandon(
      `PUT /cache/nar/${'1'.repeat(52)}.nar HTTP/1.1\r\nHost: floe\r\nAuthorization: ${basicAuth(rw)}\r\nContent-Length: ${cancelled.nar.length}\r\n\r\n`,
      quarter,
    );
    // floe push's batch upload, cancelled the same way.
    const meta =
      JSON.stringify({
        storePath: `/nix/store/${cancelled.base}`,
        narHash: cancelled.narHash,
        narSize: cancelled.narSize,
        references: [],
      }) + '\n';
    await abandon(
      `PUT /api/v1/cache/paths HTTP/1.1\r\nHost: floe\r\nAuthorization: Bearer ${rw}\r\nContent-Length: ${meta.length + cancelled.nar.length}\r\n\r\n${meta}`,
      quarter,
    );
    // A download closed after its first bytes.
    const download = new RawConnection(server.port, { throttleMs: 50 });
    await download.write(`GET /cache/${narUrl} HTTP/1.1\r\nHost: floe\r\nAuthorization: ${basicAuth(rw)}\r\n\r\n`);
    expect(await until(() => download.received > 0, 5000)).toBe(true);
    download.close();

    expect(await until(async () => (await metric('area="cache",status="client_closed"')).value >= 2, 5000)).toBe(true);
    expect(await until(async () => (await metric('area="api",status="client_closed"')).value >= 1, 5000)).toBe(true);
    const { text } = await metric('');
    expect(text).not.toMatch(/floe_http_requests_total\{[^}]*status="5xx"/);

    const lines = server.logs().split('\n');
    expect(lines.filter((l) => /"level":50/.test(l))).toEqual([]);
    expect(lines.filter((l) => /"level":20/.test(l) && /client went away/.test(l)).length).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => /"status":499/.test(l))).toBe(true);
  }, 60_000);
});
