/**
 * Long-lived machines keep working: a login that can be repeated renews itself before its token
 * expires. `floe watch-store` after `floe login github-action` (the job's OIDC endpoint served by
 * the local issuer) keeps pushing what real Nix builds after the first token has expired, and the
 * netrc then holds the new token; `floe login aws --refresh` (SigV4 checked by a loopback STS)
 * rewrites the netrc with fresh tokens in the background. Tokens live 4-5 s here (the server's
 * minimum is 1 s), so the renewals happen within the test. A token revoked long before its renewal
 * is due makes the next push fail with 401, which renews the login at once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { githubClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { startFakeSts, type FakeSts } from '../helpers/fake-sts.js';
import { BASE_NIX_CONFIG, buildClosure, fixtureDir, hostNix, requireNix, writeClosureExpr } from '../helpers/nix.js';

const version = await requireNix(hostNix);
const CI = {
  accessKeyId: 'AKIAEXAMPLECI',
  secretAccessKey: 'ci-secret',
  arn: 'arn:aws:sts::111122223333:assumed-role/ci-deploy/m-1',
  account: '111122223333',
  userId: 'AROAEXAMPLE:m-1',
};
let server: TestServer;
let gh: TestIssuer;
let sts: FakeSts;
let dir: string;
let expr: string;
let reader: string;
const seed = () => `r${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A machine with its own config dir and no FLOE_TOKEN: its token is the login's, in the netrc. */
async function machine(tag: string, extra: Record<string, string>): Promise<NodeJS.ProcessEnv> {
  const home = await mkdtemp(path.join(dir, `${tag}-`));
  const { FLOE_TOKEN: _dropped, ...env } = process.env;
  return {
    ...env,
    NIX_CONFIG: BASE_NIX_CONFIG,
    XDG_CONFIG_HOME: path.join(home, 'config'),
    XDG_CACHE_HOME: path.join(dir, 'build'),
    FLOE_SERVER: server.url,
    ...extra,
  };
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [FLOE_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function inCache(storePath: string): Promise<boolean> {
  const res = await fetch(`${server.url}/cache/${path.basename(storePath).slice(0, 32)}.narinfo`, {
    headers: { Authorization: `Bearer ${reader}` },
  });
  await res.text();
  return res.status === 200;
}

const netrcToken = async (file: string) =>
  /machine 127\.0\.0\.1 login floe password (\S+)/.exec(await readFile(file, 'utf8'))?.[1];
const accepted = async (token: string) => {
  const r = await api<{ kind: string }>(server, token, 'GET', '/api/v1/auth/whoami');
  return r.status === 200 && r.body.kind === 'token';
};

beforeAll(async () => {
  if (!version) return;
  sts = await startFakeSts([CI]);
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1', FLOE_TEST_AWS_STS_ENDPOINT: sts.endpoint } });
  gh = await startIssuer();
  gh.actionsClaims = githubClaims();
  await createOrg(server, 'acme');
  const trust = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'github',
    issuer: gh.issuer,
    ownerId: '1001',
    refs: ['refs/heads/main'],
    scopes: ['read', 'write'],
  });
  expect(trust.status).toBe(201);
  const aws = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'aws',
    accountId: '111122223333',
    arnPatterns: ['arn:aws:iam::111122223333:role/ci-*'],
    scopes: ['read', 'write'],
  });
  expect(aws.status).toBe(201);
  reader = (await createToken(server, 'acme', ['read'])).token;
  dir = await fixtureDir('refresh');
  expr = await writeClosureExpr(dir);
});

afterAll(async () => {
  await server?.cleanup();
  await gh?.stop();
  await sts?.stop();
});

describe.skipIf(!version)('logins that renew themselves', () => {
  it('watch-store renews a github-action login before it expires and keeps pushing with the new token', async () => {
    const env = await machine('gh', {
      ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
    });
    const login = await run(['login', 'github-action', '--org', 'acme', '--ttl', '5s', '--fh', '--json'], env);
    expect(login.code, login.stderr).toBe(0);
    const summary = JSON.parse(login.stdout) as { netrc: string; expiresAt: string };
    const first = (await netrcToken(summary.netrc))!;
    expect(await accepted(first)).toBe(true);
    const watcher: ChildProcess = spawn(
      process.execPath,
      [FLOE_BIN, 'watch-store', '--queue', path.join(dir, 'gh-queue.sqlite'), '--interval', '200ms'],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    watcher.stderr!.on('data', (d) => (log += d));
    try {
      await until('the watcher to start', () => /watching /.test(log));
      expect(log).toMatch(/the github-action login is renewed before it expires/);
      const before = await buildClosure(hostNix, expr, seed(), path.join(dir, 'build'));
      await until('the first path in the cache', () => inCache(before));
      await until('the first token to expire', () => Date.now() > Date.parse(summary.expiresAt) + 1000);
      expect(await accepted(first)).toBe(false);
      const after = await buildClosure(hostNix, expr, seed(), path.join(dir, 'build'));
      await until('a path built after the first token expired in the cache', () => inCache(after));
      expect(log).toMatch(/renewed the github-action login, valid until/);
      const now = (await netrcToken(summary.netrc))!;
      expect(now).not.toBe(first);
      expect(await accepted(now)).toBe(true);
      // fh's auth file (`--fh`) is renewed with the netrc. Renewals come every few seconds (a 5 s
      // token), each writing the netrc and then fh's file: the two are read together until they
      // agree, which they do between renewals.
      const fhAuth = path.join(env.XDG_CONFIG_HOME!, 'flakehub', 'auth');
      await until('fh’s auth file to hold the netrc’s token', async () => {
        const [netrc, fh] = [await netrcToken(summary.netrc), (await readFile(fhAuth, 'utf8')).trim()];
        return fh === netrc && netrc !== first;
      });
      // A push that raced the expiry on a loaded machine is retried after the renewal (queued, not
      // lost: both paths are in the cache above); a renewal itself never fails here.
      expect(log).not.toMatch(/could not renew/);
    } finally {
      watcher.kill('SIGTERM');
      await new Promise((r) => watcher.once('close', r));
    }
  });

  it('a push answered 401 (the token revoked long before its renewal) renews at once and retries', async () => {
    const env = await machine('gh401', {
      ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
    });
    // An hour's token: its scheduled renewal is 50 minutes away, far beyond this test.
    const login = await run(['login', 'github-action', '--org', 'acme', '--ttl', '1h', '--json'], env);
    expect(login.code, login.stderr).toBe(0);
    const netrc = (JSON.parse(login.stdout) as { netrc: string }).netrc;
    const first = (await netrcToken(netrc))!;
    const watcher: ChildProcess = spawn(
      process.execPath,
      [FLOE_BIN, 'watch-store', '--queue', path.join(dir, 'gh401-queue.sqlite'), '--interval', '200ms'],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    watcher.stderr!.on('data', (d) => (log += d));
    try {
      await until('the watcher to start', () => /watching /.test(log));
      const before = await buildClosure(hostNix, expr, seed(), path.join(dir, 'build'));
      await until('the first path in the cache', () => inCache(before));
      expect(log).not.toMatch(/renew(ed|ing) the github-action login/);
      // The token ends itself, as `floe logout` or an admin's revoke would: the next push gets 401.
      expect((await api(server, first, 'POST', '/api/v1/auth/logout')).status).toBe(200);
      expect(await accepted(first)).toBe(false);
      const after = await buildClosure(hostNix, expr, seed(), path.join(dir, 'build'));
      await until('a path built after the revocation in the cache', () => inCache(after), 30_000);
      expect(log).toMatch(/the server refused the token \(401\); renewing the github-action login now/);
      expect(log).toMatch(/renewed the github-action login, valid until/);
      // One renewal for the burst of 401s (every upload of the closure failed at once).
      expect(log.match(/renewing the github-action login/g)).toHaveLength(1);
      const now = (await netrcToken(netrc))!;
      expect(now).not.toBe(first);
      expect(await accepted(now)).toBe(true);
      expect(log).not.toMatch(/could not renew/);
    } finally {
      watcher.kill('SIGTERM');
      await new Promise((r) => watcher.once('close', r));
    }
  });

  it('login aws --refresh rewrites the netrc with fresh tokens from new signed STS requests', async () => {
    const env = await machine('aws', {
      AWS_ACCESS_KEY_ID: CI.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CI.secretAccessKey,
      AWS_ENDPOINT_URL_STS: sts.endpoint,
      AWS_REGION: 'us-east-1',
    });
    const stsBefore = sts.requests;
    const login = await run(['login', 'aws', '--ttl', '4s', '--refresh', '--json'], env);
    expect(login.code, login.stderr).toBe(0);
    const pid = Number(/pid (\d+)/.exec(login.stderr)![1]);
    try {
      const netrc = (JSON.parse(login.stdout) as { netrc: string }).netrc;
      const first = (await netrcToken(netrc))!;
      const seen = new Set([first]);
      // Two renewals: the loop goes on after the first.
      await until(
        'two renewed tokens',
        async () => {
          seen.add((await netrcToken(netrc)) ?? first);
          return seen.size >= 3;
        },
        30_000,
      );
      const latest = (await netrcToken(netrc))!;
      expect(await accepted(latest)).toBe(true);
      expect(sts.requests - stsBefore).toBeGreaterThanOrEqual(3);
      const config = JSON.parse(await readFile(path.join(env.XDG_CONFIG_HOME!, 'floe', 'config.json'), 'utf8')) as {
        login?: { method: string; ttl?: string };
      };
      expect(config.login).toMatchObject({ method: 'aws', ttl: '4s' });
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });
});
