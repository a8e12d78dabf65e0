/**
 * Release source trees in the cache, over real HTTP: every published release's tree is a
 * `<hash>-source` path on the unified /cache (the fixed-output path Nix substitutes a locked
 * tarball input from), signed with the flake org's key, readable exactly by those who may read
 * the flake. Kept by GC while the release exists; releases from before are backfilled at start.
 * Written once, run on every storage backend. Real Nix is in test/nix/sources.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { zstdDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, type TestServer } from '../helpers/server.js';
import type { Backend } from '../helpers/backends.js';
import { craftedTarball, flakehubPush } from '../helpers/flakes.js';
import { fakePath } from '../helpers/paths.js';
import { parseHash } from '../../src/nix/hash.js';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';
import { fingerprintPath, verifyFingerprint } from '../../src/nix/signing.js';
import { hashPartOf } from '../../src/nix/store-path.js';
import { sourceStorePath } from '../../src/registry/sources.js';
import { verifyFlakeTarball } from '../../src/registry/tarball.js';
import { openStorage } from '../../src/storage/open.js';

export function sourceScenarios(backend: Backend): void {
  let server: TestServer & { backendEnv: Record<string, string> };
  let publisher: string;
  let reader: string;
  let otherReader: string;
  let acmeKey: { name: string; publicKey: Buffer };

  const tarball = (name: string, text: string) =>
    craftedTarball([
      { name: `${name}-source` },
      { name: `${name}-source/flake.nix`, content: `{ outputs = { self }: { text = "${text}"; }; }\n` },
      { name: `${name}-source/data.txt`, content: `${text}\n` },
    ]);

  /** Publishes a release and returns its narHash (what a lock records) as the release lists it. */
  async function publish(flake: string, version: string, visibility: string, text = randomBytes(8).toString('hex')) {
    const pushed = await flakehubPush(server, publisher, 'acme', flake, version, await tarball(flake, text), {
      visibility,
    });
    expect(pushed, pushed.message).toMatchObject({ publish: 200 });
    const releases = await api<{ releases: Array<{ version: string; narHash: string }> }>(
      server,
      reader,
      'GET',
      `/api/v1/flakes/acme/${flake}/releases`,
    );
    const narHash = releases.body.releases.find((r) => r.version === version)?.narHash;
    expect(narHash, JSON.stringify(releases.body)).toMatch(/^sha256-/);
    const storePath = sourceStorePath(parseHash(narHash!));
    return { narHash: narHash!, storePath, hashPart: hashPartOf(storePath) };
  }

  async function get(path: string, token?: string) {
    const res = await fetch(`${server.url}${path}`, { headers: token ? { Authorization: basicAuth(token) } : {} });
    return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
  }

  /** What a path nobody has answers: denied must look exactly like this. */
  async function missOf(token?: string) {
    const fake = encodeNix32(randomBytes(20));
    const res = await get(`/cache/${fake}.narinfo`, token);
    return { status: res.status, body: res.body.toString(), type: res.headers.get('content-type') };
  }

  beforeAll(async () => {
    await backend.setup();
    server = await backend.start();
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    publisher = (await createToken(server, 'acme', ['publish'])).token;
    reader = (await createToken(server, 'acme', ['read'])).token;
    otherReader = (await createToken(server, 'other', ['read'])).token;
    const keyText = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    acmeKey = { name: keyText.split(':')[0]!, publicKey: Buffer.from(keyText.split(':')[1]!, 'base64') };
  });

  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  it("serves a public release's source to anyone: the fixed-output path, signed, its NAR the tree", async () => {
    const s = await publish('pub', '1.0.0', 'public');
    const res = await get(`/cache/${s.hashPart}.narinfo`);
    expect(res.status, res.body.toString()).toBe(200);
    const text = res.body.toString();
    const info = parseNarInfo(text);
    expect(info.storePath).toBe(s.storePath);
    expect(info.references).toEqual([]);
    expect(text).toMatch(/^References: $/m);
    expect(info.ca).toBe(`fixed:r:sha256:${encodeNix32(parseHash(s.narHash).digest)}`);
    expect(`sha256-${Buffer.from(info.narHash.digest).toString('base64')}`).toBe(s.narHash);
    expect(info.compression).toBe('zstd');
    expect(verifyFingerprint(acmeKey, fingerprintPath(info), info.sigs.at(-1)!)).toBe(true);
    // The NAR is the unpacked tree: its hash is the narHash the lock records.
    const nar = await get(`/cache/${info.url}`);
    expect(nar.status).toBe(200);
    expect(createHash('sha256').update(nar.body).digest('hex')).toBe(
      Buffer.from(info.fileHash!.digest).toString('hex'),
    );
    const plain = zstdDecompressSync(nar.body);
    expect(plain.length).toBe(info.narSize);
    expect(`sha256-${createHash('sha256').update(plain).digest('base64')}`).toBe(s.narHash);
    expect(plain.includes(Buffer.from('nix-archive-1'))).toBe(true);
    // Also to members of other orgs (public), and HEAD on the NAR.
    expect((await get(`/cache/${s.hashPart}.narinfo`, otherReader)).status).toBe(200);
    const head = await fetch(`${server.url}/cache/${info.url}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('a source asked for before its release exists is served as soon as the release is published', async () => {
    // Misses of the unified view are memoized where every write is heard: publishing must drop that.
    const tb = await tarball('early', randomBytes(8).toString('hex'));
    const storePath = sourceStorePath(parseHash((await verifyFlakeTarball(tb)).narHash));
    for (let i = 0; i < 2; i++) expect((await get(`/cache/${hashPartOf(storePath)}.narinfo`, reader)).status).toBe(404);
    const pushed = await flakehubPush(server, publisher, 'acme', 'early', '1.0.0', tb, { visibility: 'public' });
    expect(pushed, pushed.message).toMatchObject({ publish: 200 });
    const res = await get(`/cache/${hashPartOf(storePath)}.narinfo`, reader);
    expect(res.status, res.body.toString()).toBe(200);
    expect(parseNarInfo(res.body.toString()).storePath).toBe(storePath);
  });

  it("a private release's source exists only for those who may read the flake", async () => {
    const s = await publish('hidden', '1.0.0', 'private');
    const owner = await get(`/cache/${s.hashPart}.narinfo`, reader);
    expect(owner.status).toBe(200);
    const url = parseNarInfo(owner.body.toString()).url;
    expect((await get(`/cache/${url}`, reader)).status).toBe(200);
    for (const token of [undefined, otherReader]) {
      const denied = await get(`/cache/${s.hashPart}.narinfo`, token);
      expect({ status: denied.status, body: denied.body.toString(), type: denied.headers.get('content-type') }).toEqual(
        await missOf(token),
      );
      expect((await get(`/cache/${url}`, token)).status).toBe(404);
      expect((await fetch(`${server.url}/cache/${url}`, { method: 'HEAD' })).status).toBe(404);
    }
    // A deploy-only token reads its outputs' closures, nothing else: no sources.
    const deploy = await api<{ token: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      deploy: ['acme/hidden/1#packages.x86_64-linux.default'],
    });
    expect(deploy.status, JSON.stringify(deploy.body)).toBe(201);
    expect((await get(`/cache/${s.hashPart}.narinfo`, deploy.body.token)).status).toBe(404);
  });

  it('the same tree published privately by one org and publicly by another: each reader gets a copy it may read', async () => {
    const text = `twin ${randomBytes(8).toString('hex')}`;
    const s = await publish('twin', '1.0.0', 'private', text);
    const otherPublisher = (await createToken(server, 'other', ['publish'])).token;
    const pushed = await flakehubPush(server, otherPublisher, 'other', 'twin', '1.0.0', await tarball('twin', text));
    expect(pushed, pushed.message).toMatchObject({ publish: 200 });
    const keyOf = async (org: string) => {
      const k = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=${org}`)).text()).trim();
      return { name: k.split(':')[0]!, publicKey: Buffer.from(k.split(':')[1]!, 'base64') };
    };
    const otherKey = await keyOf('other');
    const anonymous = parseNarInfo((await get(`/cache/${s.hashPart}.narinfo`)).body.toString());
    expect(verifyFingerprint(otherKey, fingerprintPath(anonymous), anonymous.sigs.at(-1)!)).toBe(true);
    // acme's own readers get acme's copy, signed with acme's key.
    const own = parseNarInfo((await get(`/cache/${s.hashPart}.narinfo`, reader)).body.toString());
    expect(verifyFingerprint(acmeKey, fingerprintPath(own), own.sigs.at(-1)!)).toBe(true);
    expect(own.sigs.some((sig) => sig.startsWith(`${otherKey.name}:`))).toBe(false);
  });

  it('sources are on the unified view only, not under slice URLs', async () => {
    const s = await publish('sliced', '1.0.0', 'public');
    expect((await get(`/cache/${s.hashPart}.narinfo`, reader)).status).toBe(200);
    expect((await get(`/cache/acme/default/${s.hashPart}.narinfo`, reader)).status).toBe(404);
  });

  it('a yanked release keeps its source (its pinned tarball URL keeps working too)', async () => {
    const s = await publish('yanky', '1.0.0', 'public');
    const yank = await api(server, publisher, 'POST', '/api/v1/flakes/acme/yanky/releases/1.0.0/yank');
    expect(yank.status).toBe(200);
    expect((await get(`/cache/${s.hashPart}.narinfo`)).status).toBe(200);
  });

  it('GC keeps a source while its release exists, whatever the grace', async () => {
    const s = await publish('kept', '1.0.0', 'public');
    const info = parseNarInfo((await get(`/cache/${s.hashPart}.narinfo`)).body.toString());
    const gc = await api(server, server.adminToken, 'POST', '/api/v1/gc', { grace: 0 });
    expect(gc.status).toBe(200);
    expect((await get(`/cache/${s.hashPart}.narinfo`)).status).toBe(200);
    expect((await get(`/cache/${info.url}`)).status).toBe(200);
  });

  it("the sweep of uncommitted uploads (which runs with GC off) leaves a release's source alone", async () => {
    const swept = await backend.start({ FLOE_UPLOAD_EXPIRY: '1s', FLOE_GC_GRACE: '0s' });
    try {
      await createOrg(swept, 'acme');
      const rw = (await createToken(swept, 'acme', ['read', 'write'])).token;
      const pub = (await createToken(swept, 'acme', ['publish'])).token;
      const pushed = await flakehubPush(swept, pub, 'acme', 'swept', '1.0.0', await tarball('swept', 'swept'));
      expect(pushed, pushed.message).toMatchObject({ publish: 200 });
      const { releases } = (
        await api<{ releases: Array<{ narHash: string }> }>(swept, rw, 'GET', '/api/v1/flakes/acme/swept/releases')
      ).body;
      const hashPart = hashPartOf(sourceStorePath(parseHash(releases[0]!.narHash)));
      // A NAR without a narinfo: the sweep collects it, and logs that it did, after the expiry.
      const pending = fakePath('pending');
      const put = await fetch(`${swept.url}/cache/nar/${pending.hashPart}.nar`, {
        method: 'PUT',
        headers: { Authorization: basicAuth(rw) },
        body: new Uint8Array(pending.nar),
      });
      expect(put.status).toBe(201);
      await expect.poll(() => swept.logs(), { timeout: 20_000 }).toMatch(/uncommitted uploads swept/);
      const info = await fetch(`${swept.url}/cache/${hashPart}.narinfo`);
      expect(info.status).toBe(200);
      const url = parseNarInfo(await info.text()).url;
      expect((await fetch(`${swept.url}/cache/${url}`)).status).toBe(200);
    } finally {
      await swept.cleanup();
    }
  });

  it('releases published before sources were stored get theirs after a restart', async () => {
    const s = await publish('older', '1.0.0', 'public');
    const narHash = encodeNix32(parseHash(s.narHash).digest);
    await server.stop();
    // As an installation from before this change: no source row, no NAR row (the blob would be an orphan).
    const storage = await openStorage({ dataDir: server.dataDir, databaseUrl: server.backendEnv.FLOE_DATABASE_URL });
    try {
      await storage.db.deleteFrom('release_sources').where('nar_hash', '=', narHash).execute();
      await storage.db.deleteFrom('nars').where('nar_hash', '=', narHash).execute();
    } finally {
      await storage.close();
    }
    await server.restart();
    await expect
      .poll(async () => (await get(`/cache/${s.hashPart}.narinfo`)).status, { timeout: 30_000, interval: 200 })
      .toBe(200);
    const info = parseNarInfo((await get(`/cache/${s.hashPart}.narinfo`)).body.toString());
    const plain = zstdDecompressSync((await get(`/cache/${info.url}`)).body);
    expect(`sha256-${createHash('sha256').update(plain).digest('base64')}`).toBe(s.narHash);
  });
}
