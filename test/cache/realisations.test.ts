/**
 * Realisations (`realisations/<id>.doi`) over real HTTP against a real server: they follow the
 * access to the output path they name (view, authorization, the one miss), are written only into
 * a slice that holds that path, refuse malformed bodies with a 4xx, and go with the path in GC.
 */
import { setupTwoOrgs } from '../helpers/tenants.js';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendTolerant } from '../helpers/early-answer.js';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type FakePath, fakePath, nixStyleUpload } from '../helpers/paths.js';

describe('realisations', () => {
  let server: TestServer;
  let cache: string;
  let acmeRW: string;
  let acmeRead: string;
  let otherRW: string;
  let otherRead: string;

  const newId = (output = 'out') => `sha256:${randomBytes(32).toString('hex')}!${output}`;
  const doc = (id: string, p: FakePath, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ dependentRealisations: {}, id, outPath: p.base, signatures: [], ...extra });
  // Tolerates an early answer (a 413 before the whole body is sent) instead of failing with EPIPE.
  const put = (url: string, token: string | undefined, id: string, body: string) =>
    sendTolerant(`${url}/realisations/${id}.doi`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: basicAuth(token) } : {}) },
      body,
    });
  const get = async (url: string, token: string | undefined, id: string, method = 'GET') => {
    const res = await fetch(`${url}/realisations/${id}.doi`, {
      method,
      headers: token ? { Authorization: basicAuth(token) } : {},
    });
    return { status: res.status, text: await res.text() };
  };
  const upload = async (url: string, token: string, name: string) => {
    const p = fakePath(name);
    expect(await nixStyleUpload(url, basicAuth(token), p)).toMatchObject({ nar: 201, narinfo: 201 });
    return p;
  };

  beforeAll(async () => {
    server = await startFloe();
    cache = `${server.url}/cache`;
    ({ acmeRW, acmeRead, otherRW, otherRead } = await setupTwoOrgs(server));
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('is stored next to its output and served exactly to those who may read that output', async () => {
    const p = await upload(cache, acmeRW, 'ca-out');
    const id = newId();
    const sig = `uploader-1:${randomBytes(64).toString('base64')}`;
    expect((await put(cache, acmeRW, id, doc(id, p, { signatures: [sig] }))).status).toBe(201);
    const got = await get(cache, acmeRead, id);
    expect(got.status).toBe(200);
    // The uploader's signatures as sent (unknown keys are not interpreted), then the org's own, made when served.
    const served = JSON.parse(got.text) as { signatures: string[] };
    expect(served).toEqual({
      dependentRealisations: {},
      id,
      outPath: p.base,
      signatures: [sig, expect.stringMatching(/^127\.0\.0\.1-acme-1:/)],
    });
    expect((await get(cache, acmeRead, id, 'HEAD')).status).toBe(200);
    expect((await get(`${cache}/acme/default`, acmeRead, id)).status).toBe(200);
    // Another org and anonymous callers get the one miss, byte for byte the same as a typo.
    const typo = await get(cache, otherRead, newId());
    expect(typo.status).toBe(404);
    expect(await get(cache, otherRead, id)).toEqual(typo);
    expect(await get(cache, undefined, id)).toEqual(typo);
    expect(await get(`${cache}/acme/default`, otherRead, id)).toEqual(typo);
    // The same realisation again is fine (signatures merged), another output for it is a conflict.
    const sig2 = `uploader-2:${randomBytes(64).toString('base64')}`;
    expect((await put(cache, acmeRW, id, doc(id, p, { signatures: [sig2] }))).status).toBe(200);
    expect(JSON.parse((await get(cache, acmeRead, id)).text).signatures).toEqual([sig, sig2, served.signatures[1]]);
    const q = await upload(cache, acmeRW, 'ca-other');
    const clash = await put(cache, acmeRW, id, doc(id, q));
    expect(clash.status).toBe(409);
    expect(clash.text).toContain(p.base);
    expect(JSON.parse((await get(cache, acmeRead, id)).text).outPath).toBe(p.base);
  });

  it("another org can neither overwrite nor shadow acme's realisation", async () => {
    const p = await upload(cache, acmeRW, 'ca-target');
    const id = newId();
    expect((await put(cache, acmeRW, id, doc(id, p))).status).toBe(201);
    // Into acme's slice: that URL does not exist for them.
    expect((await put(`${cache}/acme/default`, otherRW, id, doc(id, p))).status).toBe(404);
    // Into their own slice: they do not hold acme's output, so it is refused, naming the path.
    const refused = await put(cache, otherRW, id, doc(id, p));
    expect(refused.status).toBe(400);
    expect(refused.text).toContain(`/nix/store/${p.base} is not in other/default`);
    // Pointing acme's id at their own path lands in their slice only: acme still sees its own.
    const theirs = await upload(cache, otherRW, 'ca-evil');
    expect((await put(cache, otherRW, id, doc(id, theirs))).status).toBe(201);
    expect(JSON.parse((await get(cache, acmeRead, id)).text).outPath).toBe(p.base);
    expect(JSON.parse((await get(cache, otherRead, id)).text).outPath).toBe(theirs.base);
    // Anonymous writes and read tokens are refused like any upload.
    expect((await put(cache, undefined, id, doc(id, p))).status).toBe(401);
    expect((await put(cache, acmeRead, id, doc(id, p))).status).toBe(403);
  });

  it('malformed realisations are a 4xx with a message, and change nothing', async () => {
    const p = await upload(cache, acmeRW, 'ca-bad');
    const id = newId();
    const cases: Array<[string, string, string]> = [
      ['not JSON', id, '{"id":'],
      ['a list', id, '[]'],
      ['another id than the file name', id, doc(newId(), p)],
      ['no outPath', id, JSON.stringify({ id, signatures: [] })],
      ['an absolute outPath', id, doc(id, p, { outPath: `/nix/store/${p.base}` })],
      ['signatures not a list', id, doc(id, p, { signatures: 'x' })],
      [
        'a signature with a control character in its name',
        id,
        doc(id, p, { signatures: [`a\u0007b:${randomBytes(64).toString('base64')}`] }),
      ],
      ['a bad dependency', id, doc(id, p, { dependentRealisations: { x: p.base } })],
      ['a deeply nested body', id, `{"id":${'['.repeat(5000)}${']'.repeat(5000)}}`],
      ['a file name that is no id', 'sha256:abc!out', doc('sha256:abc!out', p)],
    ];
    for (const [what, name, body] of cases) {
      const r = await put(cache, acmeRW, name, body);
      expect(r.status, what).toBeGreaterThanOrEqual(400);
      expect(r.status, what).toBeLessThan(500);
      expect(r.text.length, what).toBeGreaterThan(5);
    }
    // Declared too large: answered before the body is sent (sending 4 MiB to a server that has
    // already answered and closed would lose the answer to a reset).
    const huge = await sendTolerant(`${cache}/realisations/${id}.doi`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(acmeRW), 'Content-Length': String(4 << 20) },
      body: '',
      declaredOnly: true,
    });
    expect(huge.status).toBe(413);
    expect((await get(cache, acmeRead, id)).status).toBe(404);
  });

  it('goes away with its output path in GC', async () => {
    await createOrg(server, 'gcorg');
    const rw = (await createToken(server, 'gcorg', ['read', 'write'])).token;
    const p = await upload(cache, rw, 'ca-collected');
    const id = newId();
    expect((await put(cache, rw, id, doc(id, p))).status).toBe(201);
    expect(
      (await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/gcorg/settings', { retention: 0 })).status,
    ).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const report = await api<{ sample: string[] }>(server, server.adminToken, 'POST', '/api/v1/gc', { grace: 1 });
    expect(report.status).toBe(200);
    expect(report.body.sample).toContain(`gcorg/default /nix/store/${p.base}`);
    expect((await get(cache, rw, id)).status).toBe(404);
    // Re-uploading the path does not bring the old realisation back: its row is gone.
    expect(await nixStyleUpload(cache, basicAuth(rw), p)).toMatchObject({ narinfo: 201 });
    expect((await get(cache, rw, id)).status).toBe(404);
  });
});
