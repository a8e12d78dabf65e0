/**
 * Parts of the binary-cache protocol beyond plain substitution, run against every real Nix
 * version (test/nix/protocol-*.test.ts): loud errors for bad tokens, realisations of CA
 * derivations, narinfos with unknown fields. Each simulated machine has its own XDG_CACHE_HOME.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type NixRunner, buildClosure, fixtureDir, writeClosureExpr, writeNetrc } from '../helpers/nix.js';

export function protocolScenarios(nix: NixRunner): void {
  let server: TestServer;
  let dir: string;
  let expr: string;
  let netrcRW: string;
  let key: string;
  let n = 0;
  const fresh = (what: string) => path.join(dir, `${what}-${n++}`);
  const seed = (tag: string) => `${tag}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

  beforeAll(async () => {
    server = await startFloe();
    dir = await fixtureDir(`protocol-${nix.name}`);
    expr = await writeClosureExpr(dir);
    await createOrg(server, 'acme');
    netrcRW = await writeNetrc(dir, 'acme-rw', (await createToken(server, 'acme', ['read', 'write'])).token);
    key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
  });

  afterAll(async () => {
    await server?.cleanup();
  });

  const push = async (storePath: string) => {
    const r = await nix.run(['nix', 'copy', '--option', 'netrc-file', netrcRW, '--to', `${server.url}/cache`, storePath], { cacheHome: fresh('pusher') });
    expect(r.code, r.stderr).toBe(0);
  };

  /** Substitutes into a new store on `machine` (its own disk cache); no TTL overrides. */
  const substituteOn = (machine: string, storePath: string, netrc: string) =>
    nix.run(
      ['nix', 'copy', '--option', 'require-sigs', 'true', '--option', 'trusted-public-keys', key, '--option', 'netrc-file', netrc, '--from', `${server.url}/cache`, '--to', fresh('store'), storePath],
      { cacheHome: machine },
    );

  it('an expired token on a machine that knows the cache fails loudly with Floe\'s message; a fresh token substitutes at once', async () => {
    const machine = fresh('machine');
    const first = await buildClosure(nix, expr, seed('known'), fresh('builder'));
    const second = await buildClosure(nix, expr, seed('later'), fresh('builder'));
    await push(first);
    await push(second);
    // The machine uses the cache once: its disk cache now remembers nix-cache-info (7 days).
    const good = await writeNetrc(dir, `good-${n++}`, (await createToken(server, 'acme', ['read'])).token);
    const warmed = await substituteOn(machine, first, good);
    expect(warmed.code, warmed.stderr).toBe(0);

    const expiredNetrc = await writeNetrc(dir, `expired-${n++}`, (await createToken(server, 'acme', ['read'], { ttl: '1s' })).token);
    await new Promise((r) => setTimeout(r, 2100));
    const copy = await substituteOn(machine, second, expiredNetrc);
    expect(copy.code).not.toBe(0);
    // `nix copy --from` asks with HEAD first (no body): Nix 2.8 prints the status line's reason
    // phrase, which carries the message; Nix 2.26 prints only the status ("HTTP error 400").
    // Either way it fails instead of reporting the path as absent.
    expect(copy.stderr).toMatch(nix.name === 'nix-2.8' ? /token expired; get a new one/ : /HTTP error 400/);
    expect(copy.stderr).not.toMatch(/does not exist|don't know how to build/);

    // A build that could substitute (GET narinfo: the body is printed) fails with the message
    // instead of quietly building locally.
    const build = await nix.run(
      ['nix-build', expr, '--argstr', 'seed', path.basename(second).slice(33 + 'top-'.length), '--no-out-link', '--store', fresh('store'),
        '--option', 'substituters', `${server.url}/cache`, '--option', 'trusted-public-keys', key, '--option', 'netrc-file', expiredNetrc],
      { cacheHome: machine },
    );
    expect(build.code).not.toBe(0);
    expect(build.stderr).toMatch(/token expired; get a new one/);
    expect(build.stderr).not.toMatch(/building '/);

    // The misses were not remembered: with a fresh token the same machine substitutes at once.
    const renewed = await writeNetrc(dir, `renewed-${n++}`, (await createToken(server, 'acme', ['read'])).token);
    const again = await substituteOn(machine, second, renewed);
    expect(again.code, again.stderr).toBe(0);
  });
}
