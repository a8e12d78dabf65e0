/**
 * `floe push` with real Nix: a wide closure, part of it already in the cache, uploaded in
 * parallel with dependencies first; a push interrupted half way and resumed; the result
 * substitutes into a fresh store with signatures required; byte progress within one large path
 * and a summary whose byte totals are what the server counted; a chain deeper than the first
 * missing-query batch (uploads start while later batches are asked, and the server refuses any
 * path that comes before its references); a path refused in the middle of a push; small paths
 * sent in batches, and one by one through a proxy that hides the batch route (an older server).
 */
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { BASE_NIX_CONFIG, fixtureDir, hostNix, requireNix, writeNetrc, copyFromCacheArgs } from '../helpers/nix.js';

const exec = promisify(execFile);
const version = await requireNix(hostNix);
let server: TestServer;
let rw: string;
let dir: string;

async function wideClosure(tag: string, width: number): Promise<{ top: string; leaves: string[] }> {
  const file = path.join(dir, `${tag}.nix`);
  await writeFile(
    file,
    `let leaf = i: derivation { name = "leaf-${tag}-\${toString i}"; builder = "/bin/sh"; args = [ "-c" "echo ${tag} \${toString i} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
     leaves = builtins.genList leaf ${width};
in derivation { name = "top-${tag}"; builder = "/bin/sh"; args = [ "-c" "echo \${toString leaves} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
  );
  const r = await hostNix.run(['nix-build', file, '--no-out-link'], { cacheHome: path.join(dir, 'build') });
  if (r.code !== 0) throw new Error(r.stderr);
  const top = r.stdout.trim().split('\n').at(-1)!;
  const refs = await hostNix.run(['nix-store', '-q', '--references', top], { cacheHome: path.join(dir, 'build') });
  return { top, leaves: refs.stdout.trim().split('\n') };
}

/**
 * A proxy in front of the server that counts the requests by method and path (the part after the
 * cache prefix), answering 404 to the batch route when `hideBatches`, as a server without it does.
 */
async function countingProxy(
  hideBatches: boolean,
): Promise<{ url: string; seen: Map<string, number>; server: Server }> {
  const seen = new Map<string, number>();
  const target = new URL(server.url);
  const proxy = createServer((req, res) => {
    const route = `${req.method} ${(req.url ?? '').replace(/^\/api\/v1\/cache/, '')}`;
    seen.set(route, (seen.get(route) ?? 0) + 1);
    if (hideBatches && req.url?.endsWith('/paths/batch')) {
      req.resume();
      req.on('end', () => {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end('{"status":404,"code":"not_found","message":"not found"}');
      });
      return;
    }
    const out = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const port = (proxy.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, seen, server: proxy };
}

const floeEnv = () => ({ ...process.env, NIX_CONFIG: BASE_NIX_CONFIG, FLOE_SERVER: server.url, FLOE_TOKEN: rw });

beforeAll(async () => {
  if (!version) return;
  server = await startFloe();
  await createOrg(server, 'acme');
  rw = (await createToken(server, 'acme', ['read', 'write'])).token;
  dir = await fixtureDir('push');
});

afterAll(async () => {
  await server?.cleanup();
});

describe.skipIf(!version)('floe push', () => {
  it('uploads only what is missing, dependencies first, and the closure substitutes', async () => {
    const { top, leaves } = await wideClosure('wide', 150);
    const netrc = await writeNetrc(dir, 'netrc', rw);
    const pre = await hostNix.run(
      ['nix', 'copy', '--option', 'netrc-file', netrc, '--to', `${server.url}/cache`, ...leaves.slice(0, 10)],
      { cacheHome: path.join(dir, 'pre') },
    );
    expect(pre.code, pre.stderr).toBe(0);
    const first = await exec(process.execPath, [FLOE_BIN, 'push', top, '--json', '--jobs', '4'], { env: floeEnv() });
    expect(JSON.parse(first.stdout)).toMatchObject({ total: 151, present: 10, uploaded: 141, failed: [] });
    expect(first.stderr).toMatch(
      /151 paths in the closure, 10 already in the cache, 0 fetched by the server from upstream, 141 to upload/,
    );
    const again = await exec(process.execPath, [FLOE_BIN, 'push', top, '--json'], { env: floeEnv() });
    expect(JSON.parse(again.stdout)).toMatchObject({ present: 151, uploaded: 0 });
    const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    const got = await hostNix.run(
      copyFromCacheArgs({ key, netrc, from: `${server.url}/cache`, to: path.join(dir, 'store') }, top),
      { cacheHome: path.join(dir, 'sub') },
    );
    expect(got.code, got.stderr).toBe(0);
  });

  it('resumes an interrupted push', async () => {
    const { top } = await wideClosure('resume', 30);
    await new Promise<void>((resolve) => {
      const child = spawn(process.execPath, [FLOE_BIN, 'push', top, '--jobs', '1'], {
        env: floeEnv(),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let seen = 0;
      child.stderr.on('data', (d: Buffer) => {
        seen += (d.toString().match(/uploaded \/nix\/store/g) ?? []).length;
        if (seen >= 3) child.kill('SIGKILL');
      });
      child.on('close', () => resolve());
    });
    const resumed = await exec(process.execPath, [FLOE_BIN, 'push', top, '--json'], { env: floeEnv() });
    const r = JSON.parse(resumed.stdout) as { total: number; present: number; uploaded: number };
    expect(r.total).toBe(31);
    expect(r.present).toBeGreaterThanOrEqual(3);
    expect(r.present + r.uploaded).toBe(31);
    expect(r.uploaded).toBeGreaterThan(0);
  });

  it('shows bytes moving within a large path, and sums up the bytes the server received', async () => {
    // Random bytes: zstd cannot shrink them, so the NAR streams at its full size.
    const file = path.join(dir, 'big.nix');
    await writeFile(
      file,
      `derivation { name = "big-blob"; builder = "/bin/sh"; args = [ "-c" "head -c 12582912 /dev/urandom > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
    );
    const built = await hostNix.run(['nix-build', file, '--no-out-link'], { cacheHome: path.join(dir, 'build') });
    expect(built.code, built.stderr).toBe(0);
    const big = built.stdout.trim().split('\n').at(-1)!;
    const scrape = async () => {
      const text = await (
        await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
      ).text();
      return Number(
        text
          .split('\n')
          .find((l) => l.startsWith('floe_upload_bytes_total '))
          ?.split(' ')[1] ?? 0,
      );
    };
    const before = await scrape();
    // stderr is a pipe here, as in CI: plain lines, throttled to FLOE_PROGRESS_INTERVAL (tiny, so a fast push still shows several).
    const r = await exec(process.execPath, [FLOE_BIN, 'push', big, '--json'], {
      env: { ...floeEnv(), FLOE_PROGRESS_INTERVAL: '0.001' },
    });
    const summary = JSON.parse(r.stdout) as { uploaded: number; bytes: number; sentBytes: number; durationMs: number };
    expect(summary.uploaded).toBe(1);
    expect(r.stderr).not.toMatch(/\r|\x1b\[/);
    const shown = [...r.stderr.matchAll(/^floe push: ([\d.]+) (KiB|MiB) of 12\.0 MiB \((\d+)%\)/gm)].map(
      (m) => Number(m[1]) * (m[2] === 'MiB' ? 1024 : 1),
    );
    expect(shown.length, r.stderr).toBeGreaterThanOrEqual(3);
    expect(
      shown.some((kib) => kib > 0 && kib < 12 * 1024),
      'a line while the one path was half sent',
    ).toBe(true);
    for (let i = 1; i < shown.length; i++) expect(shown[i]!).toBeGreaterThanOrEqual(shown[i - 1]!);
    expect(shown.at(-1)!).toBeGreaterThan(shown[0]!);
    expect(r.stderr).toMatch(/uploaded .*big-blob \(12\.0 MiB\); 12\.0 MiB of 12\.0 MiB \(100%\)/);
    const info = JSON.parse(
      (await hostNix.run(['nix', 'path-info', '--json', big], { cacheHome: path.join(dir, 'build') })).stdout,
    ) as Array<{ narSize: number }> | Record<string, { narSize: number }>;
    const narSize = (Array.isArray(info) ? info[0]! : Object.values(info)[0]!).narSize;
    expect(summary.bytes).toBe(narSize);
    // What the server counted as received NAR bytes is exactly what the client says it sent.
    expect(summary.sentBytes).toBe((await scrape()) - before);
    expect(summary.sentBytes).toBeGreaterThan(12 * 2 ** 20);
    expect(summary.durationMs).toBeGreaterThan(0);
    const plain = await exec(process.execPath, [FLOE_BIN, 'push', big], { env: floeEnv() });
    expect(plain.stderr).toMatch(/0 uploaded, 1 already present, 0 failed of 1 paths; 0 KiB \(0 KiB sent\) in \d+s/);
  });

  it('uploads a chain spanning several missing-queries, every path after its references', async () => {
    // 130 paths, each referring to the one before: the first query batch holds the bottom 100, and
    // the server answers 400 to any path whose references it does not hold yet.
    const file = path.join(dir, 'chain.nix');
    await writeFile(
      file,
      `let link = i: derivation { name = "chain-\${toString i}"; builder = "/bin/sh"; args = [ "-c" (if i == 0 then "echo 0 > $out" else "echo \${link (i - 1)} > $out") ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in link 129\n`,
    );
    const built = await hostNix.run(['nix-build', file, '--no-out-link'], { cacheHome: path.join(dir, 'build') });
    expect(built.code, built.stderr).toBe(0);
    const top = built.stdout.trim().split('\n').at(-1)!;
    const r = await exec(process.execPath, [FLOE_BIN, 'push', top, '--json', '--jobs', '2'], { env: floeEnv() });
    expect(JSON.parse(r.stdout)).toMatchObject({ total: 130, present: 0, uploaded: 130, failed: [] });
    expect(r.stderr).toMatch(
      /130 paths in the closure, 0 already in the cache, 0 fetched by the server from upstream, 130 to upload/,
    );
    const narinfo = await fetch(`${server.url}/cache/${path.basename(top).slice(0, 32)}.narinfo`, {
      headers: { Authorization: `Bearer ${rw}` },
    });
    expect(narinfo.status).toBe(200);
  });

  it('names the path the server refused, gives up what depends on it, keeps the rest, and exits non-zero', async () => {
    await createOrg(server, 'tight');
    const token = (await createToken(server, 'tight', ['read', 'write'])).token;
    // The org may store 1 MiB: the small leaves fit, the 2 MiB one of random bytes does not. It
    // refers to the leaves, so they upload before it: a refused NAR counts against the quota for a
    // while, and leaves sent after it would be refused too.
    const quota = await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/tight/settings', { quota: 1 << 20 });
    expect(quota.status, JSON.stringify(quota.body)).toBe(200);
    const file = path.join(dir, 'refused.nix');
    await writeFile(
      file,
      `let leaf = i: derivation { name = "fits-\${toString i}"; builder = "/bin/sh"; args = [ "-c" "echo refused \${toString i} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
     leaves = toString (builtins.genList leaf 20);
     big = derivation { name = "too-big"; builder = "/bin/sh"; args = [ "-c" "head -c 2097152 /dev/urandom > $out; echo \${leaves} >> $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "refused-top"; builder = "/bin/sh"; args = [ "-c" "echo \${big} \${leaves} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
    );
    const built = await hostNix.run(['nix-build', file, '--no-out-link'], { cacheHome: path.join(dir, 'build') });
    expect(built.code, built.stderr).toBe(0);
    const top = built.stdout.trim().split('\n').at(-1)!;
    const failed = await exec(process.execPath, [FLOE_BIN, 'push', top, '--json'], {
      env: { ...floeEnv(), FLOE_TOKEN: token },
    }).then(
      () => undefined,
      (e: unknown) => e as { code: number; stdout: string; stderr: string },
    );
    expect(failed, 'the push must fail').toBeDefined();
    expect(failed!.code).toBe(1);
    const summary = JSON.parse(failed!.stdout) as { uploaded: number; failed: Array<{ path: string; error: string }> };
    expect(summary.uploaded).toBe(20);
    const big = summary.failed.find((f) => f.path.endsWith('-too-big'));
    expect(big?.error, failed!.stderr).toMatch(/HTTP 4\d\d: .*quota/i);
    expect(summary.failed.find((f) => f.path === top)?.error).toBe('a dependency failed to upload');
    expect(summary.failed).toHaveLength(2);
    expect(failed!.stderr).toMatch(/floe push: failed \/nix\/store\/\w{32}-too-big: HTTP 4\d\d/);
    expect(failed!.stderr).toContain(`floe push: ${top}: a dependency failed to upload`);
    const hash = (p: string) => path.basename(p).slice(0, 32);
    const status = async (p: string) =>
      (await fetch(`${server.url}/cache/${hash(p)}.narinfo`, { headers: { Authorization: `Bearer ${token}` } })).status;
    expect(await status(top)).toBe(404);
    expect(await status(big!.path)).toBe(404);
    const leaves = (
      await hostNix.run(['nix-store', '-q', '--references', top], { cacheHome: path.join(dir, 'build') })
    ).stdout
      .trim()
      .split('\n')
      .filter((p) => p !== big!.path);
    expect(leaves).toHaveLength(20);
    for (const leaf of leaves) expect(await status(leaf)).toBe(200);
  });

  it('sends small paths in batches, and one by one to a server without the batch route', async () => {
    for (const hide of [false, true]) {
      const tag = hide ? 'unbatched' : 'batched';
      const { top, leaves } = await wideClosure(tag, 70);
      const proxy = await countingProxy(hide);
      try {
        const r = await exec(process.execPath, [FLOE_BIN, 'push', top, '--json', '--jobs', '2'], {
          env: { ...floeEnv(), FLOE_SERVER: proxy.url },
        });
        expect(JSON.parse(r.stdout), r.stderr).toMatchObject({ total: 71, uploaded: 71, failed: [] });
        const batches = proxy.seen.get('POST /paths/batch') ?? 0;
        const singles = proxy.seen.get('PUT /paths') ?? 0;
        if (hide) {
          // Every path went alone after the batch route answered 404.
          expect(batches).toBeGreaterThanOrEqual(1);
          expect(singles).toBe(71);
          expect(r.stderr).toMatch(/takes no batches of small paths: uploading them one by one/);
        } else {
          // At most 32 paths to a batch, and no path alone.
          expect(batches).toBeGreaterThanOrEqual(3);
          expect(batches).toBeLessThan(71 / 2);
          expect(singles).toBe(0);
        }
      } finally {
        proxy.server.closeAllConnections();
        proxy.server.close();
      }
      for (const p of [top, ...leaves]) {
        const res = await fetch(`${server.url}/cache/${path.basename(p).slice(0, 32)}.narinfo`, {
          headers: { Authorization: `Bearer ${rw}` },
        });
        expect(res.status, p).toBe(200);
      }
    }
  });

  it('explains a missing token and a path that is not in the store', async () => {
    const noToken = await exec(
      process.execPath,
      [FLOE_BIN, 'push', '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nope'],
      { env: { ...floeEnv(), FLOE_TOKEN: '' } },
    ).catch((e) => e as { code: number; stderr: string });
    expect(noToken.stderr).toMatch(/needs a token with the write scope/);
    const bogus = await exec(process.execPath, [FLOE_BIN, 'push', '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nope'], {
      env: floeEnv(),
    }).catch((e) => e as { code: number; stderr: string });
    expect((bogus as { code: number }).code).not.toBe(0);
    expect(bogus.stderr).toMatch(/nix path-info|not valid/);
  });
});
