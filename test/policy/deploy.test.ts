/**
 * Deploy-only device tokens with real Nix: a machine's token names one flake output
 * (`acme/infra/1#nixosConfigurations.web`) and can substitute exactly that output's closure, in
 * every matching release (so it follows new ones), and nothing else: not the sibling output, not
 * other paths of the org, no writes, no listings.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import {
  BASE_NIX_CONFIG,
  type NixRunner,
  buildClosure,
  fixtureDir,
  hostNix,
  modernNix,
  requireNix,
  writeClosureExpr,
  writeNetrc,
  copyFromCacheArgs,
} from '../helpers/nix.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';

const exec = promisify(execFile);
const version = await requireNix(hostNix);
const modern = version ? await requireNix(modernNix) : undefined;
let server: TestServer;
let dir: string;
let expr: string;
let key: string;
let publisher: string;
let writer: string;
let device: { token: string; id: string };
let machine = 0;
const systems: Record<string, string> = {};
const newMachine = () => path.join(dir, `machine-${machine++}`);

async function publish(release: string, outputs: Record<string, string>): Promise<void> {
  const root = mkdtempSync('/tmp/floe-deploy-flake-');
  mkdirSync(path.join(root, 'source'));
  writeFileSync(path.join(root, 'source', 'flake.nix'), `{ outputs = _: { }; } # ${release}\n`);
  await exec('tar', ['-czf', path.join(root, 't.tar.gz'), '-C', root, 'source']);
  const bytes = readFileSync(path.join(root, 't.tar.gz'));
  const sha = createHash('sha256').update(bytes).digest('base64');
  const children = Object.fromEntries(
    Object.entries(outputs).map(([name, out]) => [name, { what: 'NixOS configuration', outputs: { out } }]),
  );
  const headers = { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' };
  const stage = await fetch(`${server.url}/upload/acme/infra/${release}/${bytes.length}/${sha}`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      visibility: 'private',
      outputs: { version: 1, docs: {}, inventory: { nixosConfigurations: { children } } },
    }),
  });
  const { s3_upload_url, uuid } = (await stage.json()) as { s3_upload_url: string; uuid: string };
  await fetch(s3_upload_url, { method: 'PUT', body: new Uint8Array(bytes) });
  expect((await fetch(`${server.url}/publish/${uuid}`, { method: 'POST', headers })).status).toBe(200);
}

async function build(name: string): Promise<string> {
  const out = await buildClosure(hostNix, expr, `${name}${Date.now().toString(36)}`, newMachine());
  const netrc = await writeNetrc(dir, `rw-${name}`, writer);
  const pushed = await hostNix.run(
    ['nix', 'copy', '--option', 'netrc-file', netrc, '--to', `${server.url}/cache`, out],
    { cacheHome: newMachine() },
  );
  if (pushed.code !== 0) throw new Error(pushed.stderr);
  return out;
}

async function depOf(out: string): Promise<string> {
  return readFileSync(path.join(out, 'ref'), 'utf8').trim();
}

/** Substitutes into a brand-new store, trusting only the server's key. */
async function substitute(storePath: string, token: string, nix: NixRunner = hostNix) {
  const netrc = await writeNetrc(dir, `n-${machine}`, token);
  const store = path.join(dir, `store-${machine}`);
  const r = await nix.run(
    copyFromCacheArgs({ key, netrc, from: `${server.url}/cache`, to: store, noNegativeCache: true }, storePath),
    { cacheHome: newMachine() },
  );
  return { ...r, store };
}

async function narinfoStatus(storePath: string, token: string): Promise<number> {
  const res = await fetch(`${server.url}/cache/${path.basename(storePath).slice(0, 32)}.narinfo`, {
    headers: { Authorization: basicAuth(token) },
  });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  if (!version) return;
  server = await startFloe();
  dir = await fixtureDir('deploy');
  expr = await writeClosureExpr(dir);
  await createOrg(server, 'acme');
  key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
  writer = (await createToken(server, 'acme', ['read', 'write'])).token;
  publisher = (await createToken(server, 'acme', ['publish'])).token;
  systems.web = await build('web');
  systems.db = await build('db');
  systems.unrelated = await build('unrelated');
  await publish('1.0.0', { web: systems.web, db: systems.db });
  const r = await api<{ token: string; id: string; scopes: string[]; deploy: string[] }>(
    server,
    server.adminToken,
    'POST',
    '/api/v1/tokens',
    {
      org: 'acme',
      scopes: ['read', 'write', 'admin'],
      deploy: ['acme/infra/1#nixosConfigurations.web'],
      subject: 'machine:web-01',
    },
  );
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  expect(r.body.scopes).toEqual(['read']); // deploy-only, whatever was asked for
  device = r.body;
});

afterAll(async () => {
  await server?.cleanup();
});

describe.skipIf(!version)('deploy-only device tokens', () => {
  for (const nix of [hostNix, ...(modern ? [modernNix] : [])]) {
    it(`substitutes the named output's whole closure with real Nix (${nix.name}), and not its sibling`, async () => {
      const got = await substitute(systems.web!, device.token, nix);
      expect(got.code, got.stderr).toBe(0);
      expect(readFileSync(path.join(got.store, systems.web!, 'data'), 'utf8')).toMatch(/^top web/);
      expect(readFileSync(path.join(got.store, await depOf(systems.web!)), 'utf8')).toMatch(/^dependency web/);
      const sibling = await substitute(systems.db!, device.token, nix);
      expect(sibling.code).not.toBe(0);
      // A miss, exactly as for a path that does not exist: no HTTP error, no 401/403.
      expect(sibling.stderr).not.toMatch(/HTTP error|\b40[13]\b|unauthori[sz]ed|forbidden/i);
    });
  }

  it('the sibling output, its dependencies and unrelated paths are misses (404, not 403)', async () => {
    for (const p of [systems.db!, await depOf(systems.db!), systems.unrelated!])
      expect(await narinfoStatus(p, device.token)).toBe(404);
    // Its NAR is not served either, even by its exact name.
    const info = await (
      await fetch(`${server.url}/cache/${path.basename(systems.db!).slice(0, 32)}.narinfo`, {
        headers: { Authorization: basicAuth(writer) },
      })
    ).text();
    const url = /^URL: (.*)$/m.exec(info)![1]!;
    expect(
      (await fetch(`${server.url}/cache/${url}`, { headers: { Authorization: basicAuth(device.token) } })).status,
    ).toBe(404);
  });

  it('cannot write, list, search, download sources or administer', async () => {
    const up = await nixStyleUpload(`${server.url}/cache`, basicAuth(device.token), fakePath('from-device'));
    expect(up.nar).toBe(403);
    expect(up.narText).toMatch(/deploy-only token/);
    const flakes = await api<{ flakes: unknown[] }>(server, device.token, 'GET', '/api/v1/flakes');
    expect(flakes.body.flakes ?? []).toEqual([]);
    expect(
      (
        await fetch(`${server.url}/f/acme/infra/1.tar.gz`, {
          headers: { Authorization: `Bearer ${device.token}` },
          redirect: 'manual',
        })
      ).status,
    ).toBe(404);
    expect((await api(server, device.token, 'GET', '/api/v1/orgs/acme/tokens')).status).toBe(403);
    expect((await api(server, device.token, 'POST', '/api/v1/tokens', { org: 'acme', scopes: ['read'] })).status).toBe(
      403,
    );
  });

  it('floe apply works with it, for its output only', async () => {
    const env = {
      ...process.env,
      NIX_CONFIG: BASE_NIX_CONFIG,
      FLOE_SERVER: server.url,
      FLOE_TOKEN: device.token,
      XDG_CACHE_HOME: newMachine(),
    };
    const ok = await exec(process.execPath, [FLOE_BIN, 'resolve', 'acme/infra/1#nixosConfigurations.web'], { env });
    expect(ok.stdout.trim()).toBe(systems.web);
    const sibling = await exec(process.execPath, [FLOE_BIN, 'resolve', 'acme/infra/1#nixosConfigurations.db'], {
      env,
    }).catch((e) => e as { code: number; stderr: string });
    expect((sibling as { code: number }).code).not.toBe(0);
    const dry = await exec(
      process.execPath,
      [
        FLOE_BIN,
        'apply',
        'nixos',
        'acme/infra/1#nixosConfigurations.web',
        '--profile',
        path.join(dir, 'profile'),
        '--dry-run',
      ],
      { env },
    );
    expect(dry.stderr).toContain(`--set ${systems.web}`);
  });

  it('follows new releases matching its requirement, and only those', async () => {
    const web2 = await build('web2');
    const web3 = await build('web3');
    expect(await narinfoStatus(web2, device.token)).toBe(404);
    await publish('1.1.0', { web: web2, db: systems.db! });
    await publish('2.0.0', { web: web3, db: systems.db! });
    // A path outside the memoized closure triggers a recomputation after at most a second.
    let status = 0;
    for (let i = 0; i < 30 && status !== 200; i++) {
      status = await narinfoStatus(web2, device.token);
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    expect(await narinfoStatus(await depOf(web2), device.token)).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await narinfoStatus(web3, device.token)).toBe(404); // 2.0.0 does not match "1"
    // Nor can it learn what 2.0.0's output is.
    const env = { ...process.env, FLOE_SERVER: server.url, FLOE_TOKEN: device.token };
    const resolved = await exec(process.execPath, [FLOE_BIN, 'resolve', 'acme/infra/2#nixosConfigurations.web'], {
      env,
    }).catch((e) => e as { code: number; stdout: string });
    expect((resolved as { code: number }).code).not.toBe(0);
    expect(resolved.stdout).not.toContain(web3);
  });

  it('revoking the device token ends its access', async () => {
    expect((await api(server, server.adminToken, 'DELETE', `/api/v1/tokens/${device.id}`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2100)); // revocations are re-checked every 2 s
    const res = await fetch(`${server.url}/cache/${path.basename(systems.web!).slice(0, 32)}.narinfo`, {
      headers: { Authorization: basicAuth(device.token) },
    });
    // A presented but revoked token on a cache read is a loud 400 (Nix would take a 401 for "absent").
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/revoked/);
  });
});
