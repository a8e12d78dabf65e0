/**
 * Debug info (`debuginfo/<build id>`) over real HTTP against a real server: an entry uploaded
 * before its NAR (Nix's order) is served once the narinfo commits the NAR file it names, pointing
 * at the NAR Floe serves; only to readers of that NAR (the one miss for everyone else); an entry
 * naming a file that never got a narinfo stays a miss; GC takes it with the path. Run once per
 * backend (debuginfo-*.test.ts).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Backend } from '../helpers/backends.js';
import { api, basicAuth, createOrg, createToken, type TestServer } from '../helpers/server.js';
import { fakePath, narInfoFor, nixStyleUpload } from '../helpers/paths.js';

export function debugInfoScenarios(backend: Backend): void {
  let server: TestServer;
  let cache: string;
  let rw: string;
  let read: string;
  let outsider: string;

  const newBuildId = () => randomBytes(20).toString('hex');
  const memberOf = (id: string) => `lib/debug/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
  const put = (id: string, token: string, archive: string) =>
    fetch(`${cache}/debuginfo/${id}`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(token), 'Content-Type': 'application/json' },
      body: JSON.stringify({ archive, member: memberOf(id) }),
    });
  const get = async (id: string, token?: string, base = cache) => {
    const res = await fetch(`${base}/debuginfo/${id}`, { headers: token ? { Authorization: basicAuth(token) } : {} });
    return { status: res.status, text: await res.text() };
  };

  beforeAll(async () => {
    await backend.setup();
    server = await backend.start();
    cache = `${server.url}/cache`;
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    read = (await createToken(server, 'acme', ['read'])).token;
    outsider = (await createToken(server, 'other', ['read', 'write'])).token;
  });

  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  it('is served after its NAR is committed, pointing at the served NAR, to readers only', async () => {
    const p = fakePath('with-debug');
    const id = newBuildId();
    const clientFile = `${p.hashPart}.nar.xz-client-name`;
    expect((await put(id, rw, `../nar/${clientFile}`)).status).toBe(204);
    const miss = await get(newBuildId(), read);
    expect(miss.status).toBe(404);
    // Before the narinfo: nothing to point at yet.
    expect(await get(id, read)).toEqual(miss);
    const fileName = `${p.hashPart}.nar`;
    expect((await put(id, rw, `../nar/${fileName}`)).status).toBe(204); // the latest entry wins
    expect(
      await nixStyleUpload(cache, basicAuth(rw), p, { fileName, narinfo: narInfoFor(p, `nar/${fileName}`) }),
    ).toMatchObject({ nar: 201, narinfo: 201 });
    const served = await get(id, read);
    expect(served.status).toBe(200);
    const doc = JSON.parse(served.text) as { archive: string; member: string };
    const narinfo = await (
      await fetch(`${cache}/${p.hashPart}.narinfo`, { headers: { Authorization: basicAuth(read) } })
    ).text();
    expect(doc).toEqual({ archive: `../${/^URL: (.*)$/m.exec(narinfo)![1]}`, member: memberOf(id) });
    expect((await get(id, read, `${cache}/acme/default`)).status).toBe(200);
    expect(
      (await fetch(`${cache}/debuginfo/${id}`, { method: 'HEAD', headers: { Authorization: basicAuth(read) } })).status,
    ).toBe(200);
    // Another org and anonymous callers: the one miss, byte for byte.
    expect(await get(id, outsider)).toEqual(miss);
    expect(await get(id)).toEqual(miss);
    // An entry written into another org's slice names only files that slice uploaded.
    expect((await put(id, outsider, `../nar/${fileName}`)).status).toBe(204);
    const theirs = await get(id, outsider);
    expect(theirs).toEqual(miss);
  });

  it('an entry whose archive never got a narinfo stays a miss; malformed entries are a 400', async () => {
    const id = newBuildId();
    expect((await put(id, rw, '../nar/never-uploaded.nar.xz')).status).toBe(204);
    expect((await get(id, read)).status).toBe(404);
    const bad = await fetch(`${cache}/debuginfo/${id}`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(rw) },
      body: JSON.stringify({ archive: '/etc/passwd', member: memberOf(id) }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/archive/);
    const wrongMember = await fetch(`${cache}/debuginfo/${id}`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(rw) },
      body: JSON.stringify({ archive: '../nar/x.nar', member: memberOf(newBuildId()) }),
    });
    expect(wrongMember.status).toBe(400);
    expect((await put(id, read, '../nar/x.nar')).status).toBe(403);
  });

  it('goes away with its path in GC', async () => {
    await createOrg(server, 'gcorg');
    const gcRW = (await createToken(server, 'gcorg', ['read', 'write'])).token;
    const p = fakePath('debug-collected');
    const id = newBuildId();
    const fileName = `${p.hashPart}.nar`;
    expect((await put(id, gcRW, `../nar/${fileName}`)).status).toBe(204);
    expect(await nixStyleUpload(cache, basicAuth(gcRW), p, { fileName })).toMatchObject({ narinfo: 201 });
    expect((await get(id, gcRW)).status).toBe(200);
    expect(
      (await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/gcorg/settings', { retention: 0 })).status,
    ).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const report = await api<{ sample: string[] }>(server, server.adminToken, 'POST', '/api/v1/gc', { grace: 1 });
    expect(report.status).toBe(200);
    expect(report.body.sample).toContain(`gcorg/default /nix/store/${p.base}`);
    expect((await get(id, gcRW)).status).toBe(404);
    // Re-uploading the path does not bring the old entry back: its row is gone.
    expect(await nixStyleUpload(cache, basicAuth(gcRW), p, { fileName })).toMatchObject({ narinfo: 201 });
    expect((await get(id, gcRW)).status).toBe(404);
  });
}
