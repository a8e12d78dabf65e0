/**
 * Build logs (`log/<drv>`) over real HTTP against a real server, once per storage backend: they
 * follow the access to the outputs of their derivation (view, authorization, the one miss), are
 * written only into a slice holding such an output, stored compressed, decoded from a
 * Content-Encoding, bounded, counted in usage, audited, and collected with their outputs in GC.
 * test/nix/protocol.ts does the same with `nix store copy-log` and `nix log`.
 */
import { setupTwoOrgs } from '../helpers/tenants.js';
import { randomBytes } from 'node:crypto';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sendTolerant } from '../helpers/early-answer.js';
import { api, basicAuth, createOrg, createToken, type TestServer } from '../helpers/server.js';
import type { Backend } from '../helpers/backends.js';
import { type FakePath, fakePath, narInfoFor, nixStyleUpload } from '../helpers/paths.js';
import { encodeNix32 } from '../../src/nix/nix32.js';

export function logScenarios(backend: Backend): void {
  let server: TestServer;
  let cache: string;
  let acmeRW: string;
  let acmeRead: string;
  let otherRW: string;
  let otherRead: string;

  const newDrv = (name = 'hello') => `${encodeNix32(randomBytes(20))}-${name}.drv`;
  const auth = (token?: string): Record<string, string> => (token ? { Authorization: basicAuth(token) } : {});
  const put = (
    url: string,
    token: string | undefined,
    drv: string,
    body: string | Buffer,
    headers: Record<string, string> = {},
  ) =>
    sendTolerant(`${url}/log/${drv}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'text/plain; charset=utf-8', ...auth(token), ...headers },
      body,
    });
  const get = async (url: string, token: string | undefined, drv: string, method = 'GET') => {
    const res = await fetch(`${url}/log/${drv}`, { method, headers: auth(token) });
    return {
      status: res.status,
      text: await res.text(),
      type: res.headers.get('content-type'),
      length: res.headers.get('content-length'),
    };
  };
  /** An output of `drv` uploaded as `nix copy` does (narinfo with Deriver). */
  const uploadOutput = async (url: string, token: string, drv: string, name = 'hello') => {
    const p: FakePath = fakePath(name);
    const narinfo = `${narInfoFor(p, 'nar/x.nar')}Deriver: ${drv}\n`;
    const fileName = `${encodeNix32(randomBytes(32))}.nar`;
    expect(
      await nixStyleUpload(url, basicAuth(token), p, {
        fileName,
        narinfo: narinfo.replace('nar/x.nar', `nar/${fileName}`),
      }),
    ).toMatchObject({ nar: 201, narinfo: 201 });
    return p;
  };

  beforeAll(async () => {
    await backend.setup();
    server = await backend.start();
    cache = `${server.url}/cache`;
    ({ acmeRW, acmeRead, otherRW, otherRead } = await setupTwoOrgs(server));
  });
  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  it('is stored next to an output of its derivation and served exactly to those who may read that output', async () => {
    const drv = newDrv();
    await uploadOutput(cache, acmeRW, drv);
    const text = `building '/nix/store/${drv}'...\n${'compiling things\n'.repeat(2000)}`;
    expect((await put(cache, acmeRW, drv, text)).status).toBe(201);
    const got = await get(cache, acmeRead, drv);
    expect(got).toMatchObject({
      status: 200,
      text,
      type: 'text/plain; charset=utf-8',
      length: String(Buffer.byteLength(text)),
    });
    expect(await get(cache, acmeRead, drv, 'HEAD')).toMatchObject({
      status: 200,
      text: '',
      length: String(Buffer.byteLength(text)),
    });
    expect((await get(`${cache}/acme/default`, acmeRead, drv)).status).toBe(200);
    // Another org and anonymous callers get the one miss, byte for byte what a never-uploaded log gets.
    const typo = await get(cache, otherRead, newDrv());
    expect(typo.status).toBe(404);
    for (const token of [otherRead, otherRW, undefined]) {
      const r = await get(cache, token, drv);
      expect({ status: r.status, text: r.text, type: r.type }).toEqual({
        status: typo.status,
        text: typo.text,
        type: typo.type,
      });
      expect((await get(cache, token, drv, 'HEAD')).status).toBe(404);
    }
    expect((await get(`${cache}/acme/default`, otherRead, drv)).status).toBe(404);
    // Another org cannot overwrite it or write its own copy under that drv without an output of it.
    const foreign = await put(cache, otherRW, drv, 'fake log\n');
    expect(foreign.status).toBe(400);
    expect(foreign.text).toMatch(/upload the outputs/);
    expect((await put(`${cache}/acme/default`, otherRW, drv, 'fake log\n')).status).toBe(404);
    expect((await get(cache, acmeRead, drv)).text).toBe(text);
    // A second upload by a writer replaces it (200).
    expect((await put(cache, acmeRW, drv, 'rebuilt\n')).status).toBe(200);
    expect((await get(cache, acmeRead, drv)).text).toBe('rebuilt\n');
  });

  it('refuses a log whose derivation has no output in the slice yet, and loses nothing', async () => {
    const drv = newDrv('early');
    const early = await put(cache, acmeRW, drv, 'too early\n');
    expect(early.status).toBe(400);
    expect(early.text).toContain(`/nix/store/${drv}`);
    expect((await get(cache, acmeRead, drv)).status).toBe(404);
    await uploadOutput(cache, acmeRW, drv, 'early');
    expect((await put(cache, acmeRW, drv, 'in order\n')).status).toBe(201);
    expect((await get(cache, acmeRead, drv)).text).toBe('in order\n');
  });

  it('decodes a Content-Encoding (Nix ≥ 2.32 log-compression) and serves plain text', async () => {
    for (const [encoding, encode] of [
      ['br', brotliCompressSync],
      ['gzip', gzipSync],
    ] as const) {
      const drv = newDrv(`enc-${encoding}`);
      await uploadOutput(cache, acmeRW, drv, `enc-${encoding}`);
      const text = `log compressed with ${encoding}\n`.repeat(100);
      expect((await put(cache, acmeRW, drv, encode(Buffer.from(text)), { 'Content-Encoding': encoding })).status).toBe(
        201,
      );
      const got = await get(cache, acmeRead, drv);
      expect(got.text).toBe(text);
    }
  });

  it('refuses bad names, bad encodings and oversized logs with a 4xx', async () => {
    const drv = newDrv('bad');
    await uploadOutput(cache, acmeRW, drv, 'bad');
    const cases: Array<[string, string, string | Buffer, Record<string, string>]> = [
      ['not a derivation', `${encodeNix32(randomBytes(20))}-hello`, 'x', {}],
      ['no hash part', 'hello.drv', 'x', {}],
      ['an unknown encoding', drv, 'x', { 'Content-Encoding': 'compress' }],
      ['a body that is not what its encoding says', drv, 'plain text', { 'Content-Encoding': 'gzip' }],
    ];
    for (const [what, name, body, headers] of cases) {
      const r = await put(cache, acmeRW, name, body, headers);
      expect(r.status, what).toBeGreaterThanOrEqual(400);
      expect(r.status, what).toBeLessThan(500);
      expect(r.text.length, what).toBeGreaterThan(5);
    }
    expect((await get(cache, acmeRead, drv)).status).toBe(404);
    // Declared too large: answered before the body is sent.
    const huge = await sendTolerant(`${cache}/log/${drv}`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(acmeRW), 'Content-Length': String(65 << 20) },
      body: '',
      declaredOnly: true,
    });
    expect(huge.status).toBe(413);
    // A gzip bomb that expands past the limit is stopped by its decoded size.
    const bomb = gzipSync(Buffer.alloc(65 << 20, 0x61));
    const exploded = await put(cache, acmeRW, drv, bomb, { 'Content-Encoding': 'gzip' });
    expect(exploded.status).toBe(413);
    expect((await get(cache, acmeRead, drv)).status).toBe(404);
    // Reads of malformed names are plain misses.
    expect((await get(cache, acmeRead, 'not-a-drv')).status).toBe(404);
  });

  it('counts in usage, is audited, and goes away with the last output of its derivation in GC', async () => {
    // A server of its own: blob counts and GC runs are not shared with the other tests.
    const own = await backend.start();
    try {
      await collectedWithOutputs(own);
    } finally {
      await own.cleanup();
    }
  });

  async function collectedWithOutputs(server: TestServer) {
    const cache = `${server.url}/cache`;
    await createOrg(server, 'gclogs');
    const rw = (await createToken(server, 'gclogs', ['read', 'write'])).token;
    const drv = newDrv('collected');
    await uploadOutput(cache, rw, drv, 'collected');
    const before = await api<{ storedBytes: number }>(server, server.adminToken, 'GET', '/api/v1/orgs/gclogs/usage');
    const blobsWithOutput = await backend.countBlobs(server);
    const log = randomBytes(30000).toString('base64'); // incompressible enough to show up
    expect((await put(cache, rw, drv, log)).status).toBe(201);
    const after = await api<{ storedBytes: number }>(server, server.adminToken, 'GET', '/api/v1/orgs/gclogs/usage');
    expect(after.body.storedBytes - before.body.storedBytes).toBeGreaterThan(20000);

    const audit = await api<{ entries: Array<{ action: string; target: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/gclogs/audit?limit=50',
    );
    expect(audit.status).toBe(200);
    expect(audit.body.entries.some((e) => e.action === 'cache.write' && e.target.endsWith(`:log/${drv}`))).toBe(true);

    // One zstd blob more for the log.
    expect(await backend.countBlobs(server)).toBe(blobsWithOutput + 1);
    expect(
      (await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/gclogs/settings', { retention: 0 })).status,
    ).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const first = await api<{ sample: string[] }>(server, server.adminToken, 'POST', '/api/v1/gc', { grace: 1 });
    expect(first.status).toBe(200);
    expect(first.body.sample.some((s) => s.startsWith('gclogs/default '))).toBe(true);
    expect((await get(cache, rw, drv)).status).toBe(404);
    // The log's blob is now unknown to every table: the next run past the grace period deletes it.
    await new Promise((r) => setTimeout(r, 1100));
    const second = await api<{ orphanBlobs: { collected: number } }>(server, server.adminToken, 'POST', '/api/v1/gc', {
      grace: 1,
    });
    expect(second.status).toBe(200);
    // The log's blob is gone (the NAR stays while its upload record, 24 h, does).
    expect(await backend.countBlobs(server)).toBe(blobsWithOutput);
    const usage = await api<{ storedBytes: number }>(server, server.adminToken, 'GET', '/api/v1/orgs/gclogs/usage');
    expect(usage.body.storedBytes).toBe(0);
  }
}
