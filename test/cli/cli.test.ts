/** The real `floe` binary against a real server: the stable CLI contract scripts rely on. */
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFloe } from '../helpers/floe-cli.js';
import { createToken, startFloe, type TestServer } from '../helpers/server.js';

let server: TestServer;

const floe = (args: string[], env: Record<string, string | undefined> = {}) =>
  runFloe(args, { env: { FLOE_SERVER: server.url, FLOE_TOKEN: server.adminToken, ...env } });

beforeAll(async () => {
  server = await startFloe();
});
afterAll(async () => {
  await server?.cleanup();
});

describe('floe CLI', () => {
  it('first start writes the admin token with mode 0600 and says where it is', async () => {
    const s = await stat(path.join(server.dataDir, 'admin-token'));
    expect(s.mode & 0o777).toBe(0o600);
    expect(server.logs()).toContain(path.join(server.dataDir, 'admin-token'));
    expect(server.adminToken).toMatch(/^floe_ey/);
  });

  it('creates orgs, slices and tokens; the token is alone on stdout', async () => {
    expect((await floe(['org', 'create', 'acme'])).code).toBe(0);
    const created = await floe(['slice', 'create', 'acme', 'ci', '--json']);
    expect(JSON.parse(created.stdout)).toMatchObject({ public: false, url: `${server.url}/cache/acme/ci` });
    const tok = await floe([
      'token',
      'create',
      '--org',
      'acme',
      '--scope',
      'read,write',
      '--slice',
      'ci',
      '--ttl',
      '1h',
    ]);
    expect(tok.code).toBe(0);
    expect(tok.stdout).toMatch(/^floe_[A-Za-z0-9_.-]+\n$/);
    const res = await fetch(`${server.url}/cache/acme/ci/nix-cache-info`, {
      headers: { Authorization: `Bearer ${tok.stdout.trim()}` },
    });
    expect(res.status).toBe(200);
  });

  it("configures the org's view, link sources, follows and keys", async () => {
    expect((await floe(['slice', 'set', 'acme', 'ci', '--in-view', '--priority', '7'])).stdout).toMatch(
      /acme\/ci: private, in the org's view \(priority 7\)/,
    );
    expect((await floe(['slice', 'trust', 'acme', 'default', '--from', 'ci'])).code).toBe(0);
    expect((await floe(['org', 'create', 'partner'])).code).toBe(0);
    expect((await floe(['slice', 'create', 'partner', 'oss', '--public'])).code).toBe(0);
    expect((await floe(['follow', 'add', 'acme', 'partner/oss'])).stdout).toMatch(/acme follows partner\/oss/);
    const sources = (await floe(['slice', 'sources', 'acme'])).stdout;
    expect(sources).toMatch(/acme\/default\n {2}acme\/ci \(priority 7\)\n {2}partner\/oss \(followed, priority 100\)/);
    expect(sources).toMatch(/acme\/default takes references from: ci/);
    // An acme admin cannot follow (or learn about) a private slice of another org.
    const acmeAdmin = (await createToken(server, 'acme', ['admin'])).token;
    const bad = await floe(['follow', 'add', 'acme', 'partner/default'], { FLOE_TOKEN: acmeAdmin });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/no slice partner\/default that you may read/);
    const rotated = await floe(['keys', 'rotate', '--org', 'acme']);
    expect(rotated.stdout).toMatch(/new signing key 127\.0\.0\.1-acme-2 for acme/);
    const listed = (await floe(['keys', 'list', '--org', 'acme'])).stdout;
    expect(listed).toMatch(/^active {3}127\.0\.0\.1-acme-2:/m);
    expect(listed).toMatch(/^previous 127\.0\.0\.1-acme-1:/m);
    expect((await floe(['keys', 'retire', '127.0.0.1-acme-1', '--org', 'acme'])).stdout).toMatch(
      /retired 127\.0\.0\.1-acme-1/,
    );
    const active = await floe(['keys', 'retire', '127.0.0.1-acme-2', '--org', 'acme']);
    expect(active.stderr).toMatch(/rotate first/);
    expect((await floe(['follow', 'remove', 'acme', 'partner/oss'])).code).toBe(0);
  });

  it('revokes a token by the id from --json', async () => {
    const json = JSON.parse((await floe(['token', 'create', '--org', 'acme', '--scope', 'read', '--json'])).stdout);
    expect(json).toMatchObject({ org: 'acme', scopes: ['read'] });
    expect(
      (await fetch(`${server.url}/cache/nix-cache-info`, { headers: { Authorization: `Bearer ${json.token}` } }))
        .status,
    ).toBe(200);
    expect((await floe(['token', 'revoke', json.id])).code).toBe(0);
    // 400, not 401, on /cache reads: Nix would take a 401 for "absent" and rebuild silently.
    expect(
      (await fetch(`${server.url}/cache/nix-cache-info`, { headers: { Authorization: `Bearer ${json.token}` } }))
        .status,
    ).toBe(400);
  });

  it('prints the nix.conf lines for the cache', async () => {
    const info = await floe(['cache', 'info', '--org', 'acme'], { FLOE_TOKEN: undefined });
    const key = (await (await fetch(`${server.url}/.well-known/nix-cache-key?org=acme`)).text()).trim();
    expect(key).toMatch(/^127\.0\.0\.1-acme-\d+:/);
    expect(info.stdout).toBe(`extra-substituters = ${server.url}/cache\nextra-trusted-public-keys = ${key}\n`);
    // A token gets exactly the keys of its view: its org's.
    const read = (await createToken(server, 'acme', ['read'])).token;
    expect((await floe(['cache', 'info'], { FLOE_TOKEN: read })).stdout).toBe(info.stdout);
    // Without a token there is nothing to trust yet, and it says so.
    expect((await floe(['cache', 'info'], { FLOE_TOKEN: undefined })).stdout).toMatch(/no trusted keys/);
  });

  it('cache use writes the substituter and key into nix.conf, once', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'floe-use-'));
    const conf = path.join(dir, 'nix.conf');
    for (let i = 0; i < 2; i++)
      expect((await floe(['cache', 'use', '--org', 'acme', '--nix-conf', conf])).code).toBe(0);
    const text = await readFile(conf, 'utf8');
    expect(text.match(/extra-substituters = /g)!.length).toBe(1);
    expect(text).toContain(`extra-substituters = ${server.url}/cache`);
  });

  it('fails with a message naming the problem', async () => {
    const noServer = await floe(['org', 'create', 'x'], { FLOE_SERVER: '' });
    expect(noServer.code).not.toBe(0);
    expect(noServer.stderr).toMatch(/--server URL or set FLOE_SERVER/);
    const badScope = await floe(['token', 'create', '--org', 'acme', '--scope', 'root']);
    expect(badScope.code).not.toBe(0);
    expect(badScope.stderr).toMatch(/unknown scope root/);
    const noOrg = await floe(['token', 'create', '--org', 'nope']);
    expect(noOrg.code).not.toBe(0);
    expect(noOrg.stderr).toMatch(/404|nope/);
    const notAdmin = await floe(['org', 'create', 'y'], { FLOE_TOKEN: 'floe_nonsense' });
    expect(notAdmin.code).not.toBe(0);
    expect(notAdmin.stderr).toMatch(/401/);
    const dup = await floe(['org', 'create', 'acme']);
    expect(dup.stderr).toMatch(/already exists/);
    const badName = await floe(['org', 'create', 'Bad Name']);
    expect(badName.stderr).toMatch(/org name/);
    const unreachable = await floe(['cache', 'info'], { FLOE_SERVER: 'http://127.0.0.1:1' });
    expect(unreachable.stderr).toMatch(/cannot reach/);
  });

  it('--org everywhere (the positional org still works), slice list, trust add from flags, did-you-mean, default subjects', async () => {
    expect((await floe(['slice', 'create', 'web', '--org', 'acme', '--in-view'])).code).toBe(0);
    const listed = await floe(['slice', 'list', '--org', 'acme', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'web', inView: true, url: `${server.url}/cache/acme/web` }),
      ]),
    );
    expect((await floe(['slice', 'list', 'acme'])).stdout).toMatch(/^web\tprivate\tin view \(priority 100\)/m);
    const conflict = await floe(['slice', 'set', 'partner', 'web', '--org', 'acme', '--priority', '3']);
    expect(conflict.code).not.toBe(0);
    expect(conflict.stderr).toMatch(/expected --org <org> <slice>/);
    const trust = await floe([
      'trust',
      'add',
      '--org',
      'acme',
      '--provider',
      'gitlab',
      '--namespace-id',
      '77',
      '--ref',
      'refs/heads/main',
      '--scope',
      'read',
    ]);
    expect(trust.code, trust.stderr).toBe(0);
    expect(trust.stdout).toMatch(/added trust \S+: tokens from https:\/\/gitlab\.com/);
    expect(JSON.parse((await floe(['trust', 'list', '--org', 'acme'])).stdout)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ provider: 'gitlab', namespaceId: '77', refs: ['refs/heads/main'] }),
      ]),
    );
    const missingFlag = await floe(['trust', 'add', '--org', 'acme', '--provider', 'github']);
    expect(missingFlag.stderr).toMatch(/--owner-id/);
    // The server admin may know every org; an org's token only its own.
    const typo = await floe(['usage', '--org', 'acmee']);
    expect(typo.stderr).toMatch(/no org named "acmee" \(did you mean "acme"\?\)/);
    const acmeAdmin = (await createToken(server, 'acme', ['admin'])).token;
    const ownTypo = await floe(['usage', 'acm'], { FLOE_TOKEN: acmeAdmin });
    expect(ownTypo.stderr).toMatch(/did you mean "acme", your token's org\?/);
    const foreign = await floe(['usage', 'partnr'], { FLOE_TOKEN: acmeAdmin });
    expect(foreign.stderr).not.toMatch(/did you mean/);
    const minted = JSON.parse(
      (await floe(['token', 'create', '--org', 'acme', '--scope', 'read,write', '--slice', 'ci', '--json'])).stdout,
    ) as { id: string };
    const rows = JSON.parse((await floe(['token', 'list', '--org', 'acme', '--json'])).stdout) as Array<{
      id: string;
      subject: string;
    }>;
    expect(rows.find((r) => r.id === minted.id)!.subject).toBe('created-by:admin for read+write on ci');
  });

  it('prints shell completions that ask the binary itself', async () => {
    for (const shell of ['bash', 'zsh', 'fish']) {
      const r = await floe(['completion', shell]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('floe __complete');
    }
    expect((await floe(['__complete', 'sl'])).stdout).toBe('slice\n');
    expect((await floe(['__complete', 'slice', ''])).stdout.split('\n')).toEqual(
      expect.arrayContaining(['create', 'list', 'set', 'sources']),
    );
    expect((await floe(['__complete', 'token', 'create', '--sc'])).stdout).toBe('--scope\n');
    expect((await floe(['completion', 'tcsh'])).code).not.toBe(0);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'cache use --system writes a managed include for the nix-daemon and keeps the login netrc-file line',
    async () => {
      const etc = await mkdtemp(path.join(os.tmpdir(), 'floe-etc-'));
      await writeFile(path.join(etc, 'nix.conf'), 'trusted-users = root\n');
      const include = path.join(etc, 'floe-127.0.0.1.conf');
      await writeFile(include, `old\nnetrc-file = ${etc}/netrc\n`);
      const r = await floe(['cache', 'use', '--system', '--org', 'acme'], { NIX_CONF_DIR: etc });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/restart the nix-daemon/);
      const text = await readFile(include, 'utf8');
      expect(text).toContain(`extra-substituters = ${server.url}/cache`);
      expect(text).toMatch(/^extra-trusted-public-keys = 127\.0\.0\.1-acme-\d+:/m);
      expect(text).toContain(`netrc-file = ${etc}/netrc`);
      expect(text).not.toContain('old');
      expect(await readFile(path.join(etc, 'nix.conf'), 'utf8')).toMatch(
        /^trusted-users = root\n# >>> floe 127\.0\.0\.1 .*\n!include floe-127\.0\.0\.1\.conf\n/,
      );
    },
  );
});
