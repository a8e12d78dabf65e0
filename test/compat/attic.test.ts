/**
 * Attic's API as the `attic` client (zhaofengli/attic b7c905657cb81b8ec9c26b0d9f53aa2e4f231810:
 * client/src/api/mod.rs, client/src/push.rs, client/src/command/use.rs) sends it, against a real
 * `floe serve`: cache names, cache-config, get-missing-paths, upload-path in both forms, and the
 * rules Floe's own uploads follow (verification, closure completeness, quotas, authorization,
 * audit). End to end: a closure built by real Nix 2.8, pushed the way `attic push` does, is
 * substituted by Nix 2.8 and the current Nix from the substituter endpoint cache-config names.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { parseHash } from '../../src/nix/hash.js';
import {
  buildClosure,
  fixtureDir,
  hostNix,
  modernNix,
  requireNix,
  writeClosureExpr,
  writeNetrc,
  copyFromCacheArgs,
} from '../helpers/nix.js';
import { AtticApiClient, type UploadPathNarInfo } from './attic-client.js';

const execFileAsync = promisify(execFile);
/** Any Nix hash text (nix32, SRI from `nix path-info --json`) as Attic's `sha256:<hex>`. */
const hex = (hash: string) => `sha256:${Buffer.from(parseHash(hash).digest).toString('hex')}`;

function infoOf(cache: string, p: FakePath, overrides: Partial<UploadPathNarInfo> = {}): UploadPathNarInfo {
  // push.rs upload_path: system and deriver are always None; references are full store paths.
  return {
    cache,
    store_path_hash: p.hashPart,
    store_path: `/nix/store/${p.base}`,
    references: p.references.map((r) => `/nix/store/${r}`),
    system: null,
    deriver: null,
    sigs: [],
    ca: null,
    nar_hash: hex(p.narHash),
    nar_size: p.narSize,
    ...overrides,
  };
}

describe('attic API', () => {
  let server: TestServer;
  let writer: AtticApiClient;
  let reader: AtticApiClient;
  let outsider: AtticApiClient;
  let rw: string;

  beforeAll(async () => {
    server = await startFloe();
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'ci' })).status).toBe(201);
    rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    // `attic login <name> <url> <token>`: the endpoint as the user typed it (no trailing slash).
    writer = new AtticApiClient(server.url, rw);
    reader = new AtticApiClient(server.url, (await createToken(server, 'acme', ['read'])).token);
    outsider = new AtticApiClient(server.url, (await createToken(server, 'other', ['read', 'write'])).token);
  }, 60_000);

  afterAll(async () => {
    await server?.cleanup();
  });

  it('cache-config names the slice URL and the org key (what `attic use` writes to nix.conf)', async () => {
    expect(writer.cacheConfigUrl('acme+ci')).toBe(`${server.url}/_api/v1/cache-config/acme+ci`);
    const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim().split(' ')[0];
    for (const [name, slice] of [
      ['acme', 'default'],
      ['acme+ci', 'ci'],
    ] as const) {
      const r = await writer.getCacheConfig(name);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({
        substituter_endpoint: `${server.url}/cache/acme/${slice}`,
        public_key: key,
        is_public: false,
        store_dir: '/nix/store',
        priority: 30,
        upstream_cache_key_names: [],
      });
      const info = await fetch(`${r.json.substituter_endpoint}/nix-cache-info`, {
        headers: { Authorization: `Bearer ${rw}` },
      });
      expect(await info.text()).toContain('StoreDir: /nix/store');
    }
  });

  it('answers an unknown, foreign or unnamable cache as Attic does for a missing one, in its error shape', async () => {
    for (const [client, name] of [
      [writer, 'nope'],
      [outsider, 'acme'],
      [writer, 'Bad Name'],
      [new AtticApiClient(server.url, undefined), 'acme'],
    ] as const) {
      const r = await client.getCacheConfig(name);
      expect(r.status).toBe(404);
      expect(r.json).toEqual({ code: 404, error: 'NoSuchCache', message: 'The requested cache does not exist.' });
    }
  });

  it('pushes like `attic push`: missing paths, then upload-path with the header form; Deduplicated on a repeat', async () => {
    const dep = fakePath('attic-dep');
    const top = fakePath('attic-top', undefined, [dep.base]);
    const missing = await writer.getMissingPaths('acme', [dep.hashPart, top.hashPart]);
    expect(missing.status, missing.text).toBe(200);
    expect(missing.json.missing_paths.sort()).toEqual([dep.hashPart, top.hashPart].sort());

    // Closure completeness: the top path before its reference is refused and nothing is stored.
    const early = await writer.uploadPath(infoOf('acme', top), top.nar);
    expect(early.status).toBe(400);
    expect(early.json).toMatchObject({ code: 400, error: 'BadRequest' });
    expect(early.json.message).toContain(dep.base);

    const first = await writer.uploadPath(infoOf('acme', dep), dep.nar, false, 7);
    expect(first.status, first.text).toBe(200);
    expect(first.json).toEqual({ kind: 'Uploaded', file_size: dep.narSize, frac_deduplicated: 0 });
    expect((await writer.uploadPath(infoOf('acme', top), top.nar)).status).toBe(200);
    const again = await writer.uploadPath(infoOf('acme', dep), dep.nar);
    expect(again.json.kind).toBe('Deduplicated');

    expect((await writer.getMissingPaths('acme', [dep.hashPart, top.hashPart])).json.missing_paths).toEqual([]);
    const narinfo = await fetch(`${server.url}/cache/acme/default/${top.hashPart}.narinfo`, {
      headers: { Authorization: `Bearer ${rw}` },
    });
    const text = await narinfo.text();
    expect(text).toContain(`StorePath: /nix/store/${top.base}`);
    expect(text).toContain(`NarHash: ${top.narHash}`);
    expect(text).toContain(`References: ${dep.base}`);
    expect(text).toMatch(/^Sig: [^\s:]*acme-1:/m);
    // Attic's substituter layout serves the same narinfo.
    const viaAttic = await fetch(`${server.url}/acme+default/${top.hashPart}.narinfo`, {
      headers: { Authorization: `Bearer ${rw}` },
    });
    expect(await viaAttic.text()).toBe(text);
  });

  it('takes the preamble form: forced, and at 4 KiB of path info', async () => {
    const forced = fakePath('attic-forced');
    const r = await writer.uploadPath(infoOf('acme+ci', forced), forced.nar, true);
    expect(r.status, r.text).toBe(200);
    expect((await writer.getMissingPaths('acme+ci', [forced.hashPart])).json.missing_paths).toEqual([]);

    // Thirty references with long names push the JSON past the threshold: the client switches by itself.
    const deps = Array.from({ length: 30 }, (_, i) => fakePath(`attic-ref-${i}-${'x'.repeat(120)}`));
    for (const d of deps) expect((await writer.uploadPath(infoOf('acme+ci', d), d.nar)).status).toBe(200);
    const big = fakePath(
      'attic-big',
      undefined,
      deps.map((d) => d.base),
    );
    const info = infoOf('acme+ci', big);
    expect(JSON.stringify(info).length).toBeGreaterThanOrEqual(4096);
    const up = await writer.uploadPath(info, big.nar);
    expect(up.status, up.text).toBe(200);
    const narinfo = await (
      await fetch(`${server.url}/cache/acme/ci/${big.hashPart}.narinfo`, { headers: { Authorization: `Bearer ${rw}` } })
    ).text();
    expect(narinfo).toContain(deps[29]!.base);
  });

  it('verifies the NAR against the path info and keeps nothing of a refused upload', async () => {
    const p = fakePath('attic-liar');
    const other = fakePath('attic-other');
    const wrongHash = await writer.uploadPath(infoOf('acme', p, { nar_hash: hex(other.narHash) }), p.nar);
    expect(wrongHash.status).toBe(400);
    expect(wrongHash.json.message).toMatch(/narHash.*mismatch/i);
    const wrongSize = await writer.uploadPath(infoOf('acme', p, { nar_size: p.narSize + 8 }), p.nar);
    expect(wrongSize.status).toBe(400);
    const notANar = await writer.uploadPath(infoOf('acme', p, { nar_size: 5 }), Buffer.from('hello'));
    expect(notANar.status).toBe(400);
    const mismatchedHashPart = await writer.uploadPath(infoOf('acme', p, { store_path_hash: other.hashPart }), p.nar);
    expect(mismatchedHashPart.status).toBe(400);
    expect((await writer.getMissingPaths('acme', [p.hashPart])).json.missing_paths).toEqual([p.hashPart]);
  });

  it('refuses bad path info with a 400 that says what is wrong', async () => {
    const res = await fetch(`${server.url}/_api/v1/upload-path`, {
      method: 'PUT',
      headers: { Authorization: `bearer ${rw}`, 'X-Attic-Nar-Info': '{"cache":"acme"}' },
      body: 'x',
    });
    expect(res.status).toBe(400);
    expect((await res.json()).message).toContain('X-Attic-Nar-Info.');
    const noInfo = await fetch(`${server.url}/_api/v1/upload-path`, {
      method: 'PUT',
      headers: { Authorization: `bearer ${rw}` },
      body: 'x',
    });
    expect(noInfo.status).toBe(400);
    const badSize = await fetch(`${server.url}/_api/v1/upload-path`, {
      method: 'PUT',
      headers: { Authorization: `bearer ${rw}`, 'X-Attic-Nar-Info-Preamble-Size': '999999999' },
      body: 'x',
    });
    expect(badSize.status).toBe(400);
    const shortBody = await fetch(`${server.url}/_api/v1/upload-path`, {
      method: 'PUT',
      headers: { Authorization: `bearer ${rw}`, 'X-Attic-Nar-Info-Preamble-Size': '100' },
      body: '{}',
    });
    expect(shortBody.status).toBe(400);
    const badMissing = await writer.getMissingPaths('acme', ['not-a-hash']);
    expect(badMissing.status).toBe(400);
  });

  it('decides writes with the same authorizer: read-only 403, other orgs and anonymous see no cache', async () => {
    const p = fakePath('attic-denied');
    const ro = await reader.uploadPath(infoOf('acme', p), p.nar);
    expect(ro.status).toBe(403);
    expect(ro.json).toMatchObject({ code: 403, error: 'Forbidden' });
    expect((await reader.getMissingPaths('acme', [p.hashPart])).status).toBe(403);
    expect((await outsider.uploadPath(infoOf('acme', p), p.nar)).status).toBe(404);
    expect((await new AtticApiClient(server.url, undefined).uploadPath(infoOf('acme', p), p.nar)).status).toBe(404);
    // A slice-limited token writes its slice only.
    const ciOnly = new AtticApiClient(
      server.url,
      (await createToken(server, 'acme', ['read', 'write'], { slices: ['ci'] })).token,
    );
    expect((await ciOnly.uploadPath(infoOf('acme', p), p.nar)).status).toBe(404);
    expect((await ciOnly.uploadPath(infoOf('acme+ci', p), p.nar)).status).toBe(200);
  });

  it('applies the org quota (413) and writes the commit to the audit log', async () => {
    const audit = await api<{ entries: Array<{ action: string; target: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/audit?limit=500',
    );
    expect(audit.status).toBe(200);
    expect(JSON.stringify(audit.body)).toContain('attic-dep');
    expect((await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/other/settings', { quota: 200 })).status).toBe(
      200,
    );
    const ow = new AtticApiClient(server.url, (await createToken(server, 'other', ['read', 'write'])).token);
    const first = fakePath('attic-quota-1');
    expect((await ow.uploadPath(infoOf('other', first), first.nar)).status).toBe(200); // reaches the quota
    const second = fakePath('attic-quota-2');
    const over = await ow.uploadPath(infoOf('other', second), second.nar);
    expect(over.status).toBe(413);
    expect(over.json.code).toBe(413);
  });

  it('a closure built by Nix 2.8 and pushed as `attic push` does is substituted by Nix 2.8 and the current Nix', async () => {
    if (!(await requireNix(hostNix))) return;
    const dir = await fixtureDir('attic');
    const home = (n: string) => path.join(dir, `home-${n}`);
    const out = await buildClosure(hostNix, await writeClosureExpr(dir), `attic-${Date.now()}`, home('build'));
    const { stdout } = await execFileAsync('nix', ['path-info', '--json', '--recursive', out], {
      env: { ...process.env, NIX_CONFIG: 'experimental-features = nix-command' },
    });
    const infos = JSON.parse(stdout) as Array<{
      path: string;
      narHash: string;
      narSize: number;
      references: string[];
      signatures?: string[];
      ca?: string;
    }>;
    expect(infos.length).toBe(2);
    const cache = 'acme+ci';
    const config = (await writer.getCacheConfig(cache)).json;
    const hashOf = (p: string) => path.basename(p).slice(0, 32);
    const missing = (
      await writer.getMissingPaths(
        cache,
        infos.map((i) => hashOf(i.path)),
      )
    ).json.missing_paths as string[];
    expect(missing.length).toBe(2);
    // Dependencies first (the push plan's order).
    for (const i of [...infos].sort((a) => (a.path === out ? 1 : -1))) {
      const nar = (await execFileAsync('nix-store', ['--dump', i.path], { encoding: 'buffer', maxBuffer: 64 << 20 }))
        .stdout as Buffer;
      const info: UploadPathNarInfo = {
        cache,
        store_path_hash: hashOf(i.path),
        store_path: i.path,
        references: i.references,
        system: null,
        deriver: null,
        sigs: i.signatures ?? [],
        ca: i.ca ?? null,
        nar_hash: hex(i.narHash),
        nar_size: i.narSize,
      };
      const r = await writer.uploadPath(info, nar);
      expect(r.status, r.text).toBe(200);
    }
    // `attic use`: substituter + trusted key + the token in netrc for the substituter's host.
    const netrc = await writeNetrc(dir, 'netrc', (await createToken(server, 'acme', ['read'])).token);
    const runners = [hostNix, ...((await modernNix.version()) ? [modernNix] : [])];
    for (const nix of runners) {
      const store = path.join(dir, `store-${nix.name}`);
      const r = await nix.run(
        copyFromCacheArgs({ key: config.public_key, netrc, from: config.substituter_endpoint, to: store }, out),
        { cacheHome: home(`sub-${nix.name}`) },
      );
      expect(r.code, `${nix.name}: ${r.stderr}`).toBe(0);
      expect(await readFile(path.join(store, out, 'data'), 'utf8')).toMatch(/^top attic-/);
    }
  }, 400_000);
});
