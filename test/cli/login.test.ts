/**
 * `floe login` end to end: CI identities from local issuers become Floe tokens in a netrc, and the
 * whole chain works with real Nix: GitHub Actions identity -> Floe token -> netrc -> nix copy,
 * then a GitLab pipeline identity substitutes what was pushed, with no static secret anywhere.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFloe } from '../helpers/floe-cli.js';
import { api, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { githubClaims, gitlabClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { buildClosure, fixtureDir, hostNix, requireNix, writeClosureExpr, copyFromCacheArgs } from '../helpers/nix.js';

const nixVersion = await requireNix(hostNix);
let server: TestServer;
let gh: TestIssuer;
let gl: TestIssuer;
let home: string;

const floe = (args: string[], env: Record<string, string | undefined> = {}) =>
  runFloe(args, { env: { FLOE_SERVER: server.url, FLOE_TOKEN: undefined, XDG_CONFIG_HOME: home, ...env } });

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
  gh = await startIssuer();
  gl = await startIssuer({ defaultAudience: server.url });
  gh.actionsClaims = githubClaims();
  await createOrg(server, 'acme');
  expect(
    (
      await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
        provider: 'github',
        issuer: gh.issuer,
        ownerId: '1001',
        refs: ['refs/heads/main'],
        scopes: ['read', 'write'],
      })
    ).status,
  ).toBe(201);
  expect(
    (
      await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
        provider: 'gitlab',
        issuer: gl.issuer,
        namespaceId: '42',
        scopes: ['read'],
      })
    ).status,
  ).toBe(201);
  home = await mkdtemp(path.join(os.tmpdir(), 'floe-home-'));
});

afterAll(async () => {
  await server?.cleanup();
  await gh?.stop();
  await gl?.stop();
});

describe('floe login', () => {
  it('github-action: asks the runner for a token with our audience, writes netrc (0600) and nix.conf', async () => {
    await writeFile(path.join(home, 'keep-netrc'), '');
    const netrc = path.join(home, 'nix', 'netrc');
    const r = await floe(['login', 'github-action'], {
      ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/logged in to acme as github:acme-gh\/app@2002:refs\/heads\/main \(read, write\)/);
    expect((await stat(netrc)).mode & 0o777).toBe(0o600);
    expect(await readFile(netrc, 'utf8')).toMatch(/^machine 127\.0\.0\.1 login floe password floe_\S+\n$/);
    const conf = await readFile(path.join(home, 'nix', 'nix.conf'), 'utf8');
    expect(conf).toContain(`extra-substituters = ${server.url}/cache`);
    expect(conf).toContain(`netrc-file = ${netrc}`);
    // The token never reaches stdout or the server log.
    const token = /password (\S+)/.exec(await readFile(netrc, 'utf8'))![1]!;
    expect(r.stdout + r.stderr).not.toContain(token);
    expect(server.logs()).not.toContain(token.slice(5, 60));
  });

  it('a second login replaces only its own entries', async () => {
    const netrc = path.join(home, 'nix', 'netrc');
    await writeFile(netrc, `machine github.com login me password keepme\n${await readFile(netrc, 'utf8')}`);
    const r = await floe(['login', 'github-action'], {
      ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
    });
    expect(r.code, r.stderr).toBe(0);
    const text = await readFile(netrc, 'utf8');
    expect(text).toContain('password keepme');
    expect(text.match(/machine 127\.0\.0\.1/g)!.length).toBe(1);
    expect((await readFile(path.join(home, 'nix', 'nix.conf'), 'utf8')).match(/>>> floe/g)!.length).toBe(1);
  });

  it('github-action --refresh keeps the netrc fresh for long jobs', async () => {
    const refreshHome = await mkdtemp(path.join(os.tmpdir(), 'floe-refresh-'));
    // A 60 s token refreshed when less than 58 s remain: a new token about every 2 s.
    expect(
      (
        await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
          provider: 'github',
          issuer: gh.issuer,
          ownerId: '1001',
          refs: ['refs/heads/long'],
          scopes: ['read'],
          ttlSeconds: 60,
        })
      ).status,
    ).toBe(201);
    const env = {
      XDG_CONFIG_HOME: refreshHome,
      ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
    };
    gh.actionsClaims = githubClaims({ ref: 'refs/heads/long' });
    const r = await floe(['login', 'github-action', '--refresh', '--refresh-before', '58s', '--org', 'acme'], env);
    gh.actionsClaims = githubClaims();
    expect(r.code, r.stderr).toBe(0);
    const pid = Number(/pid (\d+)/.exec(r.stderr)![1]);
    try {
      const netrc = path.join(refreshHome, 'nix', 'netrc');
      const first = await readFile(netrc, 'utf8');
      let current = first;
      for (let i = 0; i < 50 && current === first; i++) {
        await new Promise((res) => setTimeout(res, 200));
        current = await readFile(netrc, 'utf8');
      }
      expect(current).not.toBe(first);
      const token = /password (\S+)/.exec(current)![1]!;
      expect((await api(server, token, 'GET', '/api/v1/auth/whoami')).status).toBe(200);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });

  it('explains what is missing outside CI, and refuses bad tokens', async () => {
    const r = await floe(['login', 'github-action'], {
      ACTIONS_ID_TOKEN_REQUEST_URL: undefined,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: undefined,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/id-token: write/);
    const g = await floe(['login', 'gitlab-pipeline'], { FLOE_ID_TOKEN: undefined });
    expect(g.stderr).toMatch(/\$FLOE_ID_TOKEN is not set/);
    const bad = await floe(['login', '--token', 'floe_bogus', '--print']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/401/);
    const pr = await floe(['login', 'gitlab-pipeline', '--print'], {
      FLOE_ID_TOKEN: await gl.mint(gitlabClaims({ ref_protected: 'false' })),
    });
    expect(pr.code).not.toBe(0);
    expect(pr.stderr).toMatch(/403.*protected refs/);
  });

  it.skipIf(!nixVersion)(
    'the whole chain with real Nix: CI identity -> Floe token -> netrc -> nix copy -> substitution',
    async () => {
      const dir = await fixtureDir('login-chain');
      const out = await buildClosure(hostNix, await writeClosureExpr(dir), `chain${Date.now()}`, path.join(dir, 'm0'));
      // The pushing CI job (GitHub Actions).
      const ciHome = path.join(dir, 'ci-home');
      const push = await floe(['login', 'github-action', '--json'], {
        XDG_CONFIG_HOME: ciHome,
        ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
      });
      expect(push.code, push.stderr).toBe(0);
      const pushed = await hostNix.run(
        ['nix', 'copy', '--option', 'netrc-file', JSON.parse(push.stdout).netrc, '--to', `${server.url}/cache`, out],
        { cacheHome: path.join(dir, 'm1') },
      );
      expect(pushed.code, pushed.stderr).toBe(0);
      // A consuming pipeline (GitLab, read-only), using exactly the nix.conf lines login wrote.
      const consumerHome = path.join(dir, 'consumer-home');
      const pull = await floe(['login', 'gitlab-pipeline', '--json'], {
        XDG_CONFIG_HOME: consumerHome,
        FLOE_ID_TOKEN: await gl.mint(gitlabClaims()),
      });
      expect(pull.code, pull.stderr).toBe(0);
      const conf = await readFile(JSON.parse(pull.stdout).nixConf, 'utf8');
      const setting = (name: string) => new RegExp(`^${name} = (.*)$`, 'm').exec(conf)![1]!;
      const got = await hostNix.run(
        copyFromCacheArgs(
          {
            key: setting('extra-trusted-public-keys'),
            netrc: setting('netrc-file'),
            from: setting('extra-substituters'),
            to: path.join(dir, 'store'),
          },
          out,
        ),
        { cacheHome: path.join(dir, 'm2') },
      );
      expect(got.code, got.stderr).toBe(0);
      // The read-only identity cannot push.
      const fresh = await buildClosure(
        hostNix,
        await writeClosureExpr(dir),
        `chain-ro${Date.now()}`,
        path.join(dir, 'm4'),
      );
      const refused = await hostNix.run(
        ['nix', 'copy', '--option', 'netrc-file', setting('netrc-file'), '--to', `${server.url}/cache`, fresh],
        { cacheHome: path.join(dir, 'm5') },
      );
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/HTTP error|\b403\b/);
    },
  );
});

describe('floe login remembers, joins and undoes', () => {
  it('with no way to log in shows the choices and fails', async () => {
    const r = await floe(['login']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/floe login github-action/);
    expect(r.stderr).toMatch(/--token -/);
  });

  it('--token - and --token-file save a token; later commands need no FLOE_SERVER', async () => {
    const cfgHome = await mkdtemp(path.join(os.tmpdir(), 'floe-remember-'));
    const { token } = (
      await api<{ token: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
        org: 'acme',
        scopes: ['read'],
        ttl: '1h',
      })
    ).body;
    const r = await runFloe(['login', '--server', server.url, '--token', '-', '--no-nix-conf'], {
      input: `${token}\n`,
      env: { XDG_CONFIG_HOME: cfgHome, FLOE_SERVER: undefined, FLOE_TOKEN: undefined },
    });
    expect(r.code, r.stderr).toBe(0);
    const config = path.join(cfgHome, 'floe', 'config.json');
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(config, 'utf8'))).toMatchObject({ server: server.url, org: 'acme' });
    expect(await readFile(config, 'utf8')).not.toContain(token);
    const status = await runFloe(['status'], {
      env: { XDG_CONFIG_HOME: cfgHome, FLOE_SERVER: undefined, FLOE_TOKEN: undefined },
    });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/in org acme on http:\/\/127\.0\.0\.1/);
    // The remembered org stands in for --org.
    const pins = await runFloe(['pin', 'list', '--json'], {
      env: { XDG_CONFIG_HOME: cfgHome, FLOE_SERVER: undefined, FLOE_TOKEN: server.adminToken },
    });
    expect(pins.code, pins.stderr).toBe(0);
    const file = path.join(cfgHome, 'tok');
    await writeFile(file, token);
    const again = await runFloe(['login', '--token-file', file, '--no-nix-conf'], {
      env: { XDG_CONFIG_HOME: cfgHome, FLOE_SERVER: undefined, FLOE_TOKEN: undefined },
    });
    expect(again.code, again.stderr).toBe(0);
  });

  it("--fh writes the token where fh reads it (fh's own token moved aside), and logout puts fh back", async () => {
    const h = await mkdtemp(path.join(os.tmpdir(), 'floe-fh-'));
    const env = {
      XDG_CONFIG_HOME: h,
      ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
    };
    const auth = path.join(h, 'flakehub', 'auth');
    await mkdir(path.dirname(auth), { recursive: true });
    const flakehubToken = 'flakehub1_a-token-of-flakehub.com\n';
    await writeFile(auth, flakehubToken, { mode: 0o600 });
    const r = await floe(['login', 'github-action', '--fh', '--no-nix-conf'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(
      `FH_API_ADDR=${server.url} FH_FRONTEND_ADDR=${server.url} FH_CACHE_ADDR=${server.url}/cache`,
    );
    expect((await stat(auth)).mode & 0o777).toBe(0o600);
    // fh reads the file trimmed and sends it as a bearer token: its `fh status` call is answered.
    const token = (await readFile(auth, 'utf8')).trim();
    expect(token).toMatch(/^floe_/);
    const netrc = await readFile(path.join(h, 'nix', 'netrc'), 'utf8');
    expect(netrc).toContain(`password ${token}`);
    const status = await fetch(`${server.url}/cli/status`, {
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json', 'User-Agent': 'fh/0.1.22' },
    });
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ gh_name: expect.any(String), expires_at: expect.any(Number) });
    // A second login rewrites only floe's token: fh's own stays aside, never overwritten by ours.
    expect((await floe(['login', 'github-action', '--fh', '--no-nix-conf'], env)).code).toBe(0);
    expect(await readFile(`${auth}.before-floe`, 'utf8')).toBe(flakehubToken);
    const out = await floe(['logout'], env);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toContain(`restored ${auth}`);
    expect(await readFile(auth, 'utf8')).toBe(flakehubToken);
    expect(existsSync(`${auth}.before-floe`)).toBe(false);
    // With no fh token before, logout deletes the file login made.
    await unlink(auth);
    expect((await floe(['login', 'github-action', '--fh', '--no-nix-conf'], env)).code).toBe(0);
    expect(existsSync(auth)).toBe(true);
    expect((await floe(['logout'], env)).code).toBe(0);
    expect(existsSync(auth)).toBe(false);
  });

  it('joins an existing netrc-file setting, and logout removes exactly what login added and revokes the token', async () => {
    const h = await mkdtemp(path.join(os.tmpdir(), 'floe-join-'));
    const company = path.join(h, 'company-netrc');
    const companyText = 'machine git.example.com login me password company-secret\n';
    await writeFile(company, companyText, { mode: 0o644 });
    const confFile = path.join(h, 'nix', 'nix.conf');
    await mkdir(path.dirname(confFile), { recursive: true });
    const userConf = `substituters = https://cache.example.com\nnetrc-file = ${company}\n`;
    await writeFile(confFile, userConf);
    const env = {
      XDG_CONFIG_HOME: h,
      ACTIONS_ID_TOKEN_REQUEST_URL: gh.actionsRequestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: gh.actionsRequestToken,
    };
    const inode = (await stat(company)).ino;
    const r = await floe(['login', 'github-action', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).netrc).toBe(company);
    const netrc = await readFile(company, 'utf8');
    expect(netrc).toContain('password company-secret');
    const token = /machine 127\.0\.0\.1 login floe password (\S+)/.exec(netrc)![1]!;
    // Written atomically (a new inode, not rewritten in place), private.
    expect((await stat(company)).ino).not.toBe(inode);
    expect((await stat(company)).mode & 0o777).toBe(0o600);
    const conf = await readFile(confFile, 'utf8');
    expect(conf.match(/netrc-file/g)!.length).toBe(1); // the setting stays the company's
    expect(conf).toContain(`extra-substituters = ${server.url}/cache`);
    expect(existsSync(path.join(h, 'nix', 'netrc'))).toBe(false);
    expect((await api(server, token, 'GET', '/api/v1/auth/whoami')).status).toBe(200);

    const out = await floe(['logout'], env);
    expect(out.code, out.stderr).toBe(0);
    expect(await readFile(company, 'utf8')).toBe(companyText);
    expect(await readFile(confFile, 'utf8')).toBe(userConf);
    expect(existsSync(path.join(h, 'floe', 'config.json'))).toBe(false);
    expect((await api(server, token, 'GET', '/api/v1/auth/whoami')).status).toBe(401);
  });
});
