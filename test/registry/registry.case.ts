/**
 * The flake registry end to end: publishing with the flakehub-push protocol, versions, yanking,
 * private flakes, and real Nix (2.8 and current) locking and building from Floe flake URLs.
 * Written once, run on every storage backend.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { FLOE_BIN, api, basicAuth, createOrg, createToken, type TestServer } from '../helpers/server.js';
import type { Backend } from '../helpers/backends.js';
import { type NixRunner, hostNix, writeNetrc } from '../helpers/nix.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { openStorage } from '../../src/storage/open.js';
import { parseRequirement, parseVersion, resolveRequirement, versionSortKey } from '../../src/registry/version.js';

const exec = promisify(execFile);

export function registryScenarios(backend: Backend, nixVersions: Array<[NixRunner, string | undefined]>): void {
  let server: TestServer & { backendEnv: Record<string, string> };
  let publisher: string;
  let reader: string;
  let otherReader: string;
  const REV = (n: number) => n.toString(16).padStart(40, 'a');

  function flakeTarball(name: string, data: string): Buffer {
    const root = mkdtempSync('/tmp/floe-flake-');
    const dir = path.join(root, `${name}-source`);
    mkdirSync(dir);
    writeFileSync(
      path.join(dir, 'flake.nix'),
      `{ description = "${name}"; outputs = { self }: { greeting = "${data}"; }; }\n`,
    );
    writeFileSync(path.join(dir, 'data.txt'), `${data}\n`);
    execFileSync('tar', ['-czf', path.join(root, 'src.tar.gz'), '-C', root, `${name}-source`]);
    return readFileSync(path.join(root, 'src.tar.gz'));
  }

  /** The three calls flakehub-push makes. */
  async function flakehubPush(
    token: string,
    org: string,
    flake: string,
    version: string,
    tarball: Buffer,
    meta: Record<string, unknown>,
  ) {
    const sha = createHash('sha256').update(tarball).digest('base64');
    const auth = {
      Authorization: `Bearer ${token}`,
      'Content-Type': 'application/json',
      'User-Agent': 'flakehub-push',
    };
    const stage = await fetch(`${server.url}/upload/${org}/${flake}/${version}/${tarball.length}/${sha}`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(meta),
    });
    if (stage.status !== 200) return { stage: stage.status, message: await stage.text() };
    const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
    const put = await fetch(s3_upload_url, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/gzip', 'x-amz-checksum-sha256': sha },
      body: new Uint8Array(tarball),
    });
    if (put.status !== 200) return { stage: 200, put: put.status, message: await put.text() };
    const publish = await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers: auth });
    return { stage: 200, put: 200, publish: publish.status, message: await publish.text() };
  }

  const meta = (over: Record<string, unknown> = {}) => ({
    commit_count: 3,
    description: 'a greeting',
    readme: '# hello',
    repo: 'acme/hello',
    revision: REV(3),
    visibility: 'public',
    source_subdirectory: '',
    spdx_identifier: 'MIT',
    labels: ['demo'],
    ...over,
  });

  beforeAll(async () => {
    await backend.setup();
    server = await backend.start();
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    publisher = (await createToken(server, 'acme', ['publish'])).token;
    reader = (await createToken(server, 'acme', ['read'])).token;
    otherReader = (await createToken(server, 'other', ['read'])).token;
    expect(
      await flakehubPush(
        publisher,
        'acme',
        'hello',
        `0.1.3+rev-${REV(3)}`,
        flakeTarball('hello', 'hello three'),
        meta(),
      ),
    ).toMatchObject({ publish: 200 });
    expect(
      await flakehubPush(
        publisher,
        'acme',
        'hello',
        `0.1.5+rev-${REV(5)}`,
        flakeTarball('hello', 'hello five'),
        meta({ commit_count: 5, revision: REV(5) }),
      ),
    ).toMatchObject({ publish: 200 });
    expect(
      await flakehubPush(
        publisher,
        'acme',
        'secret',
        'v1.0.0',
        flakeTarball('secret', 'classified'),
        meta({ visibility: 'private', revision: REV(9), commit_count: 9 }),
      ),
    ).toMatchObject({ publish: 200 });
  });

  afterAll(async () => {
    await server?.cleanup();
    await backend.teardown();
  });

  describe('publishing', () => {
    it('a published version is immutable: 409, nothing changes', async () => {
      const again = await flakehubPush(
        publisher,
        'acme',
        'hello',
        `0.1.5+rev-${REV(6)}`,
        flakeTarball('hello', 'changed'),
        meta({ commit_count: 5, revision: REV(6) }),
      );
      expect(again.stage).toBe(409);
      const releases = await api<{ releases: Array<{ version: string; revision: string }> }>(
        server,
        undefined,
        'GET',
        '/api/v1/flakes/acme/hello/releases',
      );
      expect(releases.body.releases.map((r) => r.version)).toEqual([`0.1.5+rev-${REV(5)}`, `0.1.3+rev-${REV(3)}`]);
    });
    it('only publish-scoped tokens of the org may publish', async () => {
      expect((await flakehubPush(reader, 'acme', 'hello', '0.1.7', flakeTarball('hello', 'x'), meta())).stage).toBe(
        403,
      );
      expect(
        (await flakehubPush(otherReader, 'acme', 'hello', '0.1.7', flakeTarball('hello', 'x'), meta())).stage,
      ).toBe(403);
      const anon = await fetch(`${server.url}/token/status`);
      expect(anon.status).toBe(401);
    });
    it('rejects bad tarballs and bad metadata, leaving no release', async () => {
      const evil = flakeTarball('hello', 'x');
      const tampered = Buffer.from(evil);
      const r = await flakehubPush(publisher, 'acme', 'hello', '0.1.8', Buffer.from('not a tarball at all'), meta());
      expect(r.put).toBe(400);
      const sizeLie = await fetch(
        `${server.url}/upload/acme/hello/0.1.9/${evil.length}/${createHash('sha256').update(tampered).digest('base64')}`,
        {
          method: 'POST',
          headers: { Authorization: `Bearer ${publisher}` },
          body: JSON.stringify(meta({ revision: 'not-a-sha' })),
        },
      );
      expect(sizeLie.status).toBe(400);
      expect(await sizeLie.text()).toMatch(/revision/);
      const badVersion = await flakehubPush(publisher, 'acme', 'hello', 'latest', evil, meta());
      expect(badVersion.stage).toBe(400);
      const releases = await api<{ releases: unknown[] }>(
        server,
        undefined,
        'GET',
        '/api/v1/flakes/acme/hello/releases',
      );
      expect(releases.body.releases.length).toBe(2);
    });
  });

  describe('resolving and fetching', () => {
    it('redirects a requirement to the immutable release with a Link header', async () => {
      const res = await fetch(`${server.url}/f/acme/hello/0.1.tar.gz`, { redirect: 'manual' });
      expect(res.status).toBe(302);
      const location = res.headers.get('location')!;
      expect(location).toMatch(
        new RegExp(`/f/pinned/acme/hello/0\\.1\\.5%2Brev-${REV(5)}/[0-9a-f-]{36}/source\\.tar\\.gz$`),
      );
      const link = res.headers.get('link')!;
      expect(link).toMatch(/^<.*\?rev=a+5&revCount=5&lastModified=\d+&narHash=sha256-[^>]+>; rel="immutable"$/);
      const tarball = await fetch(location);
      expect(tarball.status).toBe(200);
      const etag = tarball.headers.get('etag')!;
      expect((await fetch(location, { headers: { 'If-None-Match': etag } })).status).toBe(304);
      expect(
        (await fetch(`${server.url}/f/acme/hello/=0.1.3`, { redirect: 'manual' })).headers.get('location'),
      ).toMatch(/0\.1\.3%2B/);
      expect((await fetch(`${server.url}/f/acme/hello/2`, { redirect: 'manual' })).status).toBe(404);
    });

    it('yanked releases stop resolving but stay fetchable by their pinned URL', async () => {
      const pinned = (await fetch(`${server.url}/f/acme/hello/0.1.tar.gz`, { redirect: 'manual' })).headers.get(
        'location',
      )!;
      expect(
        (
          await api(
            server,
            publisher,
            'POST',
            `/api/v1/flakes/acme/hello/releases/${encodeURIComponent(`0.1.5+rev-${REV(5)}`)}/yank`,
          )
        ).status,
      ).toBe(200);
      expect(
        (await fetch(`${server.url}/f/acme/hello/0.1.tar.gz`, { redirect: 'manual' })).headers.get('location'),
      ).toMatch(/0\.1\.3%2B/);
      expect((await fetch(pinned)).status).toBe(200);
    });

    it('resolves among thousands of releases exactly as matching every release would', async () => {
      // One real release, then thousands of rows beside it (the same tarball), written straight
      // into the database: rolling 0.<minor>.<n>, semver lines, prereleases, yanked ones, and a
      // few without a sort key (as an older replica writes them during an upgrade).
      const otherPublisher = (await createToken(server, 'other', ['publish'])).token;
      expect(
        await flakehubPush(
          otherPublisher,
          'other',
          'many',
          '0.1.0',
          flakeTarball('many', 'many'),
          meta({ revision: REV(1), commit_count: 1 }),
        ),
      ).toMatchObject({ publish: 200 });
      const storage = await openStorage({ dataDir: server.dataDir, databaseUrl: server.backendEnv.FLOE_DATABASE_URL });
      const rows: Array<{ version: string; yanked: boolean }> = [{ version: '0.1.0', yanked: false }];
      try {
        const seed = await storage.db
          .selectFrom('releases')
          .innerJoin('flakes', 'flakes.id', 'releases.flake_id')
          .selectAll('releases')
          .where('flakes.name', '=', 'many')
          .executeTakeFirstOrThrow();
        const versions: Array<{ text: string; yanked: boolean; unkeyed?: boolean }> = [];
        for (let n = 1; n <= 2500; n++)
          versions.push({ text: `0.1.${n}+rev-${REV(n)}`, yanked: n % 7 === 0 || n === 2500 });
        for (let n = 1; n <= 300; n++)
          versions.push({ text: `0.2.${n}+rev-${REV(n)}`, yanked: n > 290, unkeyed: n === 150 });
        for (let a = 1; a <= 3; a++)
          for (let b = 0; b < 60; b++) versions.push({ text: `${a}.${b}.${b % 3}`, yanked: a === 3 && b === 59 });
        // Prereleases above every release of their line: they must not win without being asked for.
        for (let n = 0; n < 40; n++)
          versions.push(
            { text: `4.0.0-rc.${n}`, yanked: n === 39 },
            { text: `3.59.${n + 3}-beta.${n}`, yanked: false },
          );
        versions.push({ text: '3.60.0', yanked: false, unkeyed: true }, { text: '2.0.0-alpha', yanked: false });
        const values = versions.map((v, i) => {
          const parsed = parseVersion(v.text);
          const key = `${parsed.major}.${parsed.minor}.${parsed.patch}${parsed.prerelease.length ? `-${parsed.prerelease.join('.')}` : ''}`;
          return {
            ...seed,
            id: `bulk-${i}`,
            version: v.text,
            version_key: key,
            version_sort: v.unkeyed ? null : versionSortKey(parsed),
            yanked_at: v.yanked ? seed.created_at : null,
          };
        });
        for (let i = 0; i < values.length; i += 200)
          await storage.db
            .insertInto('releases')
            .values(values.slice(i, i + 200))
            .execute();
        rows.push(...versions.map((v) => ({ version: v.text, yanked: v.yanked })));
      } finally {
        await storage.close();
      }
      expect(rows.length).toBeGreaterThan(3000);
      const candidates = rows.filter((r) => !r.yanked).map((r) => ({ version: parseVersion(r.version) }));
      const requirements = [
        '*',
        '0.1',
        '0.1.*',
        '=0.1.2499',
        '=0.1.2500',
        '0.2',
        '~0.2.150',
        '=0.2.150',
        '1',
        '^1.30',
        '~2.59',
        '=2.59',
        '>=1, <2',
        '>2.10.1, <=2.20.0',
        '3',
        '3.59',
        '>=3.59.0-beta.0',
        '=3.59.5-beta.2',
        '4',
        '>=4.0.0-rc.0',
        '=4.0.0-rc.39',
        '^4.0.0-rc.5',
        '2.0.0-alpha',
        '5',
        '<0.1.3',
        '0.0',
      ];
      for (const r of requirements) {
        const expected = resolveRequirement(candidates, parseRequirement(r))?.version.text;
        const res = await fetch(`${server.url}/f/other/many/${encodeURIComponent(r)}.tar.gz`, { redirect: 'manual' });
        const location = res.headers.get('location');
        const got = location
          ? decodeURIComponent(/\/f\/pinned\/other\/many\/([^/]+)\//.exec(location)![1]!)
          : undefined;
        expect({ r, got }).toEqual({ r, got: expected });
        expect(res.status).toBe(expected ? 302 : 404);
      }
      // Spot checks that the reference itself says what the edge cases mean.
      const at = async (r: string) =>
        decodeURIComponent(
          /\/many\/([^/]+)\//.exec(
            (await fetch(`${server.url}/f/other/many/${encodeURIComponent(r)}`, { redirect: 'manual' })).headers.get(
              'location',
            ) ?? '//many/none/',
          )![1]!,
        );
      expect(await at('0.1')).toBe(`0.1.2498+rev-${REV(2498)}`); // 2499 and 2500 are yanked
      expect(await at('0.2')).toBe(`0.2.290+rev-${REV(290)}`);
      expect(await at('=0.2.150')).toBe(`0.2.150+rev-${REV(150)}`);
      expect(await at('*')).toBe('3.60.0');
      expect(await at('>=4.0.0-rc.0')).toBe('4.0.0-rc.38');
      expect(await at('=3.59.5-beta.2')).toBe('3.59.5-beta.2');
      expect(await at('=0.1.2499')).toBe('none');
      // The fh-compatible route answers from the same resolution.
      const fh = await fetch(`${server.url}/version/other/many/${encodeURIComponent('~2.59')}`);
      expect(fh.status).toBe(200);
      expect(((await fh.json()) as { version: string }).version).toMatch(/^2\.59\.2/);
    });

    it('private flakes do not exist for outsiders', async () => {
      const miss = await fetch(`${server.url}/f/acme/nonexistent/1`, { redirect: 'manual' });
      const missBody = await miss.text();
      for (const token of [undefined, otherReader]) {
        const headers = token ? { Authorization: basicAuth(token) } : undefined;
        const r = await fetch(`${server.url}/f/acme/secret/1`, { redirect: 'manual', ...(headers ? { headers } : {}) });
        expect(r.status).toBe(404);
        expect(await r.text()).toBe(missBody);
        expect((await api(server, token, 'GET', '/api/v1/flakes/acme/secret/releases')).status).toBe(404);
      }
      const ok = await fetch(`${server.url}/f/acme/secret/1`, {
        redirect: 'manual',
        headers: { Authorization: basicAuth(reader) },
      });
      expect(ok.status).toBe(302);
      expect((await fetch(ok.headers.get('location')!)).status).toBe(404);
      expect((await fetch(ok.headers.get('location')!, { headers: { Authorization: basicAuth(reader) } })).status).toBe(
        200,
      );
    });
  });

  describe('discovery', () => {
    it('searches public flakes, ranked, and hides private and unlisted ones from outsiders', async () => {
      expect(
        await flakehubPush(
          publisher,
          'acme',
          'hello-extras',
          '1.0.0',
          flakeTarball('hello-extras', 'x'),
          meta({ description: 'more hello', labels: ['greeting'] }),
        ),
      ).toMatchObject({ publish: 200 });
      expect(
        await flakehubPush(
          publisher,
          'acme',
          'quiet',
          '1.0.0',
          flakeTarball('quiet', 'x'),
          meta({ visibility: 'unlisted', description: 'hello unlisted' }),
        ),
      ).toMatchObject({ publish: 200 });
      const anon = await api<{ results: Array<{ org: string; flake: string }> }>(
        server,
        undefined,
        'GET',
        '/api/v1/search?q=hello',
      );
      expect(anon.body.results.map((r) => r.flake)).toEqual(['hello', 'hello-extras']);
      const member = await api<{ results: Array<{ flake: string }> }>(server, reader, 'GET', '/api/v1/search?q=hello');
      expect(member.body.results.map((r) => r.flake)).toContain('quiet');
      const labels = await api<{ results: Array<{ flake: string }> }>(
        server,
        undefined,
        'GET',
        '/api/v1/search?q=greeting',
      );
      expect(labels.body.results[0]!.flake).toBe('hello-extras'); // label match ranks above a description match
      const list = await api<{ flakes: Array<{ flake: string }> }>(
        server,
        undefined,
        'GET',
        '/api/v1/orgs/acme/flakes',
      );
      expect(list.body.flakes.map((f) => f.flake).sort()).toEqual(['hello', 'hello-extras']);
      const secretList = await api<{ flakes: Array<{ flake: string }> }>(
        server,
        reader,
        'GET',
        '/api/v1/orgs/acme/flakes',
      );
      expect(secretList.body.flakes.map((f) => f.flake)).toContain('secret');
      // Unlisted: absent from listings, fetchable by URL.
      expect((await fetch(`${server.url}/f/acme/quiet/1`, { redirect: 'manual' })).status).toBe(302);
    });
  });

  describe('output resolution', () => {
    it('resolves org/flake/req#attr to its store path, only for those who may read it in the cache', async () => {
      const p = fakePath('hello-bin');
      const inventory = {
        packages: {
          children: {
            'x86_64-linux': {
              children: {
                default: {
                  what: 'package',
                  derivation: `/nix/store/${fakePath('drv').base}.drv`,
                  outputs: { out: `/nix/store/${p.base}` },
                },
              },
            },
          },
        },
      };
      expect(
        await flakehubPush(
          publisher,
          'acme',
          'tool',
          '2.0.0',
          flakeTarball('tool', 'x'),
          meta({ outputs: { version: 1, docs: {}, inventory } }),
        ),
      ).toMatchObject({ publish: 200 });
      const url = '/api/v1/flakes/acme/tool/resolve/2/output/packages.x86_64-linux.default';
      const before = await api<{ message: string }>(server, reader, 'GET', url);
      expect(before.status).toBe(404);
      expect(before.body.message).toMatch(/not in the cache/);
      const writer = (await createToken(server, 'acme', ['write'])).token;
      expect(await nixStyleUpload(`${server.url}/cache`, basicAuth(writer), p)).toMatchObject({ narinfo: 201 });
      const ok = await api<{ storePath: string; version: string }>(server, reader, 'GET', url);
      expect(ok.body).toMatchObject({ storePath: `/nix/store/${p.base}`, version: '2.0.0' });
      // The flake is public, the path is private to acme: outsiders learn nothing about it.
      expect((await api(server, otherReader, 'GET', url)).status).toBe(404);
      const missing = await api<{ message: string }>(
        server,
        reader,
        'GET',
        '/api/v1/flakes/acme/tool/resolve/2/output/packages.x86_64-linux.nope',
      );
      expect(missing.body.message).toMatch(/has no output/);
      // The same through the CLI.
      const cli = (args: string[]) =>
        exec(process.execPath, [FLOE_BIN, ...args], {
          env: { ...process.env, FLOE_SERVER: server.url, FLOE_TOKEN: reader },
        });
      expect((await cli(['resolve', 'acme/tool/2#packages.x86_64-linux.default'])).stdout.trim()).toBe(
        `/nix/store/${p.base}`,
      );
      expect((await cli(['resolve', 'acme/tool/2'])).stdout).toMatch(/^acme\/tool 2\.0\.0 /);
      expect((await cli(['search', 'tool'])).stdout).toMatch(/^acme\/tool/m);
      expect((await cli(['status'])).stdout).toMatch(/in org acme[\s\S]*scopes: read/);
      const bad = await cli(['resolve', 'nonsense']).catch((e) => e as { stderr: string });
      expect(bad.stderr).toMatch(/expected <org>\/<flake>/);
    });
  });

  async function lockAndBuild(nix: NixRunner, tag: string, input: string, netrc?: string) {
    const dir = mkdtempSync(`/tmp/floe-consumer-${tag}-`);
    writeFileSync(
      path.join(dir, 'flake.nix'),
      `{ inputs.dep.url = "${input}";
    outputs = { self, dep }: { packages.x86_64-linux.default = derivation { name = "consumer-${tag}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat \${dep}/data.txt > $out" ]; PATH = "/usr/bin:/bin"; }; }; }\n`,
    );
    const opts = netrc ? ['--option', 'netrc-file', netrc] : [];
    const cacheHome = path.join(dir, '.cache');
    const lock = await nix.run(['nix', 'flake', 'lock', ...opts, `path:${dir}`], { cacheHome });
    if (lock.code !== 0) return { lock, dir };
    const build = await nix.run(
      ['nix', 'build', ...opts, '--no-link', '--json', `path:${dir}#packages.x86_64-linux.default`],
      { cacheHome },
    );
    return {
      lock,
      build,
      dir,
      locked: JSON.parse(await readFile(path.join(dir, 'flake.lock'), 'utf8')).nodes.dep.locked as Record<
        string,
        unknown
      >,
    };
  }

  for (const [nix, version] of nixVersions) {
    describe.skipIf(!version)(`real Nix (${version ?? nix.name})`, () => {
      it('locks and builds a consumer of a public Floe flake', async () => {
        const r = await lockAndBuild(nix, `pub-${nix.name}`, `${server.url}/f/acme/hello/0.1.tar.gz`);
        expect(r.lock.code, r.lock.stderr).toBe(0);
        expect(r.build!.code, r.build!.stderr).toBe(0);
        expect(r.locked!.narHash).toMatch(/^sha256-/);
        if (nix === hostNix) {
          // Nix 2.8 ignores Link: it locks the URL it was given, plus the narHash.
          expect(r.locked!.url).toBe(`${server.url}/f/acme/hello/0.1.tar.gz`);
          expect(r.locked).not.toHaveProperty('rev');
        } else {
          expect(r.locked!.url).toMatch(/\/f\/pinned\/acme\/hello\/0\.1\.3%2Brev-a+3\/[0-9a-f-]{36}\/source\.tar\.gz$/);
          expect(r.locked).toMatchObject({ rev: REV(3), revCount: 3 });
        }
        const out = JSON.parse(r.build!.stdout)[0].outputs.out as string;
        const storeRoot = nix === hostNix ? '' : '/var/lib/nix-modern';
        expect(readFileSync(`${storeRoot}${out}`, 'utf8')).toBe('hello three\n');
      });

      it('moves the lock to a newer release with nix flake update', async () => {
        const flake = `upd-${nix.name.replace(/[^a-z0-9]/g, '')}`;
        expect(
          await flakehubPush(
            publisher,
            'acme',
            flake,
            '0.1.1',
            flakeTarball(flake, 'one'),
            meta({ commit_count: 1, revision: REV(1) }),
          ),
        ).toMatchObject({ publish: 200 });
        const first = await lockAndBuild(nix, `upd1-${nix.name}`, `${server.url}/f/acme/${flake}/0.1.tar.gz`);
        expect(first.build!.code, first.build!.stderr).toBe(0);
        expect(
          await flakehubPush(
            publisher,
            'acme',
            flake,
            '0.1.2',
            flakeTarball(flake, 'two'),
            meta({ commit_count: 2, revision: REV(2) }),
          ),
        ).toMatchObject({ publish: 200 });
        const cacheHome = path.join(first.dir, '.cache');
        // Nix >= 2.19 takes the flake with --flake (positional arguments name inputs).
        const target = nix === hostNix ? [`path:${first.dir}`] : ['--flake', `path:${first.dir}`];
        const update = await nix.run(['nix', 'flake', 'update', '--option', 'tarball-ttl', '0', ...target], {
          cacheHome,
        });
        expect(update.code, update.stderr).toBe(0);
        const locked = JSON.parse(await readFile(path.join(first.dir, 'flake.lock'), 'utf8')).nodes.dep
          .locked as Record<string, unknown>;
        expect(locked.narHash).not.toBe(first.locked!.narHash);
        if (nix !== hostNix) expect(String(locked.url)).toMatch(/0\.1\.2\//);
        const build = await nix.run(
          ['nix', 'build', '--no-link', '--json', `path:${first.dir}#packages.x86_64-linux.default`],
          { cacheHome },
        );
        expect(build.code, build.stderr).toBe(0);
        const storeRoot = nix === hostNix ? '' : '/var/lib/nix-modern';
        expect(readFileSync(`${storeRoot}${JSON.parse(build.stdout)[0].outputs.out}`, 'utf8')).toBe('two\n');
      });

      it('locks a private flake only with netrc credentials', async () => {
        const denied = await lockAndBuild(nix, `priv-anon-${nix.name}`, `${server.url}/f/acme/secret/1.tar.gz`);
        expect(denied.lock.code).not.toBe(0);
        const netrc = await writeNetrc(mkdtempSync('/tmp/floe-netrc-'), 'netrc', reader);
        const ok = await lockAndBuild(nix, `priv-${nix.name}`, `${server.url}/f/acme/secret/1.tar.gz`, netrc);
        expect(ok.lock.code, ok.lock.stderr).toBe(0);
        expect(ok.build!.code, ok.build!.stderr).toBe(0);
      });
    });
  }
}
