/**
 * The GitHub Action (action/) in a simulated runner: GITHUB_* variables, the GITHUB_ENV / PATH /
 * OUTPUT / STATE files, and the job's OIDC endpoint served by a local issuer with GitHub's claims.
 * The main step logs in and starts pushing in the background, the job builds with real Nix 2.8,
 * the post step drains, and another machine substitutes what the job built using the Nix
 * configuration the action wrote. A pull request from a fork does not log in or push.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { githubClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { BASE_NIX_CONFIG, buildClosure, fixtureDir, hostNix, requireNix, writeClosureExpr } from '../helpers/nix.js';

const version = await requireNix(hostNix);
let server: TestServer;
let gh: TestIssuer;
let dir: string;
let reader: string;
let expr: string;
const seed = () => `a${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

interface Runner {
  home: string;
  env: NodeJS.ProcessEnv;
  files: { env: string; path: string; output: string; state: string };
}

/** A fresh runner for one job: its own home, temp dir and command files. */
async function runner(
  tag: string,
  event: { name: string; payload: unknown },
  inputs: Record<string, string>,
): Promise<Runner> {
  const root = await mkdtemp(path.join(dir, `${tag}-`));
  const home = path.join(root, 'home');
  await mkdir(path.join(root, 'temp'), { recursive: true });
  await mkdir(home, { recursive: true });
  const files = {
    env: path.join(root, 'env'),
    path: path.join(root, 'path'),
    output: path.join(root, 'output'),
    state: path.join(root, 'state'),
  };
  for (const f of Object.values(files)) await writeFile(f, '');
  await writeFile(path.join(root, 'event.json'), JSON.stringify(event.payload));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    NIX_CONFIG: BASE_NIX_CONFIG,
    GITHUB_ACTIONS: 'true',
    GITHUB_REPOSITORY: 'acme-gh/app',
    GITHUB_REF: 'refs/heads/main',
    GITHUB_EVENT_NAME: event.name,
    GITHUB_EVENT_PATH: path.join(root, 'event.json'),
    GITHUB_ENV: files.env,
    GITHUB_PATH: files.path,
    GITHUB_OUTPUT: files.output,
    GITHUB_STATE: files.state,
    RUNNER_TEMP: path.join(root, 'temp'),
    ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
    ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
  };
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  return { home, env, files };
}

/** The `NAME<<DELIM` records of a runner command file. */
async function keyValues(file: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const m of (await readFile(file, 'utf8')).matchAll(/^([\w-]+)<<(\S+)\n([\s\S]*?)\n\2$/gm)) out[m[1]!] = m[3]!;
  return out;
}

function step(
  script: string,
  env: NodeJS.ProcessEnv,
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'action', script)], {
      env,
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What the runner gives later steps: GITHUB_ENV variables and GITHUB_PATH entries. */
async function laterStepEnv(r: Runner): Promise<NodeJS.ProcessEnv> {
  const added = (await readFile(r.files.path, 'utf8')).split('\n').filter(Boolean);
  return { ...r.env, ...(await keyValues(r.files.env)), PATH: [...added.reverse(), r.env.PATH].join(path.delimiter) };
}

/** The post step sees the main step's saved state as STATE_* variables. */
async function postEnv(r: Runner): Promise<NodeJS.ProcessEnv> {
  const state = Object.fromEntries(Object.entries(await keyValues(r.files.state)).map(([k, v]) => [`STATE_${k}`, v]));
  return { ...(await laterStepEnv(r)), ...state };
}

async function inCache(storePath: string): Promise<boolean> {
  const res = await fetch(`${server.url}/cache/${path.basename(storePath).slice(0, 32)}.narinfo`, {
    headers: { Authorization: `Bearer ${reader}` },
  });
  await res.text();
  return res.status === 200;
}

beforeAll(async () => {
  if (!version) return;
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
  gh = await startIssuer();
  gh.actionsClaims = githubClaims();
  await createOrg(server, 'acme');
  expect(
    (
      await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
        provider: 'github',
        issuer: gh.issuer,
        ownerId: '1001',
        refs: ['refs/heads/main'],
        scopes: ['read', 'write', 'publish'],
      })
    ).status,
  ).toBe(201);
  reader = (await createToken(server, 'acme', ['read'])).token;
  dir = await fixtureDir('action');
  expr = await writeClosureExpr(dir);
});

afterAll(async () => {
  await server?.cleanup();
  await gh?.stop();
});

describe.skipIf(!version)('GitHub Action', () => {
  it('logs in with the job token, pushes what the job builds from the background, drains in the post step; another machine substitutes it', async () => {
    const r = await runner(
      'push',
      { name: 'push', payload: { ref: 'refs/heads/main', repository: { full_name: 'acme-gh/app' } } },
      { server: server.url, org: 'acme' },
    );
    const main = await step('main.mjs', r.env);
    expect(main.code, main.stdout + main.stderr).toBe(0);
    expect(main.stdout).toMatch(/floe: logged in to acme \(read, write, publish\)/);
    expect(main.stdout).toMatch(/pushing every store path this job builds or fetches/);
    const outputs = await keyValues(r.files.output);
    expect(outputs).toMatchObject({ pushing: 'true', substituter: `${server.url}/cache` });
    const exported = await keyValues(r.files.env);
    expect(exported.FLOE_SERVER).toBe(server.url);
    const nixConf = await readFile(path.join(r.home, '.config', 'nix', 'nix.conf'), 'utf8');
    expect(nixConf).toContain(`extra-substituters = ${server.url}/cache`);
    expect(nixConf).toMatch(/extra-trusted-public-keys = \S+/);
    const token = /password (floe_\S+)/.exec(await readFile(path.join(r.home, '.config', 'nix', 'netrc'), 'utf8'))![1]!;
    expect(main.stdout + main.stderr + (await readFile(r.files.env, 'utf8'))).not.toContain(token);

    // The job: builds with Nix while the watcher runs; `floe` is on its PATH.
    const job = await laterStepEnv(r);
    const top = await buildClosure({ ...hostNix, run: (args) => spawnCollect(args, job) }, expr, seed(), '');
    const wrapper = await spawnCollect(['floe', 'watch-store', '--help'], job);
    expect(wrapper.code, wrapper.stderr).toBe(0);

    const post = await step('post.mjs', await postEnv(r));
    expect(post.code, post.stdout + post.stderr).toBe(0);
    expect(post.stdout + post.stderr).toMatch(/\d+ pushed, \d+ skipped .*, 0 failed; 0 left in the queue/);
    const pid = Number((await keyValues(r.files.state)).watcher_pid);
    expect(existsSync(`/proc/${pid}`) && !/\) Z/.test(await readFile(`/proc/${pid}/stat`, 'utf8'))).toBe(false);
    expect(await inCache(top)).toBe(true);

    // Another machine with the configuration the action writes (substituter, key, netrc) and signatures required.
    const other = { ...r.env, XDG_CACHE_HOME: path.join(dir, 'other-machine') };
    const got = await spawnCollect(
      [
        'nix',
        'copy',
        '--option',
        'require-sigs',
        'true',
        '--from',
        `${server.url}/cache`,
        '--to',
        path.join(dir, 'other-store'),
        top,
      ],
      other,
    );
    expect(got.code, got.stderr).toBe(0);
  });

  it('a pull request from a fork neither logs in nor pushes', async () => {
    const payload = {
      pull_request: {
        number: 7,
        head: { ref: 'evil', repo: { full_name: 'mallory/app', fork: true } },
        base: { repo: { full_name: 'acme-gh/app' } },
      },
    };
    const r = await runner('fork', { name: 'pull_request', payload }, { server: server.url });
    const main = await step('main.mjs', r.env);
    expect(main.code, main.stdout + main.stderr).toBe(0);
    expect(main.stdout).toMatch(/::warning::floe: pull request from a fork: not logging in, not pushing/);
    expect(await keyValues(r.files.output)).toMatchObject({ pushing: 'false' });
    expect(await keyValues(r.files.state)).toEqual({});
    expect(existsSync(path.join(r.home, '.config', 'nix', 'netrc'))).toBe(false);
    const job = await laterStepEnv(r);
    const top = await buildClosure({ ...hostNix, run: (args) => spawnCollect(args, job) }, expr, seed(), '');
    const post = await step('post.mjs', await postEnv(r));
    expect(post.code).toBe(0);
    expect(post.stdout).toMatch(/nothing to push/);
    expect(await inCache(top)).toBe(false);
  });

  it('a pull request from a branch of the same repository pushes, even if the watcher was killed before the build', async () => {
    const payload = {
      pull_request: { number: 8, head: { ref: 'feature', repo: { full_name: 'acme-gh/app', fork: false } } },
    };
    const r = await runner('same-repo-pr', { name: 'pull_request', payload }, { server: server.url, push: 'true' });
    const main = await step('main.mjs', r.env);
    expect(main.code, main.stdout + main.stderr).toBe(0);
    expect(await keyValues(r.files.output)).toMatchObject({ pushing: 'true' });
    process.kill(Number((await keyValues(r.files.state)).watcher_pid), 'SIGKILL');
    const job = await laterStepEnv(r);
    const top = await buildClosure({ ...hostNix, run: (args) => spawnCollect(args, job) }, expr, seed(), '');
    const post = await step('post.mjs', await postEnv(r));
    expect(post.code, post.stdout + post.stderr).toBe(0);
    expect(post.stdout + post.stderr).toMatch(/new store path\(s\) since the baseline/);
    expect(await inCache(top)).toBe(true);
  });
  it('publish: true publishes the flake of the checkout on a tag, with its output built and pushed', async () => {
    const checkout = await mkdtemp(path.join(dir, 'checkout-'));
    const tag = seed();
    await writeFile(
      path.join(checkout, 'flake.nix'),
      `{ description = "Published from the action";
  outputs = { self }: { packages.x86_64-linux.default = derivation { name = "action-tool-${tag}"; system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" "echo ${tag} > $out" ]; PATH = "/usr/bin:/bin"; }; };
}\n`,
    );
    for (const args of [
      ['init', '-q'],
      ['add', 'flake.nix'],
      ['commit', '-q', '-m', 'one'],
    ])
      expect((await git(args, checkout)).code).toBe(0);
    const r = await runner(
      'publish',
      { name: 'push', payload: { ref: 'refs/tags/v0.3.0' } },
      {
        server: server.url,
        org: 'acme',
        push: 'false',
        publish: 'true',
        'include-output': 'packages.x86_64-linux.default',
      },
    );
    const main = await step(
      'main.mjs',
      { ...r.env, GITHUB_REF: 'refs/tags/v0.3.0', GITHUB_REF_TYPE: 'tag', GITHUB_REF_NAME: 'v0.3.0' },
      checkout,
    );
    expect(main.code, main.stdout + main.stderr).toBe(0);
    expect(await keyValues(r.files.output)).toMatchObject({ pushing: 'false' });
    const releases = await api<{ releases: Array<{ version: string }> }>(
      server,
      reader,
      'GET',
      '/api/v1/flakes/acme/app/releases',
    );
    expect(releases.body.releases.map((x) => x.version)).toContain('0.3.0');
    const resolved = await spawnCollect(
      ['floe', 'resolve', 'acme/app/0.3#packages.x86_64-linux.default'],
      await laterStepEnv(r),
    );
    expect(resolved.stdout.trim(), resolved.stderr).toMatch(/-action-tool-/);
    expect(await inCache(resolved.stdout.trim())).toBe(true);
    const post = await step('post.mjs', await postEnv(r));
    expect(post.stdout).toMatch(/nothing to push/);
  });
});

function git(args: string[], cwd: string) {
  return spawnCollect(
    ['git', ...args],
    {
      ...process.env,
      GIT_AUTHOR_NAME: 'ci',
      GIT_AUTHOR_EMAIL: 'ci@example.com',
      GIT_COMMITTER_NAME: 'ci',
      GIT_COMMITTER_EMAIL: 'ci@example.com',
    },
    cwd,
  );
}

function spawnCollect(
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(args[0]!, args.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
