/**
 * The npm package as a user gets it: `npm pack` of this checkout, `npm install -g` of the tarball
 * into an empty prefix (from a directory outside the checkout, with only the system's PATH), then
 * the installed `floe` alone: `--version`, `serve`, and a `floe push` of a real Nix 2.8 path that
 * then substitutes. On a machine whose system Node is older than 22 (this one has 20), the
 * installed launcher runs Floe on the Node 24 of the optional `node` dependency.
 */
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { BASE_NIX_CONFIG, hostNix, requireNix, writeNetrc, copyFromCacheArgs } from '../helpers/nix.js';

const exec = promisify(execFile);
const nixVersion = await requireNix(hostNix);
/** The machine's own tools, not this checkout's node_modules/.bin (which vitest's PATH may include). */
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const { version } = (await import(path.join(REPO_ROOT, 'package.json'), { with: { type: 'json' } })).default as {
  version: string;
};

let work: string;
/** HEAD when the tarball was stamped (a commit made while the test runs must not matter). */
let packedCommit: string;
let tarball: string;
let packedFiles: string[];
let floe: string;
let server: TestServer | undefined;

/**
 * This machine's environment (the user's npm config and CA bundle reach the registry) without what
 * `npm test` adds (npm_* variables, this checkout's node_modules/.bin on PATH).
 */
const outsideEnv = (extra: Record<string, string> = {}) => ({
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name))),
  PATH: `${path.join(work, 'prefix/bin')}:${SYSTEM_PATH}`,
  ...extra,
});

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'floe-package-'));
  // The stamp is what an installed package reports; `npm test` has just built dist/, so pack what is built.
  packedCommit = (await exec('git', ['-C', REPO_ROOT, 'rev-parse', 'HEAD'])).stdout.trim();
  await exec(process.execPath, [path.join(REPO_ROOT, 'scripts/build-info.mjs')]);
  const packed = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], {
    cwd: REPO_ROOT,
    maxBuffer: 64 << 20,
  });
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = path.join(work, info!.filename);
  packedFiles = info!.files.map((f) => f.path);
  await writeFile(path.join(work, 'package.json'), '{}\n'); // npm must not walk up into anything else
  const install = ['install', '-g', '--prefix', path.join(work, 'prefix'), '--no-audit', '--no-fund', tarball];
  const installed = spawnSync('npm', install, {
    cwd: work,
    env: outsideEnv(),
    encoding: 'utf8',
  });
  if (installed.status !== 0) throw new Error(`npm install -g failed:\n${installed.stderr}`);
  floe = path.join(work, 'prefix/bin/floe');
}, 600_000);

afterAll(async () => {
  // SIGTERM first: on an old system Node the installed launcher runs the server as its child and passes
  // SIGTERM on, while cleanup's SIGKILL would only reach the launcher.
  await server?.stop('SIGTERM');
  await server?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('ships the built CLI and nothing of the sources, tests or tooling', () => {
    const files = packedFiles;
    expect(files).toContain('bin/floe.js');
    expect(files).toContain('dist/src/cli/main.js');
    expect(files).toContain('dist/build-info.json');
    expect(files).toContain('LICENSE');
    const unwanted = /\.ts$|\.map$|^test\/|^dist\/test\/|^bench\/|^dist\/bench\/|^src\/|^\.ci\//;
    expect(files.filter((f) => unwanted.test(f))).toEqual([]);
  });

  it('installs into an empty prefix without the build tools, and prints its version and commit', async () => {
    const root = path.join(work, 'prefix/lib/node_modules/floe');
    expect(existsSync(path.join(root, 'dist/src/cli/main.js'))).toBe(true);
    // Dependencies only: the compiler and test runner are not installed.
    const deps = await readdir(path.join(root, 'node_modules'));
    expect(deps).not.toContain('typescript');
    expect(deps).not.toContain('vitest');
    const out = await exec(floe, ['--version'], { cwd: work, env: outsideEnv() });
    const v = version.replace(/\./g, '\\.');
    const expected = `^floe ${v} \\(commit ${packedCommit}( with local changes)?, Node v(2[2-9]|[3-9]\\d)\\.`;
    expect(out.stdout).toMatch(new RegExp(expected));
  });

  it.skipIf(!nixVersion)(
    'serves, and a real Nix 2.8 path pushed with the installed `floe` substitutes',
    async () => {
      server = await startFloe({ command: [floe], env: outsideEnv() });
      await createOrg(server, 'acme');
      const rw = (await createToken(server, 'acme', ['read', 'write'])).token;
      const expr = path.join(work, 'hello.nix');
      await writeFile(
        expr,
        `derivation { name = "packaged-floe"; builder = "/bin/sh";
      args = [ "-c" "echo ${work} > $out" ];
      PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
      );
      const built = await hostNix.run(['nix-build', expr, '--no-out-link'], { cacheHome: path.join(work, 'build') });
      expect(built.code, built.stderr).toBe(0);
      const storePath = built.stdout.trim();

      const env = outsideEnv({
        NIX_CONFIG: BASE_NIX_CONFIG,
        XDG_CACHE_HOME: path.join(work, 'push'),
        FLOE_SERVER: server.url,
        FLOE_TOKEN: rw,
      });
      const pushed = await exec(floe, ['push', storePath, '--json'], { cwd: work, env });
      expect(JSON.parse(pushed.stdout)).toMatchObject({ total: 1, uploaded: 1, failed: [] });

      const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
      const netrc = await writeNetrc(work, 'netrc', rw);
      const got = await hostNix.run(
        copyFromCacheArgs({ key, netrc, from: `${server.url}/cache`, to: path.join(work, 'store') }, storePath),
        { cacheHome: path.join(work, 'substitute') },
      );
      expect(got.code, got.stderr).toBe(0);
      expect(existsSync(path.join(work, 'store', storePath))).toBe(true);
    },
    120_000,
  );
});
