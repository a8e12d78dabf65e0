/**
 * Parts of the binary-cache protocol beyond plain substitution, run against every real Nix
 * version (test/nix/protocol-*.test.ts): loud errors for bad tokens, realisations of CA
 * derivations, narinfos with unknown fields. Each simulated machine has its own XDG_CACHE_HOME.
 */
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { zstdDecompressSync } from 'node:zlib';
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
import { fakePath, narInfoFor, nixStyleUpload } from '../helpers/paths.js';

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
    const r = await nix.run(
      ['nix', 'copy', '--option', 'netrc-file', netrcRW, '--to', `${server.url}/cache`, storePath],
      { cacheHome: fresh('pusher') },
    );
    expect(r.code, r.stderr).toBe(0);
  };

  /** Substitutes into a new store on `machine` (its own disk cache); no TTL overrides. */
  const substituteOn = (machine: string, storePath: string, netrc: string) =>
    nix.run(copyFromCacheArgs({ key, netrc, from: `${server.url}/cache`, to: fresh('store') }, storePath), {
      cacheHome: machine,
    });

  it("an expired token on a machine that knows the cache fails loudly with Floe's message; a fresh token substitutes at once", async () => {
    const machine = fresh('machine');
    const first = await buildClosure(nix, expr, seed('known'), fresh('builder'));
    const second = await buildClosure(nix, expr, seed('later'), fresh('builder'));
    await push(first);
    await push(second);
    // The machine uses the cache once: its disk cache now remembers nix-cache-info (7 days).
    const good = await writeNetrc(dir, `good-${n++}`, (await createToken(server, 'acme', ['read'])).token);
    const warmed = await substituteOn(machine, first, good);
    expect(warmed.code, warmed.stderr).toBe(0);

    const expiredNetrc = await writeNetrc(
      dir,
      `expired-${n++}`,
      (await createToken(server, 'acme', ['read'], { ttl: '1s' })).token,
    );
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
      [
        'nix-build',
        expr,
        '--argstr',
        'seed',
        path.basename(second).slice(33 + 'top-'.length),
        '--no-out-link',
        '--store',
        fresh('store'),
        '--option',
        'substituters',
        `${server.url}/cache`,
        '--option',
        'trusted-public-keys',
        key,
        '--option',
        'netrc-file',
        expiredNetrc,
      ],
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

  const CA = ['--option', 'experimental-features', 'nix-command flakes ca-derivations'];
  const requests = (method: string, prefix: string) =>
    server
      .logs()
      .split('\n')
      .filter((l) => l.includes(`"method":"${method}"`) && l.includes(`"path":"/cache/${prefix}`));

  it('with ca-derivations on, nix copy --to of an ordinary derivation exits 0', async () => {
    const s = seed('plain');
    const r = await nix.run(
      [
        'nix',
        'copy',
        ...CA,
        '--option',
        'netrc-file',
        netrcRW,
        '--to',
        `${server.url}/cache`,
        '-f',
        expr,
        '--argstr',
        'seed',
        s,
      ],
      { cacheHome: fresh('pusher') },
    );
    expect(r.code, r.stderr).toBe(0);
    // The output is there for readers.
    const built = await nix.run(['nix-build', expr, '--argstr', 'seed', s, '--no-out-link'], {
      cacheHome: fresh('builder'),
    });
    const hash = path.basename(built.stdout.trim()).slice(0, 32);
    await expect.poll(() => requests('PUT', `${hash}.narinfo`).length).toBeGreaterThan(0);
    // Nix uploaded the outputs' realisations too (what used to fail with a 404).
    await expect
      .poll(() => requests('PUT', 'realisations/').filter((l) => l.includes('"status":201')).length)
      .toBeGreaterThan(0);
  });

  it('a CA derivation copied to Floe is substituted on a fresh store (realisation, then the path)', async () => {
    const caExpr = path.join(dir, 'ca.nix');
    await writeFile(
      caExpr,
      `{ seed }: derivation { name = "ca-\${seed}"; builder = "/bin/sh"; args = ["-c" "echo content-addressed \${seed} > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; }\n`,
    );
    const s = seed('ca');
    const builder = fresh('builder');
    const built = await nix.run(['nix', 'build', ...CA, '-f', caExpr, '--argstr', 'seed', s, '--no-link', '--json'], {
      cacheHome: builder,
    });
    expect(built.code, built.stderr).toBe(0);
    const out = (JSON.parse(built.stdout) as Array<{ outputs: { out: string } }>)[0]!.outputs.out;
    const pushed = await nix.run(
      [
        'nix',
        'copy',
        ...CA,
        '--option',
        'netrc-file',
        netrcRW,
        '--to',
        `${server.url}/cache`,
        '-f',
        caExpr,
        '--argstr',
        'seed',
        s,
      ],
      { cacheHome: builder },
    );
    expect(pushed.code, pushed.stderr).toBe(0);
    // Access-log lines are written just after the answer: poll.
    await expect.poll(() => requests('PUT', 'realisations/').some((l) => l.includes('"status":201'))).toBe(true);

    const reader = await writeNetrc(dir, `ca-reader-${n++}`, (await createToken(server, 'acme', ['read'])).token);
    const store = fresh('store');
    const got = await nix.run(
      [
        'nix',
        'build',
        ...CA,
        '-f',
        caExpr,
        '--argstr',
        'seed',
        s,
        '--no-link',
        '--json',
        '--store',
        store,
        '--option',
        'substituters',
        `${server.url}/cache`,
        '--option',
        'trusted-public-keys',
        key,
        '--option',
        'netrc-file',
        reader,
      ],
      { cacheHome: fresh('machine') },
    );
    expect(got.code, got.stderr).toBe(0);
    expect(got.stderr).not.toMatch(/building '/);
    expect(await readFile(path.join(store, out), 'utf8')).toBe(`content-addressed ${s}\n`);
    await expect.poll(() => requests('GET', 'realisations/').some((l) => l.includes('"status":200'))).toBe(true);

    // Served signed by the org's key over Nix's realisation fingerprint (the JSON without
    // `signatures`, keys sorted, compact), which Nix checks when it copies a realisation into a
    // store requiring signatures; the builder uploaded it unsigned.
    const id = /"path":"\/cache\/realisations\/([^"]+)\.doi"/.exec(requests('GET', 'realisations/').at(-1)!)![1]!;
    const readAuth = `Basic ${Buffer.from(`x:${(await createToken(server, 'acme', ['read'])).token}`).toString('base64')}`;
    const served = (await (
      await fetch(`${server.url}/cache/realisations/${id}.doi`, { headers: { Authorization: readAuth } })
    ).json()) as { id: string; outPath: string; signatures: string[]; dependentRealisations: Record<string, string> };
    expect(served.outPath).toBe(path.basename(out));
    expect(served.signatures).toHaveLength(1);
    const [name, sig] = served.signatures[0]!.split(':');
    expect(name).toBe(key.split(':')[0]);
    const fingerprint = JSON.stringify({
      dependentRealisations: served.dependentRealisations,
      id: served.id,
      outPath: served.outPath,
    });
    const publicKey = createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), Buffer.from(key.split(':')[1]!, 'base64')]),
      format: 'der',
      type: 'spki',
    });
    expect(verify(null, Buffer.from(fingerprint), publicKey, Buffer.from(sig!, 'base64'))).toBe(true);
  });

  it("a realisation Nix signed verifies against the org's trusted signer; a forged one and one under the org's key name are refused", async () => {
    const caExpr = path.join(dir, 'ca-signed.nix');
    await writeFile(
      caExpr,
      `{ seed }: derivation { name = "ca-signed-\${seed}"; builder = "/bin/sh"; args = ["-c" "echo signed \${seed} > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; }\n`,
    );
    const builder = fresh('builder');
    const keyFile = path.join(dir, `ci-signer-${n++}.sec`);
    const gen = await nix.run(
      ['nix-store', '--generate-binary-cache-key', `ci-signer-${n}`, keyFile, `${keyFile}.pub`],
      { cacheHome: builder },
    );
    expect(gen.code, gen.stderr).toBe(0);
    const publicKey = (await readFile(`${keyFile}.pub`, 'utf8')).trim();
    const added = await fetch(`${server.url}/api/v1/orgs/acme/signers`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${server.adminToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ publicKey }),
    });
    expect(added.status, await added.text()).toBeLessThan(300);
    const s = seed('casigned');
    // The local store signs the realisation it registers with secret-key-files (Nix's own fingerprint).
    const built = await nix.run(
      [
        'nix',
        'build',
        ...CA,
        '--option',
        'secret-key-files',
        keyFile,
        '-f',
        caExpr,
        '--argstr',
        'seed',
        s,
        '--no-link',
        '--json',
      ],
      { cacheHome: builder },
    );
    expect(built.code, built.stderr).toBe(0);
    const pushed = await nix.run(
      [
        'nix',
        'copy',
        ...CA,
        '--option',
        'netrc-file',
        netrcRW,
        '--to',
        `${server.url}/cache`,
        '-f',
        caExpr,
        '--argstr',
        'seed',
        s,
      ],
      { cacheHome: builder },
    );
    expect(pushed.code, pushed.stderr).toBe(0);
    const put = requests('PUT', 'realisations/').at(-1)!;
    expect(put).toContain('"status":201');
    const id = /"path":"\/cache\/realisations\/([^"]+)\.doi"/.exec(put)![1]!;
    const rwAuth = `Basic ${Buffer.from(`x:${(await createToken(server, 'acme', ['read', 'write'])).token}`).toString('base64')}`;
    const served = (await (
      await fetch(`${server.url}/cache/realisations/${id}.doi`, { headers: { Authorization: rwAuth } })
    ).json()) as { signatures: string[] };
    const nixSig = served.signatures.find((x) => x.startsWith(`ci-signer-${n}:`));
    expect(nixSig).toBeDefined();
    expect(served.signatures.some((x) => x.startsWith(`${key.split(':')[0]}:`))).toBe(true);

    // The same document with the trusted signer's signature over other content, or claiming the
    // org's own key name, is a 400 and changes nothing.
    const { signatures: _all, ...doc } = served as unknown as Record<string, unknown>;
    const forged = { ...doc, signatures: [`ci-signer-${n}:${Buffer.alloc(64, 1).toString('base64')}`] };
    const own = { ...doc, signatures: [`${key.split(':')[0]}:${Buffer.alloc(64, 2).toString('base64')}`] };
    for (const [body, message] of [
      [forged, /does not verify/],
      [own, /key of this org/],
    ] as const) {
      const r = await fetch(`${server.url}/cache/realisations/${id}.doi`, {
        method: 'PUT',
        headers: { Authorization: rwAuth, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(r.status).toBe(400);
      expect(await r.text()).toMatch(message);
    }
    const again = (await (
      await fetch(`${server.url}/cache/realisations/${id}.doi`, { headers: { Authorization: rwAuth } })
    ).json()) as { signatures: string[] };
    expect(again.signatures).toEqual(served.signatures);
  });

  it('nix store copy-log uploads a build log; nix log reads it from another machine; another org sees nothing', async () => {
    const s = seed('logged');
    const logExpr = path.join(dir, 'logged.nix');
    await writeFile(
      logExpr,
      `{ seed }: derivation { name = "logged-\${seed}"; builder = "/bin/sh"; args = ["-c" "echo build-log-line-\${seed}; echo done > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
    );
    const builder = fresh('builder');
    const built = await nix.run(['nix-build', logExpr, '--argstr', 'seed', s, '--no-out-link'], { cacheHome: builder });
    expect(built.code, built.stderr).toBe(0);
    const out = built.stdout.trim().split('\n').at(-1)!;
    const drv = (await nix.run(['nix-store', '--query', '--deriver', out], { cacheHome: builder })).stdout.trim();
    expect(drv).toMatch(/\.drv$/);
    await push(out);
    const copied = await nix.run(
      ['nix', 'store', 'copy-log', '--option', 'netrc-file', netrcRW, '--to', `${server.url}/cache`, drv],
      { cacheHome: builder },
    );
    expect(copied.code, copied.stderr).toBe(0);
    await expect
      .poll(() => requests('PUT', `log/${path.basename(drv)}`).some((l) => l.includes('"status":201')))
      .toBe(true);

    const reader = await writeNetrc(dir, `log-reader-${n++}`, (await createToken(server, 'acme', ['read'])).token);
    // `nix log --store <cache> <output>`: Nix reads the output's narinfo Deriver, then log/<drv>.
    const read = await nix.run(
      ['nix', 'log', '--option', 'netrc-file', reader, '--store', `${server.url}/cache`, out],
      { cacheHome: fresh('machine') },
    );
    expect(read.code, read.stderr).toBe(0);
    expect(read.stdout).toContain(`build-log-line-${s}`);
    // The access log line is written just after the answer: poll for it.
    await expect
      .poll(() => requests('GET', `log/${path.basename(drv)}`).some((l) => l.includes('"status":200')))
      .toBe(true);

    const outsiders = `outsiders-${n++}`;
    await createOrg(server, outsiders);
    const outsider = await writeNetrc(dir, outsiders, (await createToken(server, outsiders, ['read'])).token);
    for (const netrc of [outsider, undefined]) {
      const denied = await nix.run(
        ['nix', 'log', ...(netrc ? ['--option', 'netrc-file', netrc] : []), '--store', `${server.url}/cache`, out],
        { cacheHome: fresh('machine') },
      );
      expect(denied.code).not.toBe(0);
      expect(denied.stdout).not.toContain(`build-log-line-${s}`);
    }
    // Over HTTP the log itself is the one miss for them, the same bytes as a log never uploaded.
    const token = (await createToken(server, outsiders, ['read'])).token;
    const headers = { Authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` };
    const hidden = await fetch(`${server.url}/cache/log/${path.basename(drv)}`, { headers });
    const never = await fetch(
      `${server.url}/cache/log/${path.basename(drv).replace(/^./, (c) => (c === '0' ? '1' : '0'))}`,
      { headers },
    );
    expect(hidden.status).toBe(404);
    expect(await hidden.text()).toBe(await never.text());
  });

  it('nix copy with write-nar-listing and index-debug-info succeeds; the listing is served from the NAR; nix store ls reads the cache', async () => {
    const s = seed('debug');
    const buildId = `02${Buffer.from(s).toString('hex').padEnd(38, '0').slice(0, 38)}`;
    const debugExpr = path.join(dir, 'debug.nix');
    await writeFile(
      debugExpr,
      `{ seed }: derivation { name = "debug-\${seed}"; builder = "/bin/sh"; args = ["-c" "mkdir -p $out/lib/debug/.build-id/${buildId.slice(0, 2)}; echo \${seed} > $out/lib/debug/.build-id/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
    );
    const builder = fresh('builder');
    const built = await nix.run(['nix-build', debugExpr, '--argstr', 'seed', s, '--no-out-link'], {
      cacheHome: builder,
    });
    expect(built.code, built.stderr).toBe(0);
    const out = built.stdout.trim().split('\n').at(-1)!;
    const copied = await nix.run(
      [
        'nix',
        'copy',
        '--option',
        'netrc-file',
        netrcRW,
        '--to',
        `${server.url}/cache?write-nar-listing=true&index-debug-info=true`,
        out,
      ],
      { cacheHome: builder },
    );
    expect(copied.code, copied.stderr).toBe(0);
    const hash = path.basename(out).slice(0, 32);
    await expect.poll(() => requests('PUT', `debuginfo/${buildId}`).some((l) => l.includes('"status":204'))).toBe(true);
    await expect.poll(() => requests('PUT', `${hash}.ls`).some((l) => l.includes('"status":204'))).toBe(true);

    const token = (await createToken(server, 'acme', ['read'])).token;
    const res = await fetch(`${server.url}/cache/${hash}.ls`, {
      headers: { Authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` },
    });
    expect(res.status).toBe(200);
    const listing = (await res.json()) as {
      version: number;
      root: {
        entries: {
          lib: {
            entries: {
              debug: {
                entries: Record<
                  string,
                  { entries: Record<string, { entries: Record<string, { type: string; size: number }> }> }
                >;
              };
            };
          };
        };
      };
    };
    expect(listing.version).toBe(1);
    expect(
      listing.root.entries.lib.entries.debug.entries['.build-id']!.entries[buildId.slice(0, 2)]!.entries[
        `${buildId.slice(2)}.debug`
      ],
    ).toMatchObject({ type: 'regular', size: s.length + 1 });

    const reader = await writeNetrc(dir, `ls-reader-${n++}`, token);
    const ls = await nix.run(
      ['nix', 'store', 'ls', '--option', 'netrc-file', reader, '--store', `${server.url}/cache`, '-R', `${out}/lib`],
      { cacheHome: fresh('machine') },
    );
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain(`${buildId.slice(2)}.debug`);

    // The debug info index points at the NAR Floe serves (not the client's .nar.xz), for readers.
    const auth = { Authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` };
    const member = `lib/debug/.build-id/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug`;
    const index = await fetch(`${server.url}/cache/debuginfo/${buildId}`, { headers: auth });
    expect(index.status).toBe(200);
    const doc = (await index.json()) as { archive: string; member: string };
    expect(doc.member).toBe(member);
    const narinfo = await (await fetch(`${server.url}/cache/${hash}.narinfo`, { headers: auth })).text();
    expect(`../${/^URL: (.*)$/m.exec(narinfo)![1]}`).toBe(doc.archive);
    const nar = await fetch(new URL(doc.archive, `${server.url}/cache/debuginfo/`), { headers: auth });
    expect(nar.status).toBe(200);
    const narBytes = zstdDecompressSync(Buffer.from(await nar.arrayBuffer()));
    expect(narBytes.includes(Buffer.from(`${s}\n`))).toBe(true);
    // Nix 2.8's own name for it (`<build id>.debug`) answers the same.
    expect(await (await fetch(`${server.url}/cache/debuginfo/${buildId}.debug`, { headers: auth })).text()).toBe(
      JSON.stringify(doc),
    );

    // Another org and anonymous callers get the one miss, byte-identical to an unknown build id.
    const others = `debug-others-${n++}`;
    await createOrg(server, others);
    const other = {
      Authorization: `Basic ${Buffer.from(`x:${(await createToken(server, others, ['read'])).token}`).toString('base64')}`,
    };
    const unknown = await fetch(`${server.url}/cache/debuginfo/${'f'.repeat(40)}`, { headers: auth });
    expect(unknown.status).toBe(404);
    const missBody = await unknown.text();
    for (const headers of [other, undefined]) {
      const denied = await fetch(`${server.url}/cache/debuginfo/${buildId}`, { headers });
      expect(denied.status).toBe(404);
      expect(await denied.text()).toBe(missBody);
    }
  });

  it('a narinfo carrying a several-KB signature is kept, served and substituted', async () => {
    const p = fakePath('big-sig');
    const fileName = `${p.hashPart}.nar`;
    const big = `pq-signer-1:${randomBytes(3309).toString('base64')}`;
    const narinfo = narInfoFor(p, `nar/${fileName}`).replace('References: \n', `References: \nSig: ${big}\n`);
    const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    const basic = `Basic ${Buffer.from(`x:${rw}`).toString('base64')}`;
    expect(await nixStyleUpload(`${server.url}/cache`, basic, p, { fileName, narinfo })).toMatchObject({
      nar: 201,
      narinfo: 201,
    });
    const served = await (
      await fetch(`${server.url}/cache/${p.hashPart}.narinfo`, { headers: { Authorization: basic } })
    ).text();
    expect(served).toContain(`Sig: ${big}\n`);
    const reader = await writeNetrc(dir, `big-sig-${n++}`, (await createToken(server, 'acme', ['read'])).token);
    const got = await substituteOn(fresh('machine'), `/nix/store/${p.base}`, reader);
    expect(got.code, got.stderr).toBe(0);
  });

  it('a narinfo with Provenance and other unknown fields is served back with them byte-for-byte and still verifies', async () => {
    const p = fakePath('provenance');
    const fileName = `${p.hashPart}.nar`;
    const provenance = `{"drv":"${p.hashPart}-provenance.drv","next":{"type":"flake","flakeOutput":"packages.x86_64-linux.default"},"output":"out","type":"build"}`;
    const extra = `Provenance: ${provenance}\nSystem: x86_64-linux\nX-Floe-Test:  spaced value \n`;
    const narinfo = narInfoFor(p, `nar/${fileName}`).replace('References: \n', `References: \n${extra}`);
    const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
    const basic = `Basic ${Buffer.from(`x:${rw}`).toString('base64')}`;
    expect(await nixStyleUpload(`${server.url}/cache`, basic, p, { fileName, narinfo })).toMatchObject({
      nar: 201,
      narinfo: 201,
    });
    const served = await (
      await fetch(`${server.url}/cache/${p.hashPart}.narinfo`, { headers: { Authorization: basic } })
    ).text();
    // After every field Nix writes, the org's signature last among those, in the order sent.
    expect(served).toMatch(/\nSig: [^\n]+\n/);
    expect(served.endsWith(`\n${extra}`)).toBe(true);
    const reader = await writeNetrc(dir, `provenance-${n++}`, (await createToken(server, 'acme', ['read'])).token);
    const got = await substituteOn(fresh('machine'), `/nix/store/${p.base}`, reader);
    expect(got.code, got.stderr).toBe(0);

    // The batch API (`floe push`) carries them too.
    const q = fakePath('provenance-batch');
    const meta = {
      storePath: `/nix/store/${q.base}`,
      narHash: q.narHash,
      narSize: q.narSize,
      references: [],
      fields: [{ name: 'Provenance', value: provenance }],
    };
    const put = await fetch(`${server.url}/api/v1/cache/paths`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${rw}`, 'X-Floe-Compression': 'none' },
      body: Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), q.nar]),
    });
    expect(put.status, await put.text()).toBe(201);
    const batch = await (
      await fetch(`${server.url}/cache/${q.hashPart}.narinfo`, { headers: { Authorization: basic } })
    ).text();
    expect(batch.endsWith(`\nProvenance: ${provenance}\n`)).toBe(true);
    const fetched = await substituteOn(fresh('machine'), `/nix/store/${q.base}`, reader);
    expect(fetched.code, fetched.stderr).toBe(0);

    // Bad input is a clear 400 and stores nothing.
    const r = fakePath('provenance-bad');
    const badInfo = narInfoFor(r, `nar/${r.hashPart}.nar`).replace(
      'References: \n',
      'References: \nProvenance: not json\n',
    );
    const bad = await nixStyleUpload(`${server.url}/cache`, basic, r, {
      fileName: `${r.hashPart}.nar`,
      narinfo: badInfo,
    });
    expect(bad.narinfo).toBe(400);
    expect(bad.narinfoText).toMatch(/Provenance/);
    expect(
      (await fetch(`${server.url}/cache/${r.hashPart}.narinfo`, { headers: { Authorization: basic } })).status,
    ).toBe(404);
  });
}
