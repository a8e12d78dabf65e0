/**
 * Tenant integrity with real Nix (run once per Nix version): the squatting attack end to end.
 * Org evil computes the store path of a dependency acme will build (input-addressed paths are
 * known in advance) and uploads a NAR of its choosing under it, into a public slice of its own;
 * a write token limited to acme's low-trust `sandbox` slice does the same inside acme. acme's
 * machines must never substitute those copies, acme's pushes must upload their own, and a client
 * that trusts only acme's key refuses evil's content even through a view that follows it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { api, basicAuth, startFloe, type TestServer } from '../helpers/server.js';
import { type NixRunner, fixtureDir, writeNetrc, copyFromCacheArgs } from '../helpers/nix.js';
import { setupTenants } from '../helpers/tenants.js';
import { fakePath, nixStyleUpload, type FakePath } from '../helpers/paths.js';
import type { StorePathBase } from '../../src/nix/store-path.js';

export function integrityScenarios(nix: NixRunner): void {
  let server: TestServer;
  let dir: string;
  let expr: string;
  let acmeCI: string;
  let acmeRead: string;
  let evilRW: string;
  let sandboxRW: string;
  let machine = 0;
  const newMachine = () => path.join(dir, `machine-${machine++}`);
  const seed = (tag: string) => `${tag}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

  /** The keys a token's `floe cache info` gives (space-separated, for trusted-public-keys). */
  const keysFor = async (token: string) =>
    (await api<{ publicKey: string }>(server, token, 'GET', '/api/v1/cache/info')).body.publicKey;
  const orgKeys = async (org: string) =>
    (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=${org}`)).text()).trim();

  /** Store paths of the closure for `s`, evaluated only (nothing built). */
  async function outPaths(s: string): Promise<{ dep: string; top: string }> {
    const get = async (attr: string) => {
      const r = await nix.run(
        ['nix-instantiate', '--eval', '--json', expr, '--argstr', 'seed', s, '-A', `${attr}.outPath`],
        { cacheHome: newMachine() },
      );
      if (r.code !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout) as string;
    };
    return { dep: await get('dep'), top: await get('top') };
  }

  /** A NAR of the attacker's choosing under `storePath`. */
  function trojan(storePath: string, who: string): FakePath {
    const p = fakePath('trojan', { type: 'regular', contents: `TROJAN from ${who}\n` });
    const base = path.basename(storePath) as StorePathBase;
    return { ...p, base, hashPart: base.slice(0, 32) };
  }

  /** Builds `attr` for seed `s` the way acme's machines do: substituting from the unified cache. */
  async function buildUsingCache(s: string, attr: 'top' | 'dep', netrc: string, keys: string) {
    return nix.run(
      [
        'nix-build',
        expr,
        '--argstr',
        'seed',
        s,
        '-A',
        attr,
        '--no-out-link',
        '--option',
        'substituters',
        `${server.url}/cache`,
        '--option',
        'trusted-public-keys',
        keys,
        '--option',
        'require-sigs',
        'true',
        '--option',
        'narinfo-cache-negative-ttl',
        '0',
        '--option',
        'netrc-file',
        netrc,
      ],
      { cacheHome: newMachine() },
    );
  }

  /** Substitutes into a brand-new store, trusting only `keys`. */
  async function substitute(storePath: string, netrc: string, keys: string) {
    const store = path.join(dir, `store-${machine}`);
    const r = await nix.run(
      copyFromCacheArgs({ key: keys, netrc, from: `${server.url}/cache`, to: store, noNegativeCache: true }, storePath),
      { cacheHome: newMachine() },
    );
    return { ...r, store };
  }

  const push = (storePath: string, netrc: string, url = `${server.url}/cache`) =>
    nix.run(['nix', 'copy', '--option', 'netrc-file', netrc, '--to', url, storePath], { cacheHome: newMachine() });
  /** A file of a store (the Nix's own store when none is given; the current Nix keeps its store in a chroot). */
  const storeText = async (store: string | undefined, storePath: string) => {
    if (store) return readFile(path.join(store, storePath), 'utf8');
    const r = await nix.run(['cat', storePath], { cacheHome: newMachine() });
    if (r.code !== 0) throw new Error(`cat ${storePath}: ${r.stderr}`);
    return r.stdout;
  };

  beforeAll(async () => {
    server = await startFloe();
    dir = await fixtureDir(`${nix.name}-integrity`);
    expr = path.join(dir, 'closure.nix');
    await writeFile(
      expr,
      `{ seed }: rec {
  dep = derivation { name = "dep-\${seed}"; builder = "/bin/sh"; args = ["-c" "echo dependency \${seed} > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
  top = derivation { name = "top-\${seed}"; builder = "/bin/sh"; args = ["-c" "mkdir $out; echo \${dep} > $out/ref; cat \${dep} > $out/data"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
}
`,
    );
    ({ acmeCI, acmeRead, evilRW, sandboxRW } = await setupTenants(server));
  });

  afterAll(async () => {
    await server?.cleanup();
  });

  it("another org's trojan for acme's dependency is never substituted, served anonymously, or linked by acme's push", async () => {
    const s = seed('squat');
    const paths = await outPaths(s);
    expect(
      await nixStyleUpload(`${server.url}/cache/evil/bait`, basicAuth(evilRW), trojan(paths.dep, 'org evil')),
    ).toMatchObject({ nar: 201, narinfo: 201 });
    const netrcRead = await writeNetrc(dir, `r-${s}`, acmeRead);
    // Even trusting both orgs' keys, acme's view does not include evil: Nix builds the dependency itself.
    const built = await buildUsingCache(s, 'top', netrcRead, `${await orgKeys('acme')} ${await orgKeys('evil')}`);
    expect(built.code, built.stderr).toBe(0);
    const top = built.stdout.trim().split('\n').at(-1)!;
    expect(await storeText(undefined, path.join(top, 'data'))).toBe(`dependency ${s}\n`);
    // Anonymous callers get nothing on /cache (no global slices).
    expect((await fetch(`${server.url}/cache/${path.basename(paths.dep).slice(0, 32)}.narinfo`)).status).toBe(404);
    // acme's push uploads its own copy of the dependency (Nix does not see evil's) and succeeds.
    const pushed = await push(top, await writeNetrc(dir, `rw-${s}`, acmeCI));
    expect(pushed.code, pushed.stderr).toBe(0);
    const got = await substitute(top, netrcRead, await keysFor(acmeRead));
    expect(got.code, got.stderr).toBe(0);
    expect(await storeText(got.store, paths.dep)).toBe(`dependency ${s}\n`);
  });

  it('a slice-limited sandbox token cannot feed the org: CI pushes its own copy and machines get it', async () => {
    const s = seed('sandbox');
    const paths = await outPaths(s);
    expect(
      await nixStyleUpload(`${server.url}/cache`, basicAuth(sandboxRW), trojan(paths.dep, 'the sandbox')),
    ).toMatchObject({ nar: 201, narinfo: 201 });
    const netrcRead = await writeNetrc(dir, `r-${s}`, acmeRead);
    const keys = await keysFor(acmeRead);
    const built = await buildUsingCache(s, 'top', netrcRead, keys);
    expect(built.code, built.stderr).toBe(0);
    const top = built.stdout.trim().split('\n').at(-1)!;
    expect(await storeText(undefined, paths.dep)).toBe(`dependency ${s}\n`);
    expect((await push(top, await writeNetrc(dir, `rw-${s}`, acmeCI))).code).toBe(0);
    const got = await substitute(top, netrcRead, keys);
    expect(got.code, got.stderr).toBe(0);
    expect(await storeText(got.store, paths.dep)).toBe(`dependency ${s}\n`);
  });

  it('with the sandbox in view, nix copy to the slice URL uploads exactly what default lacks', async () => {
    expect(
      (await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/acme/slices/sandbox', { inView: true })).status,
    ).toBe(200);
    try {
      const s = seed('inview');
      const paths = await outPaths(s);
      expect(
        await nixStyleUpload(`${server.url}/cache`, basicAuth(sandboxRW), trojan(paths.dep, 'the sandbox')),
      ).toMatchObject({ narinfo: 201 });
      const built = await nix.run(['nix-build', expr, '--argstr', 'seed', s, '-A', 'top', '--no-out-link'], {
        cacheHome: newMachine(),
      });
      const top = built.stdout.trim().split('\n').at(-1)!;
      const netrcCI = await writeNetrc(dir, `rw-${s}`, acmeCI);
      // Through /cache Nix sees the sandbox's copy and skips it; the commit refuses the link, loudly.
      const unified = await push(top, netrcCI);
      expect(unified.code).not.toBe(0);
      expect(unified.stderr).toMatch(/missing from acme\/default/);
      const sliced = await push(top, netrcCI, `${server.url}/cache/acme/default`);
      expect(sliced.code, sliced.stderr).toBe(0);
      const got = await substitute(top, await writeNetrc(dir, `r-${s}`, acmeRead), await keysFor(acmeRead));
      expect(got.code, got.stderr).toBe(0);
      // default comes first in acme's view: the genuine dependency, not the sandbox's.
      expect(await storeText(got.store, paths.dep)).toBe(`dependency ${s}\n`);
    } finally {
      expect(
        (await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/acme/slices/sandbox', { inView: false })).status,
      ).toBe(200);
    }
  });

  it("following evil's slice: a client trusting only acme's key refuses it; one trusting the view's keys gets it", async () => {
    const s = seed('follow');
    const paths = await outPaths(s);
    expect(
      await nixStyleUpload(`${server.url}/cache/evil/bait`, basicAuth(evilRW), trojan(paths.dep, 'org evil')),
    ).toMatchObject({ narinfo: 201 });
    expect(
      (await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/follows', { org: 'evil', slice: 'bait' }))
        .status,
    ).toBe(201);
    try {
      const netrcRead = await writeNetrc(dir, `r-${s}`, acmeRead);
      const onlyAcme = await substitute(paths.dep, netrcRead, await orgKeys('acme'));
      expect(onlyAcme.code).not.toBe(0);
      const viewKeys = await keysFor(acmeRead);
      expect(viewKeys).toContain((await orgKeys('evil')).split(':')[0]);
      const followed = await substitute(paths.dep, netrcRead, viewKeys);
      expect(followed.code, followed.stderr).toBe(0);
      expect(await storeText(followed.store, paths.dep)).toBe('TROJAN from org evil\n');
    } finally {
      expect((await api(server, server.adminToken, 'DELETE', '/api/v1/orgs/acme/follows/evil/bait')).status).toBe(200);
    }
  });

  it("rotating acme's key breaks nobody's substitution", async () => {
    const s = seed('rotate');
    const built = await nix.run(['nix-build', expr, '--argstr', 'seed', s, '-A', 'top', '--no-out-link'], {
      cacheHome: newMachine(),
    });
    const top = built.stdout.trim().split('\n').at(-1)!;
    expect((await push(top, await writeNetrc(dir, `rw-${s}`, acmeCI))).code).toBe(0);
    const oldKey = await orgKeys('acme');
    expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/keys/rotate')).status).toBe(200);
    const netrcRead = await writeNetrc(dir, `r-${s}`, acmeRead);
    // A machine still configured with the old key, and one already with the new one.
    const old = await substitute(top, netrcRead, oldKey);
    expect(old.code, old.stderr).toBe(0);
    const fresh = await substitute(top, netrcRead, (await orgKeys('acme')).split(' ')[0]!);
    expect(fresh.code, fresh.stderr).toBe(0);
  });
}
