/**
 * Multi-user Nix: a real nix-daemon (Nix 2.8, as root, its own chroot store, socket and
 * NIX_CONF_DIR) and an unprivileged user created for the test. A login without root tells the
 * user exactly what the admin must add and changes nothing of the daemon's; `floe login --system`
 * as root makes the daemon substitute from Floe for that user, joining the company's existing
 * netrc-file (which keeps working); `floe logout --system` puts everything back.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFloe } from '../helpers/floe-cli.js';
import { buildClosure, hostNix, requireNix, writeClosureExpr } from '../helpers/nix.js';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';

const exec = promisify(execFile);
const nixVersion = await requireNix(hostNix);
const canRun =
  Boolean(nixVersion) &&
  process.getuid?.() === 0 &&
  existsSync('/usr/sbin/useradd') &&
  existsSync('/usr/bin/nix-daemon');
const USER = `floe-mu-${process.pid}`;

let server: TestServer;
let dir: string;
let daemon: ChildProcess | undefined;
let uid = 0;
let gid = 0;
const etc = () => path.join(dir, 'etc');
const socket = () => path.join(dir, 'socket');

async function startDaemon(): Promise<void> {
  const env = {
    ...process.env,
    NIX_CONF_DIR: etc(),
    NIX_DAEMON_SOCKET_PATH: socket(),
    XDG_CACHE_HOME: path.join(dir, 'daemon-cache'),
    NIX_CONFIG: undefined,
  };
  daemon = spawn('nix-daemon', [], { env, stdio: 'ignore' });
  for (let i = 0; i < 100 && !existsSync(socket()); i++) await new Promise((r) => setTimeout(r, 100));
  expect(existsSync(socket())).toBe(true);
}

async function stopDaemon(): Promise<void> {
  if (!daemon || daemon.exitCode !== null) return;
  const d = daemon;
  await new Promise<void>((resolve) => {
    d.once('exit', () => resolve());
    d.kill('SIGTERM');
  });
  await exec('rm', ['-f', socket()]);
}

/** The unprivileged user asks the daemon for a store path (the daemon substitutes it). */
function realiseAsUser(storePath: string) {
  const home = path.join(dir, 'home');
  return new Promise<{ code: number; stderr: string }>((resolve) => {
    const child = spawn('nix-store', ['--realise', storePath], {
      uid,
      gid,
      cwd: home,
      env: {
        PATH: process.env.PATH!,
        HOME: home,
        XDG_CACHE_HOME: path.join(home, '.cache'),
        NIX_CONF_DIR: path.join(home, 'etc'),
        NIX_REMOTE: `unix://${socket()}`,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code: code ?? 1, stderr }));
  });
}

beforeAll(async () => {
  if (!canRun) return;
  await exec('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER]);
  uid = Number((await exec('id', ['-u', USER])).stdout);
  gid = Number((await exec('id', ['-g', USER])).stdout);
  server = await startFloe();
  dir = await mkdtemp('/tmp/floe-multi-user-');
  await chmod(dir, 0o755);
  await mkdir(path.join(dir, 'home', 'etc'), { recursive: true });
  await chown(path.join(dir, 'home'), uid, gid);
  await mkdir(etc());
}, 120_000);

afterAll(async () => {
  await stopDaemon();
  await server?.cleanup();
  if (canRun) await exec('userdel', [USER]).catch(() => undefined);
});

describe.skipIf(!canRun)('floe login on multi-user Nix (nix-daemon)', () => {
  it('instructs without root, configures the daemon with --system as root, keeps the existing netrc-file working', async () => {
    await createOrg(server, 'acme');
    await createOrg(server, 'other');
    const expr = await writeClosureExpr(dir);
    const acmePath = await buildClosure(hostNix, expr, `mu-acme-${Date.now()}`, path.join(dir, 'c1'));
    const otherPath = await buildClosure(hostNix, expr, `mu-other-${Date.now()}`, path.join(dir, 'c2'));
    for (const [org, p] of [
      ['acme', acmePath],
      ['other', otherPath],
    ] as const) {
      const pushed = await runFloe(['push', p], {
        env: { FLOE_SERVER: server.url, FLOE_TOKEN: (await createToken(server, org, ['read', 'write'])).token },
      });
      expect(pushed.code, pushed.stderr).toBe(0);
    }
    // The company's setup: another cache (here: Floe's org "other", reached as localhost) through its own netrc.
    const port = new URL(server.url).port;
    const otherKey = (await api<{ publicKey: string }>(server, undefined, 'GET', '/api/v1/cache/info?org=other')).body
      .publicKey;
    const companyNetrc = path.join(etc(), 'company-netrc');
    const companyEntry = `machine localhost login ci password ${(await createToken(server, 'other', ['read'])).token}\n`;
    await writeFile(companyNetrc, companyEntry, { mode: 0o600 });
    const systemConf =
      `store = ${path.join(dir, 'root')}\nsandbox = false\nbuild-users-group =\n` +
      `substituters = http://localhost:${port}/cache\ntrusted-public-keys = ${otherKey}\nnetrc-file = ${companyNetrc}\n`;
    await writeFile(path.join(etc(), 'nix.conf'), systemConf);
    await startDaemon();
    expect((await realiseAsUser(otherPath)).code).toBe(0);
    expect((await realiseAsUser(acmePath)).code).not.toBe(0); // not configured for Floe's acme yet

    const readToken = (await createToken(server, 'acme', ['read'])).token;
    const nixEnv = {
      NIX_CONF_DIR: etc(),
      NIX_DAEMON_SOCKET_PATH: socket(),
      FLOE_SERVER: server.url,
      FLOE_TOKEN: undefined,
    };
    // The user, without root: its own files, and the admin's part spelled out.
    const home = path.join(dir, 'home');
    const asUser = await runFloe(['login', '--token', '-'], {
      input: readToken,
      uid,
      gid,
      cwd: home,
      env: { ...nixEnv, HOME: home, XDG_CONFIG_HOME: path.join(home, '.config') },
    });
    expect(asUser.code, asUser.stderr).toBe(0);
    expect(asUser.stderr).toMatch(/runs the nix-daemon \(multi-user Nix\)/);
    expect(asUser.stderr).toContain('sudo floe login --token - --system');
    expect(asUser.stderr).toContain(`extra-substituters = ${server.url}/cache`);
    expect(asUser.stderr).toContain(`and to ${companyNetrc} (mode 0600`); // the file the daemon's netrc-file names
    expect(asUser.stderr).not.toMatch(/^floe:\s+netrc-file =/m);
    expect(asUser.stderr).toContain(`trusted-substituters = ${server.url}/cache`);
    expect(asUser.stderr).toContain(`trusted-users = ${USER}`);
    expect(asUser.stderr).not.toContain(readToken);
    expect(await readFile(path.join(etc(), 'nix.conf'), 'utf8')).toBe(systemConf);
    expect(await readFile(companyNetrc, 'utf8')).toBe(companyEntry);

    // The admin, as root.
    const asRoot = await runFloe(['login', '--token', '-', '--system'], {
      input: readToken,
      env: { ...nixEnv, XDG_CONFIG_HOME: path.join(dir, 'root-config') },
    });
    expect(asRoot.code, asRoot.stderr).toBe(0);
    expect(asRoot.stderr).toMatch(/restart it .*Nothing was restarted/);
    const include = path.join(etc(), 'floe-127.0.0.1.conf');
    expect(await readFile(path.join(etc(), 'nix.conf'), 'utf8')).toContain('!include floe-127.0.0.1.conf');
    const included = await readFile(include, 'utf8');
    expect(included).toContain(`extra-substituters = ${server.url}/cache`);
    expect(included).not.toContain('netrc-file'); // joined the company's netrc instead
    const merged = await readFile(companyNetrc, 'utf8');
    expect(merged).toContain(companyEntry.trim());
    expect(merged).toMatch(/machine 127\.0\.0\.1 login floe password floe_/);

    await stopDaemon();
    await startDaemon();
    const got = await realiseAsUser(acmePath);
    expect(got.code, got.stderr).toBe(0);
    expect(existsSync(path.join(dir, 'root', acmePath))).toBe(true);
    const otherStill = await realiseAsUser(otherPath);
    expect(otherStill.code, otherStill.stderr).toBe(0);

    // Logout undoes exactly what login --system added.
    const out = await runFloe(['logout', '--system'], {
      env: { ...nixEnv, XDG_CONFIG_HOME: path.join(dir, 'root-config'), FLOE_TOKEN: undefined },
    });
    expect(out.code, out.stderr).toBe(0);
    expect(await readFile(path.join(etc(), 'nix.conf'), 'utf8')).toBe(systemConf);
    expect(await readFile(companyNetrc, 'utf8')).toBe(companyEntry);
    expect(existsSync(include)).toBe(false);
  }, 300_000);
});
