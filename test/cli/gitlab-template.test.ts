/**
 * The GitLab CI template (ci/gitlab/floe.gitlab-ci.yml): its before_script and after_script run as
 * a runner would run them (the job's variables, its id_token signed by a local issuer with
 * GitLab's claims, a shell), the job builds with real Nix 2.8 in between, and another machine
 * substitutes the result with the Nix configuration the template wrote. A merge request from a
 * fork neither logs in nor pushes.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, REPO_ROOT, api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { gitlabClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { BASE_NIX_CONFIG, buildClosure, fixtureDir, hostNix, requireNix, writeClosureExpr } from '../helpers/nix.js';

const version = await requireNix(hostNix);
let server: TestServer;
let gl: TestIssuer;
let dir: string;
let expr: string;
let reader: string;
let template: { variables: Record<string, string>; beforeScript: string; afterScript: string };
const seed = () => `g${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** The `.floe` job's variables and its two `- |` script blocks (the file keeps to that shape). */
function parseTemplate(text: string): typeof template {
  const lines = text.split('\n');
  const block = (key: string) => {
    const start = lines.indexOf(`  ${key}:`);
    expect(start, key).toBeGreaterThan(0);
    expect(lines[start + 1]).toBe('    - |');
    const body: string[] = [];
    for (const l of lines.slice(start + 2)) {
      if (l !== '' && !l.startsWith('      ')) break;
      body.push(l.slice(6));
    }
    return body.join('\n');
  };
  const variables: Record<string, string> = {};
  const vStart = lines.indexOf('  variables:');
  for (const l of lines.slice(vStart + 1)) {
    const m = /^ {4}(\w+): "(.*)"$/.exec(l);
    if (!m) break;
    variables[m[1]!] = m[2]!;
  }
  return { variables, beforeScript: block('before_script'), afterScript: block('after_script') };
}

function sh(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // GitLab's shells run scripts with errexit.
    const child = spawn('sh', ['-e', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
}

async function job(tag: string, extra: Record<string, string> = {}): Promise<{ env: NodeJS.ProcessEnv; home: string }> {
  const root = await mkdtemp(path.join(dir, `${tag}-`));
  const home = path.join(root, 'home');
  await mkdir(home, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: home,
    TMPDIR: root,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_CACHE_HOME: path.join(home, '.cache'),
    NIX_CONFIG: BASE_NIX_CONFIG,
    GITLAB_CI: 'true',
    CI_JOB_ID: String(Math.floor(Math.random() * 1e9)),
    CI_PROJECT_ID: '4242',
    CI_PROJECT_DIR: root,
    ...template.variables,
    // What the project's job sets, and the runner's id_token for `aud: $FLOE_SERVER`.
    FLOE_SERVER: server.url,
    FLOE_CLI: `${process.execPath} ${FLOE_BIN}`,
    FLOE_ID_TOKEN: await gl.mint(gitlabClaims(), { audience: server.url }),
    ...extra,
  };
  return { env, home };
}

async function inCache(storePath: string): Promise<boolean> {
  const res = await fetch(`${server.url}/cache/${path.basename(storePath).slice(0, 32)}.narinfo`, {
    headers: { Authorization: `Bearer ${reader}` },
  });
  await res.text();
  return res.status === 200;
}

const nixIn = (env: NodeJS.ProcessEnv) => ({
  ...hostNix,
  run: (args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(args[0]!, args.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    }),
});

beforeAll(async () => {
  template = parseTemplate(await readFile(path.join(REPO_ROOT, 'ci/gitlab/floe.gitlab-ci.yml'), 'utf8'));
  if (!version) return;
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
  gl = await startIssuer({ defaultAudience: server.url });
  await createOrg(server, 'acme');
  expect(
    (
      await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
        provider: 'gitlab',
        issuer: gl.issuer,
        namespaceId: '42',
        scopes: ['read', 'write'],
      })
    ).status,
  ).toBe(201);
  reader = (await createToken(server, 'acme', ['read'])).token;
  dir = await fixtureDir('gitlab');
  expr = await writeClosureExpr(dir);
});

afterAll(async () => {
  await server?.cleanup();
  await gl?.stop();
});

describe('GitLab template', () => {
  it('declares an id_token for the server and defaults that push', async () => {
    const text = await readFile(path.join(REPO_ROOT, 'ci/gitlab/floe.gitlab-ci.yml'), 'utf8');
    expect(text).toMatch(/\n {2}id_tokens:\n {4}FLOE_ID_TOKEN:\n {6}aud: \$FLOE_SERVER\n/);
    expect(template.variables).toMatchObject({ FLOE_PUSH: 'true', FLOE_DRAIN_TIMEOUT: '10m' });
  });
});

describe.skipIf(!version)('GitLab template with real Nix', () => {
  it('logs in with the id_token, pushes what the job builds, and another machine substitutes it', async () => {
    const { env, home } = await job('push');
    const before = await sh(template.beforeScript, env);
    expect(before.code, before.out).toBe(0);
    expect(before.out).toMatch(/logged in to acme/);
    expect(before.out).toMatch(/pushing every store path/);
    const top = await buildClosure(nixIn(env), expr, seed(), '');
    const after = await sh(template.afterScript, env);
    expect(after.code, after.out).toBe(0);
    expect(after.out).toMatch(/\d+ pushed, \d+ skipped .*, 0 failed; 0 left in the queue/);
    expect(await inCache(top)).toBe(true);
    const token = /password (floe_\S+)/.exec(await readFile(path.join(home, '.config', 'nix', 'netrc'), 'utf8'))![1]!;
    expect(before.out + after.out).not.toContain(token);
    const got = await nixIn({ ...env, XDG_CACHE_HOME: path.join(dir, 'other-machine') }).run([
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
    ]);
    expect(got.code, got.stderr).toBe(0);
  });

  it('a merge request from a fork neither logs in nor pushes', async () => {
    const { env, home } = await job('fork', { CI_MERGE_REQUEST_SOURCE_PROJECT_ID: '6666', CI_MERGE_REQUEST_IID: '3' });
    const before = await sh(template.beforeScript, env);
    expect(before.code, before.out).toBe(0);
    expect(before.out).toMatch(/merge request from a fork: not logging in, not pushing/);
    expect(existsSync(path.join(home, '.config', 'nix', 'netrc'))).toBe(false);
    const top = await buildClosure(nixIn(env), expr, seed(), '');
    const after = await sh(template.afterScript, env);
    expect(after.out).toMatch(/nothing to push/);
    expect(await inCache(top)).toBe(false);
  });

  it('a job whose id_token the server refuses fails in before_script', async () => {
    const { env } = await job('refused', {
      FLOE_ID_TOKEN: await gl.mint(gitlabClaims({ namespace_id: '999', namespace_path: 'other' }), {
        audience: server.url,
      }),
    });
    const before = await sh(template.beforeScript, env);
    expect(before.code).not.toBe(0);
    expect(before.out).toMatch(/login failed/);
  });
});
