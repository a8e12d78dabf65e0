/**
 * `floe watch-exec` and `floe watch-store` with real Nix 2.8: what a command builds *and* what it
 * fetches from another cache lands in Floe and a second machine substitutes it; a watcher killed
 * after recording (or while pushing) loses nothing: `floe watch-store --drain` pushes the rest.
 * The host store is shared with other tests, so counts are lower bounds and the paths that matter
 * are checked one by one.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import {
  BASE_NIX_CONFIG,
  buildClosure,
  fixtureDir,
  hostNix,
  requireNix,
  writeClosureExpr,
  writeNetrc,
  copyFromCacheArgs,
} from '../helpers/nix.js';
import { isPushableName } from '../../src/cli/watch.js';
import { WATCH_DURATION, parseDurationMs } from '../../src/units.js';

const exec = promisify(execFile);
const version = await requireNix(hostNix);
let server: TestServer;
let rw: string;
let dir: string;
let expr: string;
const seed = () => `w${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

const floeEnv = (extra: Record<string, string> = {}) => ({
  ...process.env,
  NIX_CONFIG: BASE_NIX_CONFIG,
  XDG_CACHE_HOME: path.join(dir, 'build'),
  FLOE_SERVER: server.url,
  FLOE_TOKEN: rw,
  ...extra,
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function floe(
  args: string[],
  env: NodeJS.ProcessEnv,
  onStderr?: (text: string, kill: () => void) => void,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FLOE_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      onStderr?.(stderr, () => child.kill('SIGKILL'));
    });
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

async function inCache(storePath: string): Promise<boolean> {
  const hash = path.basename(storePath).slice(0, 32);
  const res = await fetch(`${server.url}/cache/${hash}.narinfo`, { headers: { Authorization: `Bearer ${rw}` } });
  await res.text();
  return res.status === 200;
}

/** A second machine: a fresh store that requires signatures by acme's key. */
async function substitutes(tag: string, paths: string[]): Promise<void> {
  const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
  const netrc = await writeNetrc(dir, `netrc-${tag}`, rw);
  const got = await hostNix.run(
    copyFromCacheArgs({ key, netrc, from: `${server.url}/cache`, to: path.join(dir, `store-${tag}`) }, ...paths),
    { cacheHome: path.join(dir, `machine-${tag}`) },
  );
  expect(got.code, got.stderr).toBe(0);
}

const references = async (p: string) =>
  (await exec('nix-store', ['-q', '--references', p], { env: floeEnv() })).stdout.trim().split('\n').filter(Boolean);

beforeAll(async () => {
  if (!version) return;
  server = await startFloe();
  await createOrg(server, 'acme');
  rw = (await createToken(server, 'acme', ['read', 'write'])).token;
  dir = await fixtureDir('watch');
  expr = await writeClosureExpr(dir);
});

afterAll(async () => {
  await server?.cleanup();
});

describe('watch helpers', () => {
  it('pushes outputs, not derivations or Nix lock files, and reads durations', () => {
    expect(isPushableName('02rpsijy225rh569721194gzg7rgmalh-leaf-wide-28')).toBe(true);
    expect(isPushableName('005qj0sn9ja1lwqhzcnp75mx901cal1v-leaf-wide-60.drv')).toBe(false);
    expect(isPushableName('02rpsijy225rh569721194gzg7rgmalh-leaf.lock')).toBe(false);
    expect(isPushableName('.links')).toBe(false);
    expect(isPushableName('eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-not-nix32')).toBe(false);
    expect(parseDurationMs('250ms', 'x', WATCH_DURATION)).toBe(250);
    expect(parseDurationMs('10m', 'x', WATCH_DURATION)).toBe(600_000);
    expect(() => parseDurationMs('10', '--timeout', WATCH_DURATION)).toThrow(/--timeout: expected a duration/);
  });
});

describe.skipIf(!version)('floe watch-exec / watch-store', () => {
  it('watch-exec pushes what the command built and what it fetched; a second machine substitutes both', async () => {
    // A path in another binary cache and no longer in the local store: the command fetches it.
    const fetched = await buildClosure(hostNix, expr, seed(), path.join(dir, 'build'));
    const fetchedDep = (await references(fetched)).find((r) => r !== fetched)!;
    const other = `file://${path.join(dir, 'other-cache')}`;
    const copied = await hostNix.run(['nix', 'copy', '--to', other, fetched], { cacheHome: path.join(dir, 'build') });
    expect(copied.code, copied.stderr).toBe(0);
    const deleted = await hostNix.run(['nix-store', '--delete', fetched, fetchedDep], {
      cacheHome: path.join(dir, 'build'),
    });
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await inCache(fetched)).toBe(false);

    const s = seed();
    const script = `nix-build ${expr} --argstr seed ${s} --no-out-link && nix-store -r ${fetched} --option substituters ${other} --option require-sigs false`;
    const r = await floe(
      ['watch-exec', '--queue', path.join(dir, 'q1.sqlite'), '--json', '--', 'sh', '-c', script],
      floeEnv(),
    );
    expect(r.code, r.stderr).toBe(0);
    const built = r.stdout.split('\n').find((l) => l.startsWith('/nix/store/'))!;
    const builtDep = (await references(built)).find((p) => p !== built)!;
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      pushed: number;
      failed: unknown[];
      left: number;
    };
    expect(summary.pushed).toBeGreaterThanOrEqual(4);
    expect(summary.failed).toEqual([]);
    expect(summary.left).toBe(0);
    expect(r.stderr).toMatch(/\d+ pushed, \d+ skipped .*, 0 failed; 0 left in the queue/);
    for (const p of [built, builtDep, fetched, fetchedDep]) expect(await inCache(p), p).toBe(true);
    await substitutes('exec', [built, fetched]);
  });

  it('a watcher killed right after recording loses nothing: watch-store --drain pushes the rest', async () => {
    const queue = path.join(dir, 'q2.sqlite');
    const s = seed();
    // No poll before the command ends (1h), so the final store diff is the one recording: then the hook kills it.
    const killed = await floe(
      [
        'watch-exec',
        '--queue',
        queue,
        '--interval',
        '1h',
        '--',
        'nix-build',
        expr,
        '--argstr',
        'seed',
        s,
        '--no-out-link',
      ],
      floeEnv({ FLOE_WATCH_TEST_CRASH_AFTER_RECORD: '1' }),
    );
    expect(killed.signal).toBe('SIGKILL');
    expect(killed.stderr).toMatch(/recorded \d+ new store path/);
    const top = killed.stdout.trim().split('\n').at(-1)!;
    const dep = (await references(top)).find((p) => p !== top)!;
    expect(await inCache(top)).toBe(false);
    expect(await inCache(dep)).toBe(false);

    const drained = await floe(['watch-store', '--drain', '--queue', queue, '--timeout', '2m', '--json'], floeEnv());
    expect(drained.code, drained.stderr).toBe(0);
    const summary = JSON.parse(drained.stdout.trim()) as { pushed: number; left: number };
    expect(summary.pushed).toBeGreaterThanOrEqual(2);
    expect(summary.left).toBe(0);
    expect(await inCache(top)).toBe(true);
    expect(await inCache(dep)).toBe(true);
    await substitutes('drain', [top]);

    const again = await floe(['watch-store', '--drain', '--queue', queue, '--json'], floeEnv());
    expect(JSON.parse(again.stdout.trim())).toMatchObject({ pushed: 0, skipped: 0, failed: [], left: 0 });
  });

  it('a watcher killed while pushing leaves the rest queued, and the drain finishes it', async () => {
    const queue = path.join(dir, 'q3.sqlite');
    const tag = seed();
    const file = path.join(dir, `${tag}.nix`);
    await writeFile(
      file,
      `let leaf = i: derivation { name = "leaf-${tag}-\${toString i}"; builder = "/bin/sh"; args = [ "-c" "echo ${tag} \${toString i} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "top-${tag}"; builder = "/bin/sh"; args = [ "-c" "echo \${toString (builtins.genList leaf 25)} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
    );
    let uploads = 0;
    const killed = await floe(
      ['watch-exec', '--queue', queue, '--interval', '1h', '--jobs', '1', '--', 'nix-build', file, '--no-out-link'],
      floeEnv(),
      (text, kill) => {
        uploads = (text.match(/uploaded \/nix\/store/g) ?? []).length;
        if (uploads >= 3) kill();
      },
    );
    expect(killed.signal).toBe('SIGKILL');
    const top = killed.stdout.trim().split('\n').at(-1)!;
    expect(await inCache(top)).toBe(false);
    const drained = await floe(['watch-store', '--drain', '--queue', queue, '--json'], floeEnv());
    expect(drained.code, drained.stderr).toBe(0);
    const summary = JSON.parse(drained.stdout.trim()) as { pushed: number; skipped: number; left: number };
    expect(summary.pushed).toBeGreaterThan(0);
    expect(summary.skipped).toBeGreaterThanOrEqual(3); // what was uploaded before the kill is not sent again
    expect(summary.left).toBe(0);
    for (const p of [top, ...(await references(top))]) expect(await inCache(p), p).toBe(true);
  });

  it('watch-store pushes paths as they appear and stops cleanly on SIGTERM', async () => {
    const queue = path.join(dir, 'q4.sqlite');
    const child = spawn(process.execPath, [FLOE_BIN, 'watch-store', '--queue', queue, '--interval', '200ms'], {
      env: floeEnv(),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    for (let i = 0; i < 100 && !/watching \/nix\/store/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    expect(stderr).toMatch(/watching \/nix\/store \(\d+ paths there already\)/);
    const top = await buildClosure(hostNix, expr, seed(), path.join(dir, 'build'));
    let pushed = false;
    for (let i = 0; i < 120 && !pushed; i++) {
      pushed = await inCache(top);
      if (!pushed) await new Promise((r) => setTimeout(r, 250));
    }
    expect(pushed, stderr).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/stopped; \d+ path\(s\) left in the queue/);
  });

  it('a watcher killed before it saw a path: --drain with the saved baseline records and pushes it', async () => {
    const queue = path.join(dir, 'q6.sqlite');
    const baseline = path.join(dir, 'baseline-6');
    const child = spawn(
      process.execPath,
      [FLOE_BIN, 'watch-store', '--queue', queue, '--baseline', baseline, '--interval', '1h'],
      { env: floeEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    for (let i = 0; i < 100 && !/watching /.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    expect(stderr).toMatch(/watching /);
    child.kill('SIGKILL');
    const top = await buildClosure(hostNix, expr, seed(), path.join(dir, 'build'));
    expect(await inCache(top)).toBe(false);
    const drained = await floe(
      ['watch-store', '--drain', '--queue', queue, '--baseline', baseline, '--json'],
      floeEnv(),
    );
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stderr).toMatch(/recorded \d+ new store path\(s\) since the baseline/);
    expect(await inCache(top)).toBe(true);
    for (const p of await references(top)) expect(await inCache(p), p).toBe(true);
  });

  it('refuses to watch without a write token', async () => {
    const r = await floe(
      ['watch-store', '--drain', '--queue', path.join(dir, 'q5.sqlite')],
      floeEnv({ FLOE_TOKEN: '' }),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needs a token with the write scope/);
  });
});
