/**
 * `fh` (DeterminateSystems/fh fce8d029fc320626c220b93de6183320edee8c3f) against a real
 * `floe serve`: each request as src/cli/cmd/mod.rs builds it (`flakehub_url!` pushes path
 * segments, so they are percent-encoded once, and `versions()` encodes the requirement before that:
 * twice; `Accept: application/json`, `User-Agent: fh/<version>`, `Bearer` when logged in), and
 * the `fh apply` flow: resolve with `include_token=true`, then real `nix copy --from <cache>` with
 * that token in a netrc (`machine <cache host> login flakehub password <token>`).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { buildClosure, fixtureDir, hostNix, requireNix, writeClosureExpr, writeNetrc } from '../helpers/nix.js';

const exec = promisify(execFile);
const nixVersion = await requireNix(hostNix);

/** url's path-segment percent-encode set (what `path_segments_mut().push` escapes). */
const pushSegment = (s: string) => s.replace(/[\x00-\x20"#<>?`{}/%\x7f-\uffff]/g, (ch) => encodeURIComponent(ch));
/** `urlencoding::encode`: everything but A-Z a-z 0-9 - . _ ~ */
const urlencoding = (s: string) =>
  Array.from(Buffer.from(s, 'utf8'))
    .map((b) =>
      /[A-Za-z0-9\-._~]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');

describe.skipIf(!nixVersion)('fh', () => {
  let server: TestServer;
  let dir: string;
  let user: string;
  let publisher: string;
  let web: string;
  let db: string;
  let machine = 0;
  const newMachine = () => path.join(dir, `machine-${machine++}`);
  const fhUrl = (...segments: string[]) => `${server.url}/${segments.map(pushSegment).join('/')}`;
  const fh = (url: string, token?: string) =>
    fetch(url, {
      headers: {
        Accept: 'application/json',
        'User-Agent': 'fh/0.1.25',
        ...(token ? { Authorization: `Bearer ${token}` } : {}),
      },
    });

  async function publish(version: string, outputs: Record<string, string>) {
    const root = mkdtempSync('/tmp/floe-fh-flake-');
    mkdirSync(path.join(root, 'source'));
    writeFileSync(path.join(root, 'source', 'flake.nix'), `{ outputs = _: { }; } # ${version}\n`);
    await exec('tar', ['-czf', path.join(root, 't.tar.gz'), '-C', root, 'source']);
    const bytes = readFileSync(path.join(root, 't.tar.gz'));
    const sha = createHash('sha256').update(bytes).digest('base64');
    const children = Object.fromEntries(
      Object.entries(outputs).map(([name, out]) => [name, { what: 'NixOS configuration', outputs: { out } }]),
    );
    const headers = { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' };
    const meta = {
      visibility: 'public',
      description: 'Our machines',
      labels: ['nixos', 'infra'],
      repo: 'acme-gh/infra',
      spdx_identifier: 'MIT',
      revision: 'b'.repeat(40),
      commit_count: 7,
      outputs: { version: 1, docs: {}, inventory: { nixosConfigurations: { children } } },
    };
    const stage = await fetch(`${server.url}/upload/acme/infra/${version}/${bytes.length}/${sha}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(meta),
    });
    expect(stage.status, await stage.clone().text()).toBe(200);
    const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
    await fetch(s3_upload_url, { method: 'PUT', body: new Uint8Array(bytes) });
    expect((await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers })).status).toBe(200);
  }

  async function build(name: string): Promise<string> {
    const out = await buildClosure(
      hostNix,
      await writeClosureExpr(dir),
      `${name}${Date.now().toString(36)}`,
      newMachine(),
    );
    const netrc = await writeNetrc(dir, `rw-${name}`, (await createToken(server, 'acme', ['read', 'write'])).token);
    const pushed = await hostNix.run(
      ['nix', 'copy', '--option', 'netrc-file', netrc, '--to', `${server.url}/cache`, out],
      { cacheHome: newMachine() },
    );
    if (pushed.code !== 0) throw new Error(pushed.stderr);
    return out;
  }

  beforeAll(async () => {
    server = await startFloe();
    dir = await fixtureDir('fh');
    await createOrg(server, 'acme');
    publisher = (await createToken(server, 'acme', ['publish'])).token;
    user = (await createToken(server, 'acme', ['read'])).token;
    web = await build('web');
    db = await build('db');
    await publish('0.1.4', { web, db });
    await publish('0.1.5', { web, db });
    await publish('0.2.0', { web, db });
  }, 180_000);

  afterAll(async () => {
    await server?.cleanup();
  });

  it('search, list flakes / labels / orgs / projects answer bare arrays', async () => {
    const search = await fh(`${fhUrl('search')}?q=machines`);
    expect(await search.json()).toEqual([
      { org: 'acme', project: 'infra', description: 'Our machines', labels: ['nixos', 'infra'] },
    ]);
    expect(await (await fh(fhUrl('flakes'), user)).json()).toEqual([
      { org: 'acme', project: 'infra', labels: ['nixos', 'infra'] },
    ]);
    expect(await (await fh(fhUrl('label', 'nixos'), user)).json()).toEqual([
      { org: 'acme', project: 'infra', labels: ['nixos', 'infra'] },
    ]);
    expect(await (await fh(fhUrl('label', 'rust'), user)).json()).toEqual([]);
    expect(await (await fh(`${fhUrl('orgs')}?include_public=true`, user)).json()).toEqual([{ name: 'acme' }]);
    expect(await (await fh(fhUrl('orgs', 'acme', 'projects'), user)).json()).toEqual([
      { organization_name: 'acme', name: 'infra' },
    ]);
  });

  it('releases, and version resolution with the requirement encoded twice', async () => {
    const releases = (await (await fh(fhUrl('f', 'acme', 'infra', 'releases'), user)).json()) as Array<{
      version: string;
      simplified_version: string;
      revision: string;
      commit_count: number;
    }>;
    expect(releases.map((r) => r.version).sort()).toEqual(['0.1.4', '0.1.5', '0.2.0']);
    expect(releases[0]).toMatchObject({ revision: 'b'.repeat(40), commit_count: 7 });
    for (const req of ['~0.1', '^0.1', '0.1.*', '>=0.1.4, <0.2']) {
      const url = fhUrl('version', 'resolve', 'acme', 'infra', urlencoding(req));
      const r = await fh(url, user);
      expect(r.status, `${req}: ${url}`).toBe(200);
      expect(((await r.json()) as Array<{ version: string }>).map((v) => v.version).sort()).toEqual(['0.1.4', '0.1.5']);
    }
    expect((await fh(fhUrl('version', 'resolve', 'acme', 'infra', urlencoding('=0.2.0')), user)).status).toBe(200);
  });

  it('the release object keeps 0.1 in its channel and pins its download URL', async () => {
    const r = await fh(fhUrl('version', 'acme', 'infra', '0.1'), user);
    expect(r.status).toBe(200);
    const rel = await r.json();
    expect(rel).toMatchObject({
      version: '0.1.5',
      simplified_version: '0.1.5',
      revision: 'b'.repeat(40),
      commit_count: 7,
      description: 'Our machines',
      visibility: 'public',
      repo_url: 'https://github.com/acme-gh/infra',
      source_github_owner_repo_pair: 'acme-gh/infra',
      spdx_identifier: 'MIT',
      yanked_at: null,
      mirrored: false,
      project: 'acme/infra',
    });
    expect(rel.download_url).toMatch(
      new RegExp(`^${server.url}/f/pinned/acme/infra/0\\.1\\.5/[0-9a-f-]+/source\\.tar\\.gz$`),
    );
    expect((await fetch(rel.download_url)).status).toBe(200);
    const pretty = await fetch(rel.pretty_download_url, { redirect: 'manual' });
    expect(pretty.headers.get('location')).toBe(rel.download_url);
    expect((await fh(fhUrl('version', 'acme', 'nope', '0.1'), user)).status).toBe(404);
  });

  it('/f/{org}/{flake} is JSON for fh and still a tarball redirect for Nix', async () => {
    const json = await fh(fhUrl('f', 'acme', 'infra'), user);
    expect(await json.json()).toEqual({
      project: 'acme/infra',
      pretty_download_url: `${server.url}/f/acme/infra/*.tar.gz`,
    });
    const nix = await fetch(`${server.url}/f/acme/infra`, { redirect: 'manual' });
    expect(nix.status).toBe(302);
    expect(nix.headers.get('location')).toContain('/f/pinned/acme/infra/0.2.0/');
  });

  it('`fh apply`: the scoped token substitutes exactly the resolved output closure with real Nix', async () => {
    const r = await fh(
      `${fhUrl('f', 'acme', 'infra', '0.1', 'output', 'nixosConfigurations.web')}?include_token=true`,
      user,
    );
    expect(r.status, await r.clone().text()).toBe(200);
    const resolved = (await r.json()) as { attribute_path: string; store_path: string; token: string };
    expect(resolved).toMatchObject({ attribute_path: 'nixosConfigurations.web', store_path: web });
    // create_temp_netrc: login flakehub password <token> for the cache host.
    const netrc = path.join(dir, 'fh-netrc');
    await writeFile(netrc, `machine 127.0.0.1 login flakehub password ${resolved.token}\n`, { mode: 0o600 });
    const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    const store = path.join(dir, 'store-apply');
    const copied = await hostNix.run(
      [
        'nix',
        'copy',
        '--option',
        'narinfo-cache-negative-ttl',
        '0',
        '--option',
        'require-sigs',
        'true',
        '--option',
        'trusted-public-keys',
        key,
        '--from',
        `${server.url}/cache`,
        '--to',
        store,
        resolved.store_path,
        '--option',
        'netrc-file',
        netrc,
      ],
      { cacheHome: newMachine() },
    );
    expect(copied.code, copied.stderr).toBe(0);
    expect(await readFile(path.join(store, web, 'data'), 'utf8')).toMatch(/^top web/);
    // Nothing else: the sibling output is a miss for this token, and it cannot write.
    const sibling = await fetch(`${server.url}/cache/${path.basename(db).slice(0, 32)}.narinfo`, {
      headers: { Authorization: basicAuth(resolved.token) },
    });
    expect(sibling.status).toBe(404);
    const other = await fh(fhUrl('f', 'acme', 'infra', '0.1', 'output', 'nixosConfigurations.db'), resolved.token);
    expect(other.status).toBe(404);
  }, 120_000);

  it("output lookups: 404 for a missing output, a scoped token only for the org's own tokens", async () => {
    expect((await fh(fhUrl('f', 'acme', 'infra', '0.1', 'output', 'nixosConfigurations.nope'), user)).status).toBe(404);
    expect(
      (await fh(`${fhUrl('f', 'acme', 'infra', '0.1', 'output', 'nixosConfigurations.web')}?include_token=true`))
        .status,
    ).toBe(404);
    const plain = (await (
      await fh(fhUrl('f', 'acme', 'infra', '0.1', 'output', 'nixosConfigurations.web'), user)
    ).json()) as Record<string, unknown>;
    expect(plain).toEqual({ attribute_path: 'nixosConfigurations.web', store_path: web });
  });

  it("/cli/status: the token's subject and expiry in unix seconds; 401 for a bad token", async () => {
    const r = await fetch(fhUrl('cli', 'status'), {
      headers: { 'User-Agent': 'fh/0.1.25', Authorization: `Bearer ${user}` },
    });
    const s = (await r.json()) as { gh_name: string; expires_at: number };
    expect(typeof s.gh_name).toBe('string');
    expect(s.expires_at).toBeGreaterThan(Date.now() / 1000);
    expect((await fetch(fhUrl('cli', 'status'), { headers: { Authorization: 'Bearer floe_nonsense' } })).status).toBe(
      401,
    );
    expect((await fetch(fhUrl('cli', 'status'))).status).toBe(401);
  });
});
