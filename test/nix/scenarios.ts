/**
 * Scenarios written once and run against every real Nix version (test/nix/*.test.ts).
 * Each simulated machine gets its own XDG_CACHE_HOME and a fresh local store.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import {
  type NixRunner,
  buildClosure,
  fixtureDir,
  writeClosureExpr,
  writeNetrc,
  copyFromCacheArgs,
} from '../helpers/nix.js';

export function nixScenarios(nix: NixRunner): void {
  let server: TestServer;
  let dir: string;
  let expr: string;
  let netrcAcmeRW: string;
  let netrcAcmeRead: string;
  let netrcOtherRW: string;
  let netrcOtherRead: string;
  let key: string;
  let machine = 0;
  const newMachine = () => path.join(dir, `machine-${machine++}`);
  const seed = (tag: string) => `${tag}${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;

  beforeAll(async () => {
    server = await startFloe();
    dir = await fixtureDir(nix.name);
    expr = await writeClosureExpr(dir);
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    netrcAcmeRW = await writeNetrc(dir, 'acme-rw', (await createToken(server, 'acme', ['read', 'write'])).token);
    netrcAcmeRead = await writeNetrc(dir, 'acme-r', (await createToken(server, 'acme', ['read'])).token);
    netrcOtherRW = await writeNetrc(dir, 'other-rw', (await createToken(server, 'other', ['read', 'write'])).token);
    netrcOtherRead = await writeNetrc(dir, 'other-r', (await createToken(server, 'other', ['read'])).token);
    key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
  });

  afterAll(async () => {
    await server?.cleanup();
  });

  const push = (storePath: string, netrc: string, url = `${server.url}/cache`) =>
    nix.run(['nix', 'copy', '--option', 'netrc-file', netrc, '--to', url, storePath], { cacheHome: newMachine() });

  /** Substitutes into a brand-new store, trusting only the server's key, signatures required. */
  const substitute = async (storePath: string, netrc: string | undefined, url = `${server.url}/cache`) => {
    const store = path.join(dir, `store-${machine}`);
    const r = await nix.run(
      [
        'nix',
        'copy',
        '--option',
        'require-sigs',
        'true',
        '--option',
        'trusted-public-keys',
        key,
        '--option',
        'narinfo-cache-negative-ttl',
        '0',
        ...(netrc ? ['--option', 'netrc-file', netrc] : []),
        '--from',
        url,
        '--to',
        store,
        storePath,
      ],
      { cacheHome: newMachine() },
    );
    return { ...r, store };
  };

  for (const compression of ['xz', 'zstd', 'bzip2', 'lz4', 'none']) {
    it(`nix copy --to with ${compression}, then substitutes with signatures required`, async () => {
      const out = await buildClosure(nix, expr, seed(compression), newMachine());
      const pushed = await push(out, netrcAcmeRW, `${server.url}/cache?compression=${compression}`);
      expect(pushed.code, pushed.stderr).toBe(0);
      const got = await substitute(out, netrcAcmeRead);
      expect(got.code, got.stderr).toBe(0);
      const data = await readFile(path.join(got.store, out, 'data'), 'utf8');
      expect(data).toMatch(/^top /);
      // The dependency came along: the closure is complete in the new store.
      const ref = (await readFile(path.join(got.store, out, 'ref'), 'utf8')).trim();
      expect(await readFile(path.join(got.store, ref), 'utf8')).toMatch(/^dependency /);
    });
  }

  it('nix copy --to with lzip fails with a clear message (no decoder), and uploads nothing', async () => {
    const out = await buildClosure(nix, expr, seed('lzip'), newMachine());
    const pushed = await push(out, netrcAcmeRW, `${server.url}/cache?compression=lzip`);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toMatch(/lzip is not supported/);
    const token = (await readFile(netrcAcmeRead, 'utf8')).split(' ').at(-1)!.trim();
    const res = await fetch(`${server.url}/cache/${path.basename(out).slice(0, 32)}.narinfo`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(404);
  });

  it('netrc auth: private paths are invisible anonymously and to other orgs, readable with a token', async () => {
    const out = await buildClosure(nix, expr, seed('private'), newMachine());
    expect((await push(out, netrcAcmeRW)).code).toBe(0);
    // A miss, not an error: Nix says nobody can provide the path (no HTTP error, no 401).
    const anon = await substitute(out, undefined);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).not.toMatch(/HTTP error|\b40[13]\b|unauthori[sz]ed|forbidden/i);
    expect(anon.stderr).toMatch(/no substituter|don't know how to build|does not exist/);
    const other = await substitute(out, netrcOtherRead);
    expect(other.code).not.toBe(0);
    expect(other.stderr).not.toMatch(/HTTP error|\b40[13]\b|unauthori[sz]ed|forbidden/i);
    const ok = await substitute(out, netrcAcmeRead);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("another org's write token cannot overwrite acme's paths", async () => {
    const out = await buildClosure(nix, expr, seed('overwrite'), newMachine());
    expect((await push(out, netrcAcmeRW)).code).toBe(0);
    const before = await (
      await fetch(`${server.url}/cache/${path.basename(out).slice(0, 32)}.narinfo`, {
        headers: { Authorization: `Bearer ${(await readFile(netrcAcmeRead, 'utf8')).split(' ').at(-1)!.trim()}` },
      })
    ).text();
    const attack = await push(out, netrcOtherRW, `${server.url}/cache/acme/default`);
    expect(attack.code).not.toBe(0);
    // Another org's slice URL looks like no cache at all (or the write is refused outright).
    expect(attack.stderr).toMatch(/HTTP error|\b403\b|does not appear to be a binary cache/);
    const after = await (
      await fetch(`${server.url}/cache/${path.basename(out).slice(0, 32)}.narinfo`, {
        headers: { Authorization: `Bearer ${(await readFile(netrcAcmeRead, 'utf8')).split(' ').at(-1)!.trim()}` },
      })
    ).text();
    expect(after).toBe(before);
    // Their own copy goes to their own slice and does not disturb acme's.
    expect((await push(out, netrcOtherRW)).code).toBe(0);
    const ok = await substitute(out, netrcAcmeRead);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("keeps the uploader's own signature next to the server's", async () => {
    const out = await buildClosure(nix, expr, seed('signed'), newMachine());
    const keyFile = path.join(dir, 'uploader.sec');
    const gen = await nix.run(['nix-store', '--generate-binary-cache-key', 'uploader-1', keyFile, `${keyFile}.pub`], {
      cacheHome: newMachine(),
    });
    expect(gen.code, gen.stderr).toBe(0);
    const pushed = await push(out, netrcAcmeRW, `${server.url}/cache?secret-key=${keyFile}`);
    expect(pushed.code, pushed.stderr).toBe(0);
    const token = (await readFile(netrcAcmeRead, 'utf8')).split(' ').at(-1)!.trim();
    const text = await (
      await fetch(`${server.url}/cache/${path.basename(out).slice(0, 32)}.narinfo`, {
        headers: { Authorization: `Bearer ${token}` },
      })
    ).text();
    expect(text).toMatch(/^Sig: uploader-1:/m);
    expect(text).toMatch(new RegExp(`^Sig: ${key.split(':')[0]}:`, 'm'));
    // Trusting only the uploader's key works too.
    const store = path.join(dir, `store-uploader-${machine}`);
    const r = await nix.run(
      copyFromCacheArgs(
        {
          key: (await readFile(`${keyFile}.pub`, 'utf8')).trim(),
          netrc: netrcAcmeRead,
          from: `${server.url}/cache`,
          to: store,
        },
        out,
      ),
      { cacheHome: newMachine() },
    );
    expect(r.code, r.stderr).toBe(0);
  });

  it('re-pushing an existing closure uploads nothing', async () => {
    const out = await buildClosure(nix, expr, seed('again'), newMachine());
    expect((await push(out, netrcAcmeRW)).code).toBe(0);
    // Access-log lines arrive asynchronously: count once the log has settled.
    const puts = async () => {
      let previous = -1;
      for (;;) {
        const n = server
          .logs()
          .split('\n')
          .filter((l) => l.includes('"method":"PUT"')).length;
        if (n === previous) return n;
        previous = n;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    const before = await puts();
    expect((await push(out, netrcAcmeRW)).code).toBe(0);
    const after = await puts();
    expect(after).toBe(before);
  });
}
