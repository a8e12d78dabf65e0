/**
 * `floe publish` from a git checkout with real Nix: a rolling release of the tracked files, its
 * output built and pushed, and resolvable to that output's store path.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { BASE_NIX_CONFIG, hostNix, requireNix } from '../helpers/nix.js';

const exec = promisify(execFile);
const version = await requireNix(hostNix);
let server: TestServer;
let repo: string;
let token: string;

beforeAll(async () => {
  if (!version) return;
  server = await startFloe();
  await createOrg(server, 'acme');
  token = (await createToken(server, 'acme', ['publish', 'write', 'read'])).token;
  repo = mkdtempSync('/tmp/floe-publish-repo-');
  const tag = Date.now().toString(36);
  writeFileSync(
    path.join(repo, 'flake.nix'),
    `{ description = "A tool to publish";
  outputs = { self }: { packages.x86_64-linux.default = derivation { name = "published-tool-${tag}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo tool ${tag} > $out" ]; PATH = "/usr/bin:/bin"; }; };
}\n`,
  );
  writeFileSync(path.join(repo, 'README.md'), '# Tool\n');
  writeFileSync(path.join(repo, 'untracked.txt'), 'not published\n');
  const git = (args: string[]) =>
    exec('git', args, {
      cwd: repo,
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 'ci',
        GIT_AUTHOR_EMAIL: 'ci@example.com',
        GIT_COMMITTER_NAME: 'ci',
        GIT_COMMITTER_EMAIL: 'ci@example.com',
      },
    });
  await git(['init', '-q']);
  await git(['add', 'flake.nix', 'README.md']);
  await git(['commit', '-q', '-m', 'one']);
  await git(['commit', '-q', '--allow-empty', '-m', 'two']);
});

afterAll(async () => {
  await server?.cleanup();
});

describe.skipIf(!version)('floe publish', () => {
  it('publishes a rolling release of the tracked files with its output pushed and resolvable', async () => {
    const env = {
      ...process.env,
      NIX_CONFIG: BASE_NIX_CONFIG,
      FLOE_SERVER: server.url,
      FLOE_TOKEN: token,
      XDG_CACHE_HOME: path.join(repo, '.cache-home'),
    };
    const r = await exec(
      process.execPath,
      [
        FLOE_BIN,
        'publish',
        '--dir',
        repo,
        '--org',
        'acme',
        '--name',
        'tool',
        '--rolling',
        '--visibility',
        'public',
        '--include-output',
        'packages.x86_64-linux.default',
        '--json',
      ],
      { env },
    );
    const out = JSON.parse(r.stdout) as { version: string; url: string };
    const rev = (await exec('git', ['rev-parse', 'HEAD'], { cwd: repo })).stdout.trim();
    expect(out.version).toBe(`0.1.2+rev-${rev}`);
    const releases = await api<{ releases: Array<{ revision: string; commitCount: number }> }>(
      server,
      undefined,
      'GET',
      '/api/v1/flakes/acme/tool/releases',
    );
    expect(releases.body.releases[0]).toMatchObject({ revision: rev, commitCount: 2 });
    const resolved = await exec(
      process.execPath,
      [FLOE_BIN, 'resolve', 'acme/tool/0.1#packages.x86_64-linux.default'],
      { env },
    );
    expect(resolved.stdout.trim()).toMatch(/^\/nix\/store\/[a-z0-9]{32}-published-tool-/);
    // Only tracked files are in the tarball.
    const pinned = (await fetch(`${server.url}/f/acme/tool/0.1.tar.gz`, { redirect: 'manual' })).headers.get(
      'location',
    )!;
    const listing = await exec('sh', ['-c', `curl -s '${pinned}' | tar -tzf -`]);
    const files = listing.stdout
      .split('\n')
      .filter((f) => f && !f.endsWith('/'))
      .sort();
    expect(files).toEqual(['source/README.md', 'source/flake.nix']);
    expect(listing.stdout).not.toContain('untracked');
    // Publishing the same commit again is a conflict, not a second release.
    const again = await exec(
      process.execPath,
      [FLOE_BIN, 'publish', '--dir', repo, '--org', 'acme', '--name', 'tool', '--rolling'],
      { env },
    ).catch((e) => e as { stderr: string });
    expect(again.stderr).toMatch(/409|already published/);
  });

  it('list, add (then nix flake lock), and push --build-json', async () => {
    const env = {
      ...process.env,
      NIX_CONFIG: BASE_NIX_CONFIG,
      FLOE_SERVER: server.url,
      FLOE_TOKEN: token,
      XDG_CACHE_HOME: path.join(repo, '.cache-home'),
    };
    const cli = (args: string[]) => exec(process.execPath, [FLOE_BIN, ...args], { env });
    expect((await cli(['list', 'orgs'])).stdout).toMatch(/^acme {2}1 flake\(s\)/m);
    expect((await cli(['list', 'flakes', 'acme'])).stdout).toMatch(/^acme\/tool {2}public {2}A tool to publish/m);
    expect((await cli(['list', 'releases', 'acme/tool'])).stdout).toMatch(/^0\.1\.2\+rev-/m);
    const consumer = mkdtempSync('/tmp/floe-add-');
    writeFileSync(path.join(consumer, 'flake.nix'), '{\n  outputs = { self, ... }: { };\n}\n');
    await cli(['add', 'acme/tool', '--dir', consumer]);
    const { readFileSync } = await import('node:fs');
    // Nix 2.8 on PATH ignores Link, so `floe add` writes the release's pinned URL (test/registry/lock-drift).
    expect(readFileSync(path.join(consumer, 'flake.nix'), 'utf8')).toMatch(
      new RegExp(
        `inputs\\.tool\\.url = "${server.url}/f/pinned/acme/tool/0\\.1\\.2%2Brev-[0-9a-f]{40}/[0-9a-f-]{36}/source\\.tar\\.gz";`,
      ),
    );
    const lock = await hostNix.run(['nix', 'flake', 'lock', `path:${consumer}`], {
      cacheHome: path.join(consumer, '.cache'),
    });
    expect(lock.code, lock.stderr).toBe(0);
    const built = path.join(consumer, 'build.json');
    const out = (
      await exec(process.execPath, [FLOE_BIN, 'resolve', 'acme/tool/0.1#packages.x86_64-linux.default'], { env })
    ).stdout.trim();
    writeFileSync(built, JSON.stringify([{ drvPath: '/nix/store/x.drv', outputs: { out } }]));
    const pushed = JSON.parse((await cli(['push', '--build-json', built, '--json'])).stdout) as {
      total: number;
      present: number;
    };
    expect(pushed.total).toBeGreaterThan(0);
    expect(pushed.present).toBe(pushed.total);
  });
});
