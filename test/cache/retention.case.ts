/**
 * Package independence over real HTTP against a real `floe serve`: mirroring from an upstream
 * binary cache (a signed synthetic one served over loopback), whole closures, GC (dry run, roots,
 * shared blobs, orphans, racing pushes), quotas and usage. Run on every storage backend.
 * The same with real Nix on both sides is in test/nix/upstream.test.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, type TestServer } from '../helpers/server.js';
import type { Backend } from '../helpers/backends.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { fixtureDir } from '../helpers/nix.js';
import { serveDirectory, type StaticServer } from '../helpers/static-server.js';
import { parseHash } from '../../src/nix/hash.js';
import { formatNarInfo, parseNarInfo } from '../../src/nix/narinfo.js';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { serializeNar } from '../../src/nix/nar.js';
import {
  fingerprintPath,
  formatPublicKey,
  generateSigningKey,
  signFingerprint,
  type SigningKey,
} from '../../src/nix/signing.js';
import type { StorePathBase } from '../../src/nix/store-path.js';

type Report = {
  dryRun: boolean;
  roots: number;
  paths: { total: number; kept: number; collected: number; logicalBytes: number };
  nars: { collected: number; storedBytes: number };
  orphanBlobs: { collected: number; bytes: number };
  sample: string[];
};
type Usage = {
  storedBytes: number;
  logicalBytes: number;
  paths: number;
  quotaBytes: number | null;
  slices: Array<{ name: string; paths: number; logicalBytes: number; storedBytes: number }>;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function retentionScenarios(backend: Backend): void {
  let server: TestServer;
  let cacheUrl: string;

  async function batchUpload(token: string, p: FakePath, slice?: string) {
    const meta = {
      storePath: `/nix/store/${p.base}`,
      narHash: p.narHash,
      narSize: p.narSize,
      references: p.references.map((r) => `/nix/store/${r}`),
    };
    const res = await fetch(`${server.url}/api/v1/cache${slice ? `/${slice}` : ''}/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}` },
      body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar])),
    });
    return { status: res.status, body: (await res.json()) as { message?: string; status?: string } };
  }

  async function narinfoStatus(token: string, p: FakePath | StorePathBase): Promise<number> {
    const hash = typeof p === 'string' ? p.slice(0, 32) : p.hashPart;
    const res = await fetch(`${cacheUrl}/${hash}.narinfo`, { headers: { Authorization: basicAuth(token) } });
    await res.arrayBuffer();
    return res.status;
  }

  /** Problems with the closure of `hashPart` as served: every narinfo and NAR must be there. */
  async function closureProblems(token: string, hashPart: string): Promise<string[]> {
    const problems: string[] = [];
    const queue = [hashPart];
    const seen = new Set(queue);
    while (queue.length > 0) {
      const h = queue.shift()!;
      const res = await fetch(`${cacheUrl}/${h}.narinfo`, { headers: { Authorization: basicAuth(token) } });
      if (res.status !== 200) {
        problems.push(`${h}.narinfo: ${res.status}`);
        await res.arrayBuffer();
        continue;
      }
      const info = parseNarInfo(await res.text());
      const nar = await fetch(`${cacheUrl}/${info.url}`, { headers: { Authorization: basicAuth(token) } });
      const bytes = Buffer.from(await nar.arrayBuffer());
      if (nar.status !== 200 || bytes.length !== info.fileSize)
        problems.push(`${info.url}: ${nar.status}, ${bytes.length} bytes`);
      for (const r of info.references) {
        const rh = r.slice(0, 32);
        if (!seen.has(rh)) {
          seen.add(rh);
          queue.push(rh);
        }
      }
    }
    return problems;
  }

  const gc = async (body: Record<string, unknown>) => {
    const r = await api<Report>(server, server.adminToken, 'POST', '/api/v1/gc', body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    return r.body;
  };
  const usage = async (org: string) =>
    (await api<Usage>(server, server.adminToken, 'GET', `/api/v1/orgs/${org}/usage`)).body;
  const setRetention = async (org: string, retention: number | string | null) => {
    const r = await api(server, server.adminToken, 'PATCH', `/api/v1/orgs/${org}/settings`, { retention });
    expect(r.status).toBe(200);
  };

  beforeAll(async () => {
    await backend.setup();
    server = await backend.start();
    cacheUrl = `${server.url}/cache`;
  });

  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  describe('mirroring from a trusted upstream', () => {
    let upstreamDir: string;
    let upstream: StaticServer;
    let upstreamKey: SigningKey;
    let rw: string;
    let baseline = 0;
    const usageBefore = () => baseline;

    /** Publishes `p` in the synthetic upstream, signed; `tamper` serves another (valid) NAR. */
    async function publish(p: FakePath, opts: { gzip?: boolean; tamper?: boolean; key?: SigningKey } = {}) {
      const narBody = opts.tamper
        ? serializeNar({ type: 'regular', contents: `evil ${randomBytes(8).toString('hex')}\n` })
        : p.nar;
      const file = `nar/${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar${opts.gzip ? '.gz' : ''}`;
      await mkdir(path.join(upstreamDir, 'nar'), { recursive: true });
      await writeFile(path.join(upstreamDir, file), opts.gzip ? gzipSync(narBody) : narBody);
      const meta = {
        storePath: p.base,
        narHash: parseHash(p.narHash),
        narSize: p.narSize,
        references: p.references as StorePathBase[],
      };
      const sig = signFingerprint(opts.key ?? upstreamKey, fingerprintPath(meta));
      await writeFile(
        path.join(upstreamDir, `${p.hashPart}.narinfo`),
        formatNarInfo({ ...meta, url: file, compression: opts.gzip ? 'gzip' : 'none', sigs: [sig] }),
      );
    }

    beforeAll(async () => {
      upstreamDir = await fixtureDir('upstream-synthetic');
      upstream = await serveDirectory(upstreamDir);
      upstreamKey = generateSigningKey('upstream.example-1');
      await createOrg(server, 'mirror');
      rw = (await createToken(server, 'mirror', ['read', 'write', 'admin'])).token;
      const denied = await api(server, rw, 'POST', '/api/v1/upstreams', {
        name: 'up',
        url: upstream.url,
        publicKeys: [formatPublicKey(upstreamKey)],
      });
      expect(denied.status).toBe(403);
      const noKey = await api(server, server.adminToken, 'POST', '/api/v1/upstreams', {
        name: 'up',
        url: upstream.url,
        publicKeys: [],
      });
      expect(noKey.status).toBe(400);
      const added = await api(server, server.adminToken, 'POST', '/api/v1/upstreams', {
        name: 'up',
        url: upstream.url,
        publicKeys: [formatPublicKey(upstreamKey)],
      });
      expect(added.status, JSON.stringify(added.body)).toBe(201);
      const listed = await api<{ upstreams: Array<{ name: string }> }>(
        server,
        server.adminToken,
        'GET',
        '/api/v1/upstreams',
      );
      expect(listed.body.upstreams.map((u) => u.name)).toEqual(['up']);
    });

    afterAll(async () => {
      await upstream?.stop();
    });

    it('the missing answer leaves only own paths to upload; the server stores verified full copies', async () => {
      const lib = fakePath('lib');
      const app = fakePath('app', undefined, [lib.base]);
      const own = fakePath('own', undefined, [app.base]);
      await publish(lib, { gzip: true });
      await publish(app);
      const r = await api<{ missing: string[]; mirrored: string[]; refused: unknown[] }>(
        server,
        rw,
        'POST',
        '/api/v1/cache/missing',
        { paths: [own, app, lib].map((p) => `/nix/store/${p.base}`) },
      );
      expect(r.status).toBe(200);
      expect(r.body.missing).toEqual([`/nix/store/${own.base}`]);
      expect(r.body.mirrored.sort()).toEqual([`/nix/store/${app.base}`, `/nix/store/${lib.base}`].sort());
      expect(r.body.refused).toEqual([]);
      expect((await batchUpload(rw, own)).status).toBe(201);
      // The upstream's signature is kept next to the server's, and the copy is readable like any path.
      const text = await (
        await fetch(`${cacheUrl}/${app.hashPart}.narinfo`, { headers: { Authorization: basicAuth(rw) } })
      ).text();
      expect(text).toMatch(/^Sig: upstream\.example-1:/m);
      expect(await closureProblems(rw, own.hashPart)).toEqual([]);
      const usageNow = await usage('mirror');
      expect(usageNow.paths).toBe(3);
      // The upstream disappears: the closure still comes whole from Floe.
      await upstream.stop();
      expect(await closureProblems(rw, own.hashPart)).toEqual([]);
      upstream = await serveDirectory(upstreamDir);
      await api(server, server.adminToken, 'DELETE', '/api/v1/upstreams/up');
      const re = await api(server, server.adminToken, 'POST', '/api/v1/upstreams', {
        name: 'up',
        url: upstream.url,
        publicKeys: [formatPublicKey(upstreamKey)],
      });
      expect(re.status).toBe(201);
    });

    it('refuses and reports an upstream NAR that does not match its signed hash; the client uploads its own copy', async () => {
      await sleep(2100); // the server's upstream list is memoized for 2 s
      const bad = fakePath('tampered');
      await publish(bad, { tamper: true });
      const r = await api<{ missing: string[]; mirrored: string[]; refused: Array<{ path: string; reason: string }> }>(
        server,
        rw,
        'POST',
        '/api/v1/cache/missing',
        { paths: [`/nix/store/${bad.base}`] },
      );
      expect(r.body.mirrored).toEqual([]);
      expect(r.body.missing).toEqual([`/nix/store/${bad.base}`]);
      expect(r.body.refused).toHaveLength(1);
      expect(r.body.refused[0]!.reason).toMatch(/NAR hash mismatch/);
      expect(await narinfoStatus(rw, bad)).toBe(404);
      expect((await batchUpload(rw, bad)).status).toBe(201);
      expect(await closureProblems(rw, bad.hashPart)).toEqual([]);
    });

    it('refuses an upstream narinfo signed by an untrusted key', async () => {
      const forged = fakePath('forged');
      await publish(forged, { key: generateSigningKey('upstream.example-1') });
      const r = await api<{ mirrored: string[]; refused: Array<{ path: string; reason: string }> }>(
        server,
        rw,
        'POST',
        '/api/v1/cache/missing',
        { paths: [`/nix/store/${forged.base}`] },
      );
      expect(r.body.mirrored).toEqual([]);
      expect(r.body.refused[0]!.reason).toMatch(/no valid signature by a trusted key/);
      expect(await narinfoStatus(rw, forged)).toBe(404);
    });

    it('a push referencing an upstream path the client never asked about fetches it at commit', async () => {
      const dep = fakePath('late-dep');
      await publish(dep);
      const top = fakePath('late-top', undefined, [dep.base]);
      const up = await batchUpload(rw, top);
      expect(up.status, JSON.stringify(up.body)).toBe(201);
      expect(await closureProblems(rw, top.hashPart)).toEqual([]);
    });

    it('a push whose references are nowhere is refused with the list of what is missing', async () => {
      const ghost1 = fakePath('ghost-one');
      const ghost2 = fakePath('ghost-two');
      const top = fakePath('orphaned-top', undefined, [ghost1.base, ghost2.base]);
      const up = await batchUpload(rw, top);
      expect(up.status).toBe(400);
      expect(up.body.message).toContain(ghost1.base);
      expect(up.body.message).toContain(ghost2.base);
      expect(up.body.message).toMatch(/not available from a trusted upstream/);
      expect(await narinfoStatus(rw, top)).toBe(404);
    });

    it("pull-through fills the reader's org on a narinfo miss; anonymous readers never make it fetch", async () => {
      const added = await api(server, server.adminToken, 'POST', '/api/v1/upstreams', {
        name: 'pt',
        url: upstream.url,
        publicKeys: [formatPublicKey(upstreamKey)],
        pullThrough: true,
      });
      expect(added.status).toBe(201);
      try {
        const reader = (await createToken(server, 'mirror', ['read'])).token;
        const dep = fakePath('pulled-dep');
        const top = fakePath('pulled', undefined, [dep.base]);
        await publish(dep, { gzip: true });
        await publish(top);
        baseline = (await usage('mirror')).paths;
        const anon = await fetch(`${cacheUrl}/${top.hashPart}.narinfo`);
        expect(anon.status).toBe(404);
        await anon.arrayBuffer();
        expect((await usage('mirror')).paths).toBe(usageBefore());
        expect(await closureProblems(reader, top.hashPart)).toEqual([]);
        expect((await usage('mirror')).paths).toBe(usageBefore() + 2);
        // A forged one is not pulled through.
        const forged = fakePath('pulled-forged');
        await publish(forged, { key: generateSigningKey('upstream.example-1') });
        expect(await narinfoStatus(reader, forged)).toBe(404);
      } finally {
        await api(server, server.adminToken, 'DELETE', '/api/v1/upstreams/pt');
      }
    });

    it('a mirrored path whose upstream closure has a hole is not mirrored', async () => {
      const hole = fakePath('hole');
      const above = fakePath('above-hole', undefined, [hole.base]);
      await publish(above); // `hole` is not published
      const r = await api<{ missing: string[]; mirrored: string[] }>(server, rw, 'POST', '/api/v1/cache/missing', {
        paths: [`/nix/store/${above.base}`],
      });
      expect(r.body.mirrored).toEqual([]);
      expect(r.body.missing).toEqual([`/nix/store/${above.base}`]);
      expect(await narinfoStatus(rw, above)).toBe(404);
    });
  });

  describe('garbage collection', () => {
    it('dry run reports without removing; GC keeps pinned closures and recent pushes, removes the rest', async () => {
      await sleep(1100);
      await gc({ grace: 1 }); // leftovers of earlier tests (the tampered upstream NAR) go first
      await createOrg(server, 'gc1');
      await createOrg(server, 'keepall');
      const rw = (await createToken(server, 'gc1', ['read', 'write', 'admin'])).token;
      const keepRW = (await createToken(server, 'keepall', ['read', 'write'])).token;
      const leaf = fakePath('leaf');
      const pinned = fakePath('pinned', undefined, [leaf.base]);
      const stray = fakePath('stray');
      const stray2 = fakePath('stray-two');
      for (const p of [leaf, pinned, stray, stray2]) expect((await batchUpload(rw, p)).status).toBe(201);
      // Another org (no retention set: keeps every push) holds the same content as `stray`.
      const sharedCopy = {
        ...fakePath('x'),
        base: `${encodeNix32(randomBytes(20))}-shared` as StorePathBase,
        nar: stray.nar,
        narHash: stray.narHash,
        narSize: stray.narSize,
      };
      sharedCopy.hashPart = sharedCopy.base.slice(0, 32);
      expect((await batchUpload(keepRW, sharedCopy)).status).toBe(201);

      const pin = await api(server, rw, 'POST', '/api/v1/orgs/gc1/pins', {
        name: 'release',
        storePath: `/nix/store/${pinned.base}`,
      });
      expect(pin.status, JSON.stringify(pin.body)).toBe(201);
      const badPin = await api(server, rw, 'POST', '/api/v1/orgs/gc1/pins', {
        name: 'nothing',
        storePath: `/nix/store/${fakePath('absent').base}`,
      });
      expect(badPin.status).toBe(400);
      const pins = await api<{ pins: Array<{ name: string }> }>(server, rw, 'GET', '/api/v1/orgs/gc1/pins');
      expect(pins.body.pins.map((p) => p.name)).toEqual(['release']);
      await setRetention('gc1', 0);
      await sleep(1200);
      const blobsBefore = await backend.countBlobs(server);

      const dry = await gc({ dryRun: true, grace: 1 });
      expect(dry.dryRun).toBe(true);
      expect(dry.sample.filter((l) => l.startsWith('gc1/'))).toHaveLength(2);
      expect(dry.sample.join('\n')).toContain(stray.base);
      expect(dry.sample.join('\n')).toContain(stray2.base);
      expect(dry.sample.join('\n')).not.toContain(pinned.base);
      expect(await narinfoStatus(rw, stray)).toBe(200);
      expect(await backend.countBlobs(server)).toBe(blobsBefore);

      const real = await gc({ grace: 1 });
      expect(real.dryRun).toBe(false);
      expect(real.sample.filter((l) => l.startsWith('gc1/')).sort()).toEqual(
        dry.sample.filter((l) => l.startsWith('gc1/')).sort(),
      );
      expect(await narinfoStatus(rw, stray)).toBe(404);
      expect(await narinfoStatus(rw, stray2)).toBe(404);
      expect(await closureProblems(rw, pinned.hashPart)).toEqual([]);
      // stray2's blob is gone; stray's NAR is still needed by the other org and stays.
      expect(await backend.countBlobs(server)).toBe(blobsBefore - 1);
      expect(await closureProblems(keepRW, sharedCopy.hashPart)).toEqual([]);
      // Once unpinned, the closure goes too.
      expect((await api(server, rw, 'DELETE', '/api/v1/orgs/gc1/pins/release')).status).toBe(200);
      await gc({ grace: 1 });
      expect(await narinfoStatus(rw, pinned)).toBe(404);
      expect(await narinfoStatus(rw, leaf)).toBe(404);
      expect((await usage('gc1')).paths).toBe(0);
    });

    it('release outputs (and their source tarballs) are roots', async () => {
      await createOrg(server, 'rel');
      const rw = (await createToken(server, 'rel', ['read', 'write'])).token;
      const publisher = (await createToken(server, 'rel', ['publish'])).token;
      const dep = fakePath('rel-dep');
      const out = fakePath('rel-out', undefined, [dep.base]);
      const unreleased = fakePath('rel-unreleased');
      for (const p of [dep, out, unreleased]) expect((await batchUpload(rw, p)).status).toBe(201);
      // A flake source tarball, published with the flakehub-push protocol, naming `out` as an output.
      const root = await mkdtemp('/tmp/floe-rel-');
      await mkdir(path.join(root, 'tool-source'));
      await writeFile(path.join(root, 'tool-source', 'flake.nix'), '{ outputs = { self }: { }; }\n');
      execFileSync('tar', ['-czf', path.join(root, 'src.tar.gz'), '-C', root, 'tool-source']);
      const tarball = await readFile(path.join(root, 'src.tar.gz'));
      const sha = createHash('sha256').update(tarball).digest('base64');
      const inventory = {
        packages: {
          children: {
            'x86_64-linux': { children: { default: { what: 'package', outputs: { out: `/nix/store/${out.base}` } } } },
          },
        },
      };
      const meta = {
        commit_count: 1,
        description: 'd',
        readme: null,
        repo: 'rel/tool',
        revision: 'a'.repeat(40),
        visibility: 'private',
        source_subdirectory: '',
        spdx_identifier: null,
        labels: [],
        outputs: { version: 1, docs: {}, inventory },
      };
      const auth = { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' };
      const stage = await fetch(`${server.url}/upload/rel/tool/0.1.0/${tarball.length}/${sha}`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify(meta),
      });
      expect(stage.status, await stage.clone().text()).toBe(200);
      const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
      expect(
        (
          await fetch(s3_upload_url, {
            method: 'PUT',
            headers: { 'Content-Type': 'application/gzip', 'x-amz-checksum-sha256': sha },
            body: new Uint8Array(tarball),
          })
        ).status,
      ).toBe(200);
      expect((await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers: auth })).status).toBe(200);
      await setRetention('rel', 0);
      await sleep(1100);
      const report = await gc({ grace: 1 });
      expect(report.sample.filter((l) => l.startsWith('rel/'))).toEqual([`rel/default /nix/store/${unreleased.base}`]);
      expect(await closureProblems(rw, out.hashPart)).toEqual([]);
      expect(await narinfoStatus(rw, unreleased)).toBe(404);
      // The tarball blob is known to the releases table: not an orphan, still served.
      const reader = (await createToken(server, 'rel', ['read'])).token;
      const tar = await fetch(`${server.url}/f/rel/tool/0.1.0.tar.gz`, {
        headers: { Authorization: `Bearer ${reader}` },
      });
      expect(tar.status).toBe(200);
      expect(Buffer.from(await tar.arrayBuffer()).equals(tarball)).toBe(true);
    });

    it('recent pushes within the retention window are roots', async () => {
      await createOrg(server, 'gc2');
      const rw = (await createToken(server, 'gc2', ['read', 'write'])).token;
      const p = fakePath('recent');
      expect((await batchUpload(rw, p)).status).toBe(201);
      await setRetention('gc2', '1h');
      await sleep(1100);
      await gc({ grace: 1 });
      expect(await narinfoStatus(rw, p)).toBe(200);
      await setRetention('gc2', 0);
      await gc({ grace: 1 });
      expect(await narinfoStatus(rw, p)).toBe(404);
    });

    it("keeps a NAR uploaded nix-copy style until its narinfo comes, however long GC's grace", async () => {
      await createOrg(server, 'gc3');
      const rw = (await createToken(server, 'gc3', ['read', 'write'])).token;
      await setRetention('gc3', 0);
      const p = fakePath('slow-narinfo');
      const narFile = `${encodeNix32(createHash('sha256').update(p.nar).digest())}.nar`;
      expect(
        (
          await fetch(`${cacheUrl}/nar/${narFile}`, {
            method: 'PUT',
            headers: { Authorization: basicAuth(rw) },
            body: new Uint8Array(p.nar),
          })
        ).status,
      ).toBe(201);
      await sleep(1100);
      await gc({ grace: 1 });
      // Had GC taken the NAR, its upload record would be gone too and the narinfo refused.
      const info = formatNarInfo({
        storePath: p.base,
        url: `nar/${narFile}`,
        compression: 'none',
        narHash: parseHash(p.narHash),
        narSize: p.narSize,
        references: [],
        sigs: [],
      });
      const put = await fetch(`${cacheUrl}/${p.hashPart}.narinfo`, {
        method: 'PUT',
        headers: { Authorization: basicAuth(rw) },
        body: info,
      });
      expect(put.status, await put.text()).toBe(201);
      expect(await closureProblems(rw, p.hashPart)).toEqual([]);
    });

    it('reclaims orphan blobs past the grace period, leaves young ones', async () => {
      const oldKey = `${encodeNix32(randomBytes(32))}.nar.zst`;
      const youngKey = `${encodeNix32(randomBytes(32))}.nar.zst`;
      await backend.putBlob(server, oldKey, randomBytes(100));
      await sleep(3100);
      await backend.putBlob(server, youngKey, randomBytes(100));
      const before = await backend.countBlobs(server);
      const dry = await gc({ dryRun: true, grace: 2 });
      expect(dry.orphanBlobs.collected).toBe(1);
      expect(await backend.countBlobs(server)).toBe(before);
      const real = await gc({ grace: 2 });
      expect(real.orphanBlobs).toMatchObject({ collected: 1, bytes: 100 });
      expect(await backend.countBlobs(server)).toBe(before - 1);
    });

    it('runs while pushes reference the paths it is collecting: every served closure stays complete', async () => {
      await createOrg(server, 'race');
      const rw = (await createToken(server, 'race', ['read', 'write'])).token;
      await setRetention('race', 0);
      const committed: FakePath[] = [];
      for (let round = 0; round < 3; round++) {
        const bases = Array.from({ length: 8 }, (_, i) => fakePath(`base-${round}-${i}`));
        for (const b of bases) expect((await batchUpload(rw, b)).status).toBe(201);
        await sleep(1100); // older than the grace period: all collectable unless referenced
        const pushes = bases.flatMap((b, i) => [
          fakePath(`top-${round}-${i}`, undefined, [b.base]),
          fakePath(`top2-${round}-${i}`, undefined, [b.base]),
        ]);
        // The first push lands before GC starts (its base becomes reachable from a recent root);
        // the rest race with it.
        const first = pushes.shift()!;
        expect((await batchUpload(rw, first)).status).toBe(201);
        committed.push(first);
        const results = await Promise.all([
          sleep(round * 10).then(() => gc({ grace: 1 })),
          ...pushes.map(async (p, i) => {
            await sleep(i * 3);
            return { p, r: await batchUpload(rw, p) };
          }),
        ]);
        for (const x of results.slice(1) as Array<{ p: FakePath; r: { status: number; body: { message?: string } } }>) {
          // Either the push won (its reference stays) or GC did (and the push was refused as incomplete).
          if (x.r.status === 201) committed.push(x.p);
          else
            expect(x.r, JSON.stringify(x.r.body)).toMatchObject({
              status: 400,
              body: { message: expect.stringMatching(/missing from race\/default/) },
            });
        }
        // One more run right after; tops pushed just now are recent roots.
        await gc({ grace: 1 });
        for (const p of committed) {
          if ((await narinfoStatus(rw, p)) === 200) expect(await closureProblems(rw, p.hashPart), p.base).toEqual([]);
        }
      }
      expect(committed.length).toBeGreaterThan(0);
    });
  });

  describe('scheduled GC', () => {
    it('FLOE_GC_INTERVAL runs GC by itself', async () => {
      const scheduled = await backend.start({ FLOE_GC_INTERVAL: '1s', FLOE_GC_GRACE: '1s' });
      try {
        await createOrg(scheduled, 'sched');
        const rw = (await createToken(scheduled, 'sched', ['read', 'write'])).token;
        const kept = fakePath('sched-kept');
        const p = fakePath('sched');
        for (const x of [p, kept]) {
          const meta = { storePath: `/nix/store/${x.base}`, narHash: x.narHash, narSize: x.narSize, references: [] };
          const up = await fetch(`${scheduled.url}/api/v1/cache/paths`, {
            method: 'PUT',
            headers: { Authorization: `Bearer ${rw}` },
            body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), x.nar])),
          });
          expect(up.status).toBe(201);
        }
        expect(
          (
            await api(scheduled, scheduled.adminToken, 'POST', '/api/v1/orgs/sched/pins', {
              name: 'keep',
              storePath: kept.base,
            })
          ).status,
        ).toBe(201);
        expect(
          (await api(scheduled, scheduled.adminToken, 'PATCH', '/api/v1/orgs/sched/settings', { retention: 0 })).status,
        ).toBe(200);
        const status = async (x: FakePath) =>
          (await fetch(`${scheduled.url}/cache/${x.hashPart}.narinfo`, { headers: { Authorization: basicAuth(rw) } }))
            .status;
        const deadline = Date.now() + 15_000;
        while ((await status(p)) === 200 && Date.now() < deadline) await sleep(250);
        expect(await status(p)).toBe(404);
        expect(await status(kept)).toBe(200);
        expect(scheduled.logs()).toMatch(/"msg":"gc done"/);
        // The path row may go one run before its NAR (still within the grace period then).
        const metricsText = () =>
          fetch(`${scheduled.url}/metrics`, { headers: { Authorization: `Bearer ${scheduled.adminToken}` } }).then(
            (r) => r.text(),
          );
        let metrics = await metricsText();
        for (
          const until = Date.now() + 10_000;
          !/floe_gc_deleted_bytes_total [1-9]/.test(metrics) && Date.now() < until;
          metrics = await metricsText()
        )
          await sleep(250);
        expect(metrics).toMatch(/floe_gc_runs_total\{result="ok"\} [1-9]/);
        expect(metrics).toMatch(/floe_gc_deleted_bytes_total [1-9]/);
        // The storage administration and the scheduled runs are in the audit trail.
        await sleep(600);
        const audit = await api<{ entries: Array<{ action: string; actor: string; target: string }> }>(
          scheduled,
          scheduled.adminToken,
          'GET',
          '/api/v1/audit?limit=1000',
        );
        const actions = audit.body.entries.map((e) => `${e.action} ${e.actor}`);
        expect(actions).toContain('pin.add server-admin:admin');
        expect(actions).toContain('org.settings server-admin:admin');
        expect(actions).toContain('gc.run server-admin:gc-schedule');
        // Scheduled runs refresh today's usage snapshot too: only the pinned path is left.
        await expect
          .poll(
            async () =>
              (
                await api<{ days: Array<{ paths: number }> }>(
                  scheduled,
                  scheduled.adminToken,
                  'GET',
                  '/api/v1/orgs/sched/usage/history',
                )
              ).body.days.at(-1)?.paths,
            { timeout: 5000 },
          )
          .toBe(1);
      } finally {
        await scheduled.cleanup();
      }
    });
  });

  describe('quotas and usage', () => {
    it('reports logical and deduplicated usage per org and slice', async () => {
      await createOrg(server, 'use');
      const admin = (await createToken(server, 'use', ['read', 'write', 'admin'])).token;
      expect((await api(server, admin, 'POST', '/api/v1/orgs/use/slices', { name: 'second' })).status).toBe(201);
      const p = fakePath('counted', { type: 'regular', contents: 'x'.repeat(5000) });
      expect((await batchUpload(admin, p)).status).toBe(201);
      expect((await batchUpload(admin, p, 'use/second')).status).toBe(201);
      const u = (await api<Usage>(server, admin, 'GET', '/api/v1/orgs/use/usage')).body;
      expect(u.paths).toBe(2);
      expect(u.logicalBytes).toBe(2 * p.narSize);
      expect(u.slices.map((s) => [s.name, s.paths, s.logicalBytes])).toEqual([
        ['default', 1, p.narSize],
        ['second', 1, p.narSize],
      ]);
      // One NAR, stored once (zstd, so smaller than the NAR).
      expect(u.storedBytes).toBe(u.slices[0]!.storedBytes);
      expect(u.slices[1]!.storedBytes).toBe(u.slices[0]!.storedBytes);
      expect(u.storedBytes).toBeGreaterThan(0);
      expect(u.storedBytes).toBeLessThan(p.narSize);
      const otherOrg = await api(server, admin, 'GET', '/api/v1/orgs/mirror/usage');
      expect(otherOrg.status).toBe(403);
      // A GC run snapshots every org's figures for the day (one aggregate query per org), the same as /usage.
      await gc({ grace: '1h' });
      const today = new Date().toISOString().slice(0, 10);
      await expect
        .poll(
          async () =>
            (
              await api<{ days: Array<{ day: string; paths: number; logicalBytes: number; storedBytes: number }> }>(
                server,
                admin,
                'GET',
                '/api/v1/orgs/use/usage/history',
              )
            ).body.days,
          { timeout: 5000 },
        )
        .toEqual([{ day: today, paths: 2, logicalBytes: 2 * p.narSize, storedBytes: u.storedBytes }]);
      expect((await api(server, admin, 'GET', '/api/v1/orgs/mirror/usage/history')).status).toBe(403);
    });

    it('refuses writes past the quota with a clear 413, storing nothing', async () => {
      await createOrg(server, 'small');
      const admin = (await createToken(server, 'small', ['read', 'write', 'admin'])).token;
      const denied = await api(server, admin, 'PATCH', '/api/v1/orgs/small/settings', { quota: '1M' });
      expect(denied.status).toBe(403);
      const first = fakePath('fits', { type: 'regular', contents: randomBytes(3000).toString('hex') });
      expect((await batchUpload(admin, first)).status).toBe(201);
      const used = (await usage('small')).storedBytes;
      const set = await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/small/settings', { quota: used + 1000 });
      expect(set.status).toBe(200);
      const big = fakePath('too-big', { type: 'regular', contents: randomBytes(4000).toString('hex') });
      const refused = await batchUpload(admin, big);
      expect(refused.status).toBe(413);
      expect(refused.body.message).toMatch(/quota exceeded: org small/);
      expect(await narinfoStatus(admin, big)).toBe(404);
      expect((await usage('small')).storedBytes).toBe(used);
      // The refused upload's NAR is on disk until collected and counts against the org meanwhile:
      // nix copy's way (NAR, then narinfo) is refused at the NAR, before its body is read.
      const narFile = `${encodeNix32(createHash('sha256').update(big.nar).digest())}.nar`;
      const narRes = await fetch(`${cacheUrl}/nar/${narFile}`, {
        method: 'PUT',
        headers: { Authorization: basicAuth(admin) },
        body: new Uint8Array(big.nar),
      });
      expect(narRes.status).toBe(413);
      expect(await narRes.text()).toMatch(/quota exceeded/);
      const info = formatNarInfo({
        storePath: big.base,
        url: `nar/${narFile}`,
        compression: 'none',
        narHash: parseHash(big.narHash),
        narSize: big.narSize,
        references: [],
        sigs: [],
      });
      const infoRes = await fetch(`${cacheUrl}/${big.hashPart}.narinfo`, {
        method: 'PUT',
        headers: { Authorization: basicAuth(admin) },
        body: info,
      });
      expect(infoRes.status).toBe(400); // no NAR was accepted under that name
      expect((await usage('small')).paths).toBe(1);
      // Re-pushing what is stored adds nothing and passes; new paths wait for room.
      expect((await batchUpload(admin, first)).status).toBe(200);
      const small = fakePath('tiny');
      expect((await batchUpload(admin, small)).status).toBe(413);
      // Raising the quota lets the big one in.
      await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/small/settings', { quota: null });
      expect((await batchUpload(admin, big)).status).toBe(201);
    });
  });
}
