/**
 * Issue 13, "Nix 2.8 lock drift": Nix 2.8 ignores `Link: rel="immutable"` and locks the URL in
 * flake.nix by name, so a lock of `/f/acme/drift/0.1.tar.gz` breaks on a fresh machine once 0.1.2
 * is published. `floe add` detects the local Nix and writes the pinned release URL for such a Nix;
 * the current Nix keeps the requirement URL and locks the immutable URL through Link.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { craftedTarball, flakehubPush } from '../helpers/flakes.js';
import { runFloe } from '../helpers/floe-cli.js';
import { NIX_MODERN, freshStoreEnv, hostNix, modernNix, requireNix } from '../helpers/nix.js';
import { createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';

const v28 = await requireNix(hostNix);
const vModern = await requireNix(modernNix);

let server: TestServer;
let publisher: string;
let reader: string;

const REV = (n: number) => n.toString(16).padStart(40, 'b');
const release = (flake: string, version: string, n: number, data: string) =>
  craftedTarball([
    { name: `${flake}-source/` },
    { name: `${flake}-source/flake.nix`, content: `{ outputs = { self }: { greeting = "${data}"; }; }\n` },
    { name: `${flake}-source/data.txt`, content: `${data}\n` },
  ]).then((tgz) =>
    flakehubPush(server, publisher, 'acme', flake, version, tgz, {
      visibility: 'public',
      revision: REV(n),
      commit_count: n,
    }),
  );

/** A consumer flake whose output reads the input's data.txt; `floe add` writes the input. */
function consumer(tag: string, input: string): string {
  const dir = mkdtempSync(`/tmp/floe-drift-${tag}-`);
  writeFileSync(
    path.join(dir, 'flake.nix'),
    `{
  outputs = { self, ${input} }: {
    packages.x86_64-linux.default = derivation { name = "drift-${tag}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat \${${input}}/data.txt > $out" ]; PATH = "/usr/bin:/bin"; };
  };
}
`,
  );
  return dir;
}

const floeAdd = (args: string[], env: Record<string, string> = {}) =>
  runFloe(['add', ...args], { env: { FLOE_SERVER: server.url, FLOE_TOKEN: reader, ...env } });

beforeAll(async () => {
  if (!v28 && !vModern) return;
  server = await startFloe();
  await createOrg(server, 'acme');
  publisher = (await createToken(server, 'acme', ['publish'])).token;
  reader = (await createToken(server, 'acme', ['read'])).token;
});

afterAll(async () => {
  await server?.cleanup();
});

describe.skipIf(!v28)(`a Nix 2.8 lock made before a newer release (${v28 ?? 'Nix 2.8 not installed'})`, () => {
  it('still builds on a fresh machine when `floe add` wrote it; a requirement-URL lock breaks', async () => {
    // Rolling versions: the pinned URL carries `+` as %2B, which Nix 2.8 must fetch as written.
    expect(await release('drift', `0.1.1+rev-${REV(1)}`, 1, 'one')).toMatchObject({ publish: 200 });

    // `floe add` with Nix 2.8 on PATH: the pinned URL of 0.1.1, with the reason and how to update.
    const pinnedDir = consumer('pinned', 'drift');
    const added = await floeAdd(['acme/drift', '--dir', pinnedDir]);
    expect(added.code, added.stderr).toBe(0);
    const written = /inputs\.drift\.url = "([^"]+)";/.exec(readFileSync(path.join(pinnedDir, 'flake.nix'), 'utf8'));
    expect(written?.[1]).toMatch(
      new RegExp(`^${server.url}/f/pinned/acme/drift/0\\.1\\.1%2Brev-b{39}1/[0-9a-f-]{36}/source\\.tar\\.gz$`),
    );
    expect(added.stderr).toMatch(/pinned to release 0\.1\.1\+rev-b{39}1 \(your Nix 2\.8\.0 ignores the Link header/);
    expect(added.stderr).toMatch(/NAR hash mismatch/);
    expect(added.stderr).toMatch(/`floe resolve acme\/drift\/0\.1` prints its URL/);

    // The unfixed way, as documentation: `--no-pin` writes the requirement URL, and warns.
    const driftDir = consumer('requirement', 'drift');
    const unpinned = await floeAdd(['acme/drift', '--dir', driftDir, '--no-pin']);
    expect(unpinned.code, unpinned.stderr).toBe(0);
    expect(readFileSync(path.join(driftDir, 'flake.nix'), 'utf8')).toContain(
      `inputs.drift.url = "${server.url}/f/acme/drift/0.1.tar.gz";`,
    );
    expect(unpinned.stderr).toMatch(/--no-pin with Nix 2\.8\.0: this Nix would lock .* by name/);

    // Both lock (and build) on the first machine while 0.1.1 is the newest release.
    for (const dir of [pinnedDir, driftDir]) {
      const cacheHome = path.join(dir, 'machine-1');
      const lock = await hostNix.run(['nix', 'flake', 'lock', `path:${dir}`], { cacheHome });
      expect(lock.code, lock.stderr).toBe(0);
    }
    const lockOf = (dir: string) =>
      JSON.parse(readFileSync(path.join(dir, 'flake.lock'), 'utf8')).nodes.drift.locked as Record<string, unknown>;
    expect(lockOf(pinnedDir).url).toBe(written![1]);
    expect(lockOf(driftDir).url).toBe(`${server.url}/f/acme/drift/0.1.tar.gz`);
    expect(lockOf(driftDir).narHash).toBe(lockOf(pinnedDir).narHash);

    expect(await release('drift', `0.1.2+rev-${REV(2)}`, 2, 'two')).toMatchObject({ publish: 200 });

    // A fresh machine (own store, state and cache) builds from the old locks.
    const buildFresh = async (dir: string, tag: string) => {
      const root = path.join(dir, `fresh-${tag}`);
      mkdirSync(root);
      return hostNix.run(['nix', 'build', '--no-link', '--json', `path:${dir}#packages.x86_64-linux.default`], {
        cacheHome: path.join(root, 'cache'),
        env: freshStoreEnv(root),
      });
    };
    const ok = await buildFresh(pinnedDir, 'pinned');
    expect(ok.code, ok.stderr).toBe(0);
    const out = JSON.parse(ok.stdout)[0].outputs.out as string;
    expect(out.startsWith(path.join(pinnedDir, 'fresh-pinned', 'store'))).toBe(true);
    expect(readFileSync(out, 'utf8')).toBe('one\n');

    const broken = await buildFresh(driftDir, 'requirement');
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toMatch(/NAR hash mismatch/);
  });
});

describe.skipIf(!vModern)(`the current Nix (${vModern ?? 'nix-modern not available'})`, () => {
  it('`floe add` keeps the requirement URL, and Nix locks the immutable release through Link', async () => {
    expect(await release('modern', '0.1.1', 1, 'one')).toMatchObject({ publish: 200 });
    // `floe add` asks the `nix` on PATH: make that the current Nix.
    const bin = mkdtempSync('/tmp/floe-drift-bin-');
    writeFileSync(path.join(bin, 'nix'), `#!/bin/sh\nexec ${NIX_MODERN} nix "$@"\n`, { mode: 0o755 });
    const dir = consumer('modern', 'modern');
    const added = await floeAdd(['acme/modern', '--dir', dir], { PATH: `${bin}:${process.env.PATH}` });
    expect(added.code, added.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'flake.nix'), 'utf8')).toContain(
      `inputs.modern.url = "${server.url}/f/acme/modern/0.1.tar.gz";`,
    );
    expect(added.stderr).not.toMatch(/pinned|NAR hash mismatch|could not run/);

    const cacheHome = path.join(dir, 'machine-1');
    const lock = await modernNix.run(['nix', 'flake', 'lock', `path:${dir}`], { cacheHome });
    expect(lock.code, lock.stderr).toBe(0);
    expect(await release('modern', '0.1.2', 2, 'two')).toMatchObject({ publish: 200 });
    const locked = JSON.parse(readFileSync(path.join(dir, 'flake.lock'), 'utf8')).nodes.modern.locked;
    expect(locked.url).toMatch(/\/f\/pinned\/acme\/modern\/0\.1\.1\/[0-9a-f-]{36}\/source\.tar\.gz$/);
    const build = await modernNix.run(
      ['nix', 'build', '--no-link', '--json', `path:${dir}#packages.x86_64-linux.default`],
      { cacheHome },
    );
    expect(build.code, build.stderr).toBe(0);
    expect(readFileSync(`/var/lib/nix-modern${JSON.parse(build.stdout)[0].outputs.out}`, 'utf8')).toBe('one\n');
  });
});
