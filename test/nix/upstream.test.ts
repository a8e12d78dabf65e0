/**
 * Package independence with real Nix on both sides: an upstream binary cache made by
 * `nix copy --to file://…?secret-key=…` (Nix 2.8) and served over loopback HTTP; `floe push` of a
 * closure mixing upstream and own paths uploads only the own ones; the closure substitutes from
 * Floe (Nix 2.8 and, when available, the current Nix) after the upstream is gone, and survives GC;
 * a tampered upstream NAR is refused and reported.
 */
import { execFile } from 'node:child_process';
import { readFile, copyFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import {
  BASE_NIX_CONFIG,
  type NixRunner,
  fixtureDir,
  hostNix,
  modernNix,
  requireNix,
  writeNetrc,
  copyFromCacheArgs,
} from '../helpers/nix.js';
import { serveDirectory, type StaticServer } from '../helpers/static-server.js';

const exec = promisify(execFile);
const version = await requireNix(hostNix);
const modern = version ? await modernNix.version() : undefined;

let server: TestServer;
let upstream: StaticServer | undefined;
let dir: string;
let upstreamDir: string;
let upstreamPub: string;
let rw: string;
let netrc: string;
let floeKey: string;
let n = 0;
const home = () => path.join(dir, `home-${n++}`);
const floe = (args: string[], token = rw) =>
  exec(process.execPath, [FLOE_BIN, ...args], {
    env: { ...process.env, NIX_CONFIG: BASE_NIX_CONFIG, FLOE_SERVER: server.url, FLOE_TOKEN: token },
  });

/** upstream-dep <- upstream-lib <- own (only `lib` and its dependency go to the upstream cache). */
async function buildMixed(tag: string): Promise<{ own: string; lib: string; dep: string }> {
  const file = path.join(dir, `${tag}.nix`);
  await writeFile(
    file,
    `let mk = name: script: derivation { inherit name; builder = "/bin/sh"; args = [ "-c" script ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
  dep = mk "upstream-dep-${tag}" "echo dep ${tag} > $out";
  lib = mk "upstream-lib-${tag}" "mkdir $out; echo \${dep} > $out/dep; echo lib ${tag} > $out/data";
in { own = mk "own-${tag}" "mkdir $out; echo \${lib} > $out/lib; echo own ${tag} > $out/data"; inherit lib dep; }\n`,
  );
  const out: Record<string, string> = {};
  for (const attr of ['own', 'lib', 'dep']) {
    const r = await hostNix.run(['nix-build', file, '-A', attr, '--no-out-link'], { cacheHome: home() });
    if (r.code !== 0) throw new Error(r.stderr);
    out[attr] = r.stdout.trim().split('\n').at(-1)!;
  }
  const copied = await hostNix.run(
    ['nix', 'copy', '--to', `file://${upstreamDir}?secret-key=${path.join(dir, 'upstream.sec')}`, out.lib!],
    { cacheHome: home() },
  );
  if (copied.code !== 0) throw new Error(copied.stderr);
  return out as { own: string; lib: string; dep: string };
}

async function substitute(nix: NixRunner, storePath: string): Promise<{ code: number; stderr: string; store: string }> {
  const store = path.join(dir, `store-${n++}`);
  const r = await nix.run(
    copyFromCacheArgs(
      { key: floeKey, netrc, from: `${server.url}/cache`, to: store, noNegativeCache: true },
      storePath,
    ),
    { cacheHome: home() },
  );
  return { ...r, store };
}

beforeAll(async () => {
  if (!version) return;
  dir = await fixtureDir('upstream');
  upstreamDir = path.join(dir, 'upstream-cache');
  const gen = await hostNix.run(
    [
      'nix-store',
      '--generate-binary-cache-key',
      'upstream.test-1',
      path.join(dir, 'upstream.sec'),
      path.join(dir, 'upstream.pub'),
    ],
    { cacheHome: home() },
  );
  if (gen.code !== 0) throw new Error(gen.stderr);
  upstreamPub = (await readFile(path.join(dir, 'upstream.pub'), 'utf8')).trim();
  server = await startFloe();
  await createOrg(server, 'acme');
  rw = (await createToken(server, 'acme', ['read', 'write', 'admin'])).token;
  netrc = await writeNetrc(dir, 'netrc', rw);
  floeKey = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
}, 120_000);

afterAll(async () => {
  await upstream?.stop();
  await server?.cleanup();
});

describe.skipIf(!version)('upstream mirroring with real Nix', () => {
  it('pushes only own paths, substitutes after the upstream is gone, survives GC', async () => {
    const mixed = await buildMixed('mixed');
    upstream = await serveDirectory(upstreamDir);
    // Only the server admin adds upstreams.
    const denied = await floe(['upstream', 'add', 'nixos', upstream.url, '--key', upstreamPub]).catch(
      (e) => e as { code: number; stderr: string },
    );
    expect((denied as { code: number }).code).not.toBe(0);
    expect(denied.stderr).toMatch(/server admin/);
    await floe(['upstream', 'add', 'nixos', upstream.url, '--key', upstreamPub], server.adminToken);
    expect((await floe(['upstream', 'list'], server.adminToken)).stdout).toContain(upstream.url);

    const pushed = await floe(['push', mixed.own, '--json']);
    expect(JSON.parse(pushed.stdout)).toMatchObject({
      total: 3,
      present: 0,
      mirrored: 2,
      uploaded: 1,
      failed: [],
      refused: [],
    });
    expect(pushed.stderr).toMatch(
      /3 paths in the closure, 0 already in the cache, 2 fetched by the server from upstream, 1 to upload/,
    );
    // The server fetched both NARs (xz, as nix copy wrote them) from the upstream.
    expect(upstream.requests.filter((r) => r.startsWith('/nar/')).length).toBe(2);

    await upstream.stop();
    upstream = undefined;
    for (const nix of modern ? [hostNix, modernNix] : [hostNix]) {
      const got = await substitute(nix, mixed.own);
      expect(got.code, `${nix.name}: ${got.stderr}`).toBe(0);
      const lib = (await readFile(path.join(got.store, mixed.own, 'lib'), 'utf8')).trim();
      expect(lib).toBe(mixed.lib);
      const dep = (await readFile(path.join(got.store, mixed.lib, 'dep'), 'utf8')).trim();
      expect(await readFile(path.join(got.store, dep), 'utf8')).toMatch(/^dep mixed/);
    }

    // GC with a zero retention window: the pinned closure stays, an unpinned push goes.
    const stray = await buildMixed('stray');
    await floe(['push', stray.lib]); // the upstream is gone: uploaded by the client
    await floe(['pin', 'add', 'acme', 'prod', mixed.own, '--ttl', '30d']);
    expect((await floe(['pin', 'list', 'acme'])).stdout).toContain(mixed.own);
    await floe(['org', 'set', 'acme', '--retention', '0s']);
    await new Promise((r) => setTimeout(r, 1100));
    const dry = JSON.parse((await floe(['gc', '--dry-run', '--grace', '1s', '--json'], server.adminToken)).stdout) as {
      paths: { collected: number };
      sample: string[];
    };
    expect(dry.paths.collected).toBe(2);
    expect(dry.sample.join('\n')).toContain(stray.lib);
    const text = (await floe(['gc', '--grace', '1s'], server.adminToken)).stdout;
    expect(text).toMatch(/removed 2 path rows/);
    const after = await substitute(hostNix, mixed.own);
    expect(after.code, after.stderr).toBe(0);
    const gone = await substitute(hostNix, stray.lib);
    expect(gone.code).not.toBe(0);
    const usage = JSON.parse((await floe(['usage', 'acme', '--json'])).stdout) as {
      paths: number;
      storedBytes: number;
    };
    expect(usage.paths).toBe(3);
    expect(usage.storedBytes).toBeGreaterThan(0);
  });

  it('refuses a tampered upstream NAR, reports it, and the client uploads its own copy', async () => {
    const honest = await buildMixed('honest');
    const victim = await buildMixed('victim');
    // Replace the victim lib's NAR file with the honest lib's (a valid NAR, but not the signed one).
    const info = await readFile(path.join(upstreamDir, `${path.basename(victim.lib).slice(0, 32)}.narinfo`), 'utf8');
    const honestInfo = await readFile(
      path.join(upstreamDir, `${path.basename(honest.lib).slice(0, 32)}.narinfo`),
      'utf8',
    );
    const url = /^URL: (.*)$/m.exec(info)![1]!;
    await copyFile(path.join(upstreamDir, /^URL: (.*)$/m.exec(honestInfo)![1]!), path.join(upstreamDir, url));
    expect((await readdir(path.join(upstreamDir, 'nar'))).length).toBeGreaterThan(2);
    upstream = await serveDirectory(upstreamDir);
    await floe(['upstream', 'remove', 'nixos'], server.adminToken);
    await floe(['upstream', 'add', 'nixos2', upstream.url, '--key', upstreamPub], server.adminToken);
    await new Promise((r) => setTimeout(r, 2100)); // upstream lists are memoized for 2 s
    const r = await api<{ missing: string[]; mirrored: string[]; refused: Array<{ path: string; reason: string }> }>(
      server,
      rw,
      'POST',
      '/api/v1/cache/missing',
      { paths: [victim.lib, victim.dep] },
    );
    expect(r.body.refused.map((x) => x.path)).toEqual([victim.lib]);
    expect(r.body.refused[0]!.reason).toMatch(/NAR hash mismatch/);
    expect(r.body.mirrored).toEqual([victim.dep]);
    const pushed = await floe(['push', victim.own, '--json']);
    const result = JSON.parse(pushed.stdout) as {
      uploaded: number;
      refused: Array<{ path: string }>;
      failed: unknown[];
    };
    expect(result.refused.map((x) => x.path)).toEqual([victim.lib]);
    expect(result.uploaded).toBe(2); // own + the lib whose upstream copy was refused
    expect(result.failed).toEqual([]);
    expect(pushed.stderr).toMatch(/refused the upstream copy/);
    const got = await substitute(hostNix, victim.own);
    expect(got.code, got.stderr).toBe(0);
    expect(await readFile(path.join(got.store, victim.lib, 'data'), 'utf8')).toBe('lib victim\n');
  });
});
