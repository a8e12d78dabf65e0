/**
 * Release sources substituted by real Nix (run once per Nix version, sources-*.test.ts): a consumer
 * locks a Floe flake URL on one machine; on another machine, whose store lacks that source and
 * whose only substituter is Floe's /cache, `nix build` fetches the locked `…-source` path as a
 * narinfo + NAR from /cache, never the tarball. Nix 2.8 does this too (Input::fetch tries
 * substitution when a tarball input has a narHash), which also keeps a 2.8 lock of a version
 * requirement building after a newer release: the locked narHash names the old tree.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { craftedTarball, flakehubPush } from '../helpers/flakes.js';
import { type NixRunner, hostNix, writeNetrc } from '../helpers/nix.js';
import { parseHash } from '../../src/nix/hash.js';
import { encodeNix32 } from '../../src/nix/nix32.js';
import { hashPartOf } from '../../src/nix/store-path.js';
import { sourceStorePath } from '../../src/registry/sources.js';

export function sourceSubstitutionScenarios(nix: NixRunner): void {
  let server: TestServer;
  let publisher: string;
  let netrc: string;
  let key: string;
  const tag = () => `${Date.now().toString(36)}${Math.floor(Math.random() * 1e9).toString(36)}`;
  const storeRoot = nix === hostNix ? '' : '/var/lib/nix-modern';

  beforeAll(async () => {
    server = await startFloe();
    await createOrg(server, 'acme');
    publisher = (await createToken(server, 'acme', ['publish'])).token;
    const reader = (await createToken(server, 'acme', ['read'])).token;
    netrc = await writeNetrc(mkdtempSync('/tmp/floe-src-netrc-'), 'netrc', reader);
    key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
  });

  afterAll(async () => {
    await server?.cleanup();
  });

  /** A release whose tree exists nowhere else (its data is unique), so no store holds it yet. */
  async function release(flake: string, version: string, visibility: string, data: string) {
    const tarball = await craftedTarball([
      { name: `${flake}-source` },
      { name: `${flake}-source/flake.nix`, content: `{ outputs = { self }: { }; }\n` },
      { name: `${flake}-source/data.txt`, content: `${data}\n` },
    ]);
    const pushed = await flakehubPush(server, publisher, 'acme', flake, version, tarball, { visibility });
    expect(pushed, pushed.message).toMatchObject({ publish: 200 });
  }

  function consumer(input: string): string {
    const dir = mkdtempSync(`/tmp/floe-src-consumer-${nix.name}-`);
    writeFileSync(
      path.join(dir, 'flake.nix'),
      `{ inputs.dep.url = "${input}";
  outputs = { self, dep }: { packages.x86_64-linux.default = derivation { name = "consumer"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "cat \${dep}/data.txt > $out" ]; PATH = "/usr/bin:/bin"; }; }; }\n`,
    );
    return dir;
  }

  /** Machine A locks into a store of its own (so the runner's usual store never sees the source). */
  async function lockElsewhere(dir: string, withNetrc: boolean) {
    const auth = withNetrc ? ['--option', 'netrc-file', netrc] : [];
    const lock = await nix.run(['nix', 'flake', 'lock', '--store', path.join(dir, 'store-a'), ...auth, `path:${dir}`], {
      cacheHome: path.join(dir, 'machine-a'),
    });
    expect(lock.code, lock.stderr).toBe(0);
    const locked = JSON.parse(readFileSync(path.join(dir, 'flake.lock'), 'utf8')).nodes.dep.locked;
    return { narHash: locked.narHash as string, url: locked.url as string };
  }

  /** Machine B: a fresh Nix cache, Floe's /cache as its only substituter, Floe's key required. */
  function buildOnFreshMachine(dir: string, withNetrc: boolean) {
    return nix.run(
      [
        'nix',
        'build',
        '--no-link',
        '--json',
        '--option',
        'substituters',
        `${server.url}/cache`,
        '--option',
        'trusted-public-keys',
        key,
        '--option',
        'require-sigs',
        'true',
        '--option',
        'narinfo-cache-negative-ttl',
        '0',
        ...(withNetrc ? ['--option', 'netrc-file', netrc] : []),
        `path:${dir}#packages.x86_64-linux.default`,
      ],
      { cacheHome: path.join(dir, 'machine-b') },
    );
  }

  const requestsSince = (offset: number) =>
    server
      .logs()
      .slice(offset)
      .split('\n')
      .filter((l) => l.includes('"method":"GET"'));
  const answered = (lines: string[], pathPrefix: string, status: number) =>
    lines.some((l) => l.includes(`"path":"${pathPrefix}`) && l.includes(`"status":${status}`));

  async function expectSubstitutedFromCache(offset: number, narHash: string) {
    const hashPart = hashPartOf(sourceStorePath(parseHash(narHash)));
    const narFile = `${encodeNix32(parseHash(narHash).digest)}.nar.zst`;
    // Access-log lines are written just after the answer: poll.
    await expect.poll(() => answered(requestsSince(offset), `/cache/${hashPart}.narinfo`, 200)).toBe(true);
    await expect.poll(() => answered(requestsSince(offset), `/cache/nar/${narFile}`, 200)).toBe(true);
    // The tarball was never asked for on machine B.
    expect(requestsSince(offset).filter((l) => l.includes('"path":"/f/'))).toEqual([]);
  }

  for (const visibility of ['public', 'private'] as const) {
    it(`nix flake lock, then nix build on a fresh machine substitutes a ${visibility} release's source from /cache`, async () => {
      const flake = `dep-${visibility}-${nix.name.replace(/[^a-z0-9]/g, '')}`;
      const data = `${visibility} source ${tag()}`;
      await release(flake, '1.0.0', visibility, data);
      const dir = consumer(`${server.url}/f/acme/${flake}/1.tar.gz`);
      const withNetrc = visibility === 'private';
      const { narHash } = await lockElsewhere(dir, withNetrc);
      const offset = server.logs().length;
      const build = await buildOnFreshMachine(dir, withNetrc);
      expect(build.code, build.stderr).toBe(0);
      const out = JSON.parse(build.stdout)[0].outputs.out as string;
      expect(readFileSync(`${storeRoot}${out}`, 'utf8')).toBe(`${data}\n`);
      await expectSubstitutedFromCache(offset, narHash);
    });
  }

  it('a lock of a version requirement still builds on a fresh machine after a newer release', async () => {
    const flake = `drift-${nix.name.replace(/[^a-z0-9]/g, '')}`;
    const first = `first ${tag()}`;
    await release(flake, '0.1.1', 'public', first);
    const dir = consumer(`${server.url}/f/acme/${flake}/0.1.tar.gz`);
    const { narHash, url } = await lockElsewhere(dir, false);
    // Nix 2.8 ignores `Link` and locks the requirement URL, which now answers another tree.
    if (nix === hostNix) expect(url).toBe(`${server.url}/f/acme/${flake}/0.1.tar.gz`);
    await release(flake, '0.1.2', 'public', `second ${tag()}`);
    const offset = server.logs().length;
    const build = await buildOnFreshMachine(dir, false);
    expect(build.code, build.stderr).toBe(0);
    const out = JSON.parse(build.stdout)[0].outputs.out as string;
    expect(readFileSync(`${storeRoot}${out}`, 'utf8')).toBe(`${first}\n`);
    await expectSubstitutedFromCache(offset, narHash);
  });
}
