/**
 * NAR listings (`<hash>.ls`) over real HTTP: generated from the stored NAR (never the uploader's),
 * served exactly where the narinfo is, the one miss for everyone else; uploads are accepted and
 * dropped. test/nix/protocol.ts reads them with `nix store ls`.
 */
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';

describe('NAR listings', () => {
  let server: TestServer;
  let cache: string;
  let rw: string;
  let read: string;
  let otherRead: string;
  const get = async (url: string, token?: string, method = 'GET') => {
    const res = await fetch(url, { method, headers: token ? { Authorization: basicAuth(token) } : {} });
    return { status: res.status, text: await res.text(), type: res.headers.get('content-type') };
  };

  beforeAll(async () => {
    server = await startFloe();
    cache = `${server.url}/cache`;
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    read = (await createToken(server, 'acme', ['read'])).token;
    otherRead = (await createToken(server, 'other', ['read'])).token;
  });
  afterAll(async () => {
    await server?.cleanup();
  });

  it('is generated from the stored NAR and served where the narinfo is, whatever the uploader sent', async () => {
    const p = fakePath('listed', {
      type: 'directory',
      entries: {
        README: { type: 'regular', contents: 'readme\n' },
        bin: {
          type: 'directory',
          entries: { hi: { type: 'regular', contents: '#!/bin/sh\necho hi\n', executable: true } },
        },
        link: { type: 'symlink', target: 'README' },
      },
    });
    // A lying listing uploaded first, as write-nar-listing=true does: accepted and dropped.
    const lie = await fetch(`${cache}/${p.hashPart}.ls`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(rw), 'Content-Type': 'application/json' },
      body: '{"version":1,"root":{"type":"symlink","target":"/etc/passwd"}}',
    });
    expect(lie.status).toBe(204);
    expect(await nixStyleUpload(cache, basicAuth(rw), p)).toMatchObject({ nar: 201, narinfo: 201 });
    const got = await get(`${cache}/${p.hashPart}.ls`, read);
    expect(got.status).toBe(200);
    expect(got.type).toBe('application/json');
    expect(got.text).toBe(
      '{"version":1,"root":{"type":"directory","entries":{"README":{"type":"regular","size":7,"narOffset":232},"bin":{"type":"directory","entries":{"hi":{"type":"regular","size":18,"executable":true,"narOffset":592}}},"link":{"type":"symlink","target":"README"}}}}',
    );
    expect((await get(`${cache}/${p.hashPart}.ls`, read, 'HEAD')).status).toBe(200);
    expect((await get(`${cache}/acme/default/${p.hashPart}.ls`, read)).status).toBe(200);
    // Others get the one miss, the same bytes as an unknown path.
    const typo = await get(`${cache}/${fakePath('never').hashPart}.ls`, read);
    expect(typo.status).toBe(404);
    for (const token of [otherRead, undefined]) {
      const r = await get(`${cache}/${p.hashPart}.ls`, token);
      expect({ status: r.status, text: r.text }).toEqual({ status: typo.status, text: typo.text });
    }
    expect((await get(`${cache}/not-a-hash.ls`, read)).status).toBe(404);
    // Uploading a listing needs the right to write, like any upload.
    expect(
      (
        await fetch(`${cache}/${p.hashPart}.ls`, {
          method: 'PUT',
          headers: { Authorization: basicAuth(read) },
          body: '{}',
        })
      ).status,
    ).toBe(403);
  });

  it('is made once per NAR: a second GET does not read the NAR blob again', async () => {
    const p = fakePath('memo', { type: 'regular', contents: 'remember me\n' });
    expect(await nixStyleUpload(cache, basicAuth(rw), p)).toMatchObject({ nar: 201, narinfo: 201 });
    const first = await get(`${cache}/${p.hashPart}.ls`, read);
    expect(first.status).toBe(200);
    // Take the stored NAR away: only a memo can still answer.
    const key = `${p.narHash.replace(/^sha256:/, '')}.nar.zst`;
    const blob = path.join(server.dataDir, 'blobs', key.slice(0, 2), key);
    const narStatus = async () =>
      (await fetch(`${cache}/nar/${key}`, { headers: { Authorization: basicAuth(read) } })).status;
    expect(await narStatus()).toBe(200);
    await rename(blob, `${blob}.away`);
    try {
      const second = await get(`${cache}/${p.hashPart}.ls`, read);
      expect(second).toEqual(first);
      // The NAR itself is really gone (so the listing above did not come from it).
      expect(await narStatus()).not.toBe(200);
      // Access is still decided per request: the memo answers nobody else.
      expect((await get(`${cache}/${p.hashPart}.ls`, otherRead)).status).toBe(404);
    } finally {
      await rename(`${blob}.away`, blob);
    }
  });

  it('debuginfo uploads (index-debug-info=true) are checked and accepted; one whose NAR never got a narinfo reads as the one miss', async () => {
    const id = '02623eda209c26a59b1a8638ff7752f6b945c26b';
    const doc = (over: Record<string, unknown> = {}) =>
      JSON.stringify({
        archive: '../nar/100vxs724qr46phz8m24iswmg9p3785hsyagz0kchf6q6gf06sw6.nar',
        member: `lib/debug/.build-id/02/${id.slice(2)}.debug`,
        ...over,
      });
    const put = (name: string, body: string, token = rw) =>
      fetch(`${cache}/debuginfo/${name}`, {
        method: 'PUT',
        headers: { Authorization: basicAuth(token), 'Content-Type': 'application/json' },
        body,
      });
    for (const name of [id, `${id}.debug`]) expect((await put(name, doc())).status).toBe(204);
    const bad: Array<[string, string, string]> = [
      ['a short id', id.slice(1), doc()],
      ['not JSON', id, '{'],
      ['an absolute archive', id, doc({ archive: 'http://elsewhere/x.nar' })],
      ['an archive outside nar/', id, doc({ archive: '../../etc/passwd' })],
      ['a member of another build id', id, doc({ member: `lib/debug/.build-id/03/${id.slice(2)}.debug` })],
      ['a member outside .build-id', id, doc({ member: '../../x' })],
    ];
    for (const [what, name, body] of bad) {
      const r = await put(name, body);
      expect(r.status, what).toBe(400);
      expect((await r.text()).length, what).toBeGreaterThan(5);
    }
    expect((await put(id, doc(), read)).status).toBe(403);
    expect((await get(`${cache}/debuginfo/${id}`, read)).status).toBe(404);
  });
});
