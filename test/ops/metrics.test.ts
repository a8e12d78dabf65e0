/**
 * Operations: process metrics on /metrics, scraped with FLOE_METRICS_TOKEN (which opens nothing
 * else), batch uploads (`floe push`) counted like `PUT nar/` ones in /metrics and on the usage page,
 * and access logs naming the client address.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type FakePath, fakePath, nixStyleUpload } from '../helpers/paths.js';

const METRICS_TOKEN = 'metrics-scraper-0123456789abcdef';
let server: TestServer;
let rw: string;

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_METRICS_TOKEN: METRICS_TOKEN } });
  await createOrg(server, 'acme');
  rw = (await createToken(server, 'acme', ['read', 'write'])).token;
});
afterAll(async () => {
  await server?.cleanup();
});

const scrape = async (token?: string) => {
  const res = await fetch(`${server.url}/metrics`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return { status: res.status, text: await res.text() };
};
const value = (text: string, series: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

/** What `floe push` sends: one JSON line of path info, then the NAR, to the batch API. */
function batchUpload(p: FakePath, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}/api/v1/cache/paths`,
      { method: 'PUT', headers: { Authorization: `Bearer ${token}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', reject);
    req.end(
      Buffer.concat([
        Buffer.from(
          `${JSON.stringify({ storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references: [] })}\n`,
        ),
        p.nar,
      ]),
    );
  });
}

describe('metrics for operators', () => {
  it('adds process metrics, for the metrics token, which opens nothing else', async () => {
    expect((await scrape()).status).toBe(403);
    const { status, text } = await scrape(METRICS_TOKEN);
    expect(status).toBe(200);
    expect(value(text, 'floe_process_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);
    expect(value(text, 'floe_process_heap_bytes{state="used"}')).toBeGreaterThan(0);
    expect(value(text, 'floe_event_loop_delay_seconds{quantile="0.99"}')).toBeGreaterThanOrEqual(0);
    expect(text).toMatch(/^# TYPE floe_gc_pause_seconds_total counter$/m);
    expect(value(text, 'floe_process_active_handles')).toBeGreaterThan(0);
    // This scrape's own connection at least.
    expect(value(text, 'floe_http_open_connections')).toBeGreaterThanOrEqual(1);
    // The admin token still works; a wrong metrics token and the metrics token elsewhere do not.
    expect((await scrape(server.adminToken)).status).toBe(200);
    expect((await scrape('metrics-scraper-0123456789abcdeX')).status).toBe(401);
    expect((await api(server, METRICS_TOKEN, 'GET', '/api/v1/orgs')).status).toBe(401);
    const cache = await fetch(`${server.url}/cache/nix-cache-info`, {
      headers: { Authorization: basicAuth(METRICS_TOKEN) },
    });
    expect([400, 401]).toContain(cache.status);
  });

  it('counts floe push (batch) uploads like PUT nar/ uploads, in /metrics and on the usage page', async () => {
    const before = (await scrape(METRICS_TOKEN)).text;
    const accepted = value(before, 'floe_uploads_total{result="accepted"}') ?? 0;
    const bytes = value(before, 'floe_upload_bytes_total') ?? 0;
    const batched = fakePath('batched');
    expect(await batchUpload(batched, rw)).toBe(201);
    const after = (await scrape(METRICS_TOKEN)).text;
    expect(value(after, 'floe_uploads_total{result="accepted"}')).toBe(accepted + 1);
    expect(value(after, 'floe_upload_bytes_total')).toBe(bytes + batched.nar.length);
    // A refused one (the NAR does not match its hash) counts as rejected.
    const bad = fakePath('bad');
    const rejected = value(after, 'floe_uploads_total{result="rejected"}') ?? 0;
    expect(await batchUpload({ ...bad, narHash: fakePath('other').narHash }, rw)).toBeGreaterThanOrEqual(400);
    expect(value((await scrape(METRICS_TOKEN)).text, 'floe_uploads_total{result="rejected"}')).toBe(rejected + 1);
    // And the PUT nar/ route counts the same way.
    expect(await nixStyleUpload(`${server.url}/cache`, basicAuth(rw), fakePath('nixstyle'))).toMatchObject({
      nar: 201,
      narinfo: 201,
    });
    const last = (await scrape(METRICS_TOKEN)).text;
    expect(value(last, 'floe_uploads_total{result="accepted"}')).toBe(accepted + 2);

    const page = await fetch(`${server.url}/manage/acme`, {
      headers: { Authorization: `Bearer ${server.adminToken}`, Accept: 'text/html' },
    });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(
      new RegExp(`>${accepted + 2} / ${rejected + 1}</div><div class="what">uploads accepted / rejected`),
    );
  });

  it('access logs name the client address, and never the token', async () => {
    await fetch(`${server.url}/cache/nix-cache-info`);
    await api(server, rw, 'GET', '/api/v1/auth/whoami');
    // The access log line is written just after the answer: wait for both lines.
    const requestLines = () =>
      server
        .logs()
        .split('\n')
        .filter((l) => l.includes('"msg":"request"'));
    const find = (p: string) => requestLines().find((l) => l.includes(`"path":"${p}"`));
    await expect.poll(() => Boolean(find('/cache/nix-cache-info') && find('/api/v1/auth/whoami'))).toBe(true);
    const cacheLine = find('/cache/nix-cache-info');
    const apiLine = find('/api/v1/auth/whoami');
    expect(JSON.parse(cacheLine!).client).toBe('127.0.0.1');
    expect(JSON.parse(apiLine!).client).toBe('127.0.0.1');
    expect(server.logs()).not.toContain(rw);
    expect(server.logs()).not.toContain(METRICS_TOKEN);
  });
});
