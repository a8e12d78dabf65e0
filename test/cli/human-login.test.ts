/**
 * `floe login oidc` for people: the browser flow (authorization code + PKCE, loopback redirect)
 * driven by a scripted HTTP client playing the browser, and the device-code flow.
 */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, createOrg, startFloe, type TestServer } from '../helpers/server.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

let server: TestServer;
let idp: TestIssuer;

/** Runs the CLI, calling `onLine` for every stderr line while it runs. */
function run(
  args: string[],
  onLine: (line: string) => void,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    void (async () => {
      const home = await mkdtemp(path.join(os.tmpdir(), 'floe-person-'));
      const child = spawn(process.execPath, [FLOE_BIN, ...args], {
        env: { ...process.env, FLOE_SERVER: server.url, XDG_CONFIG_HOME: home },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      let partial = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => {
        stderr += d;
        partial += d;
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const l of lines) onLine(l);
      });
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    })();
  });
}

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1' } });
  idp = await startIssuer({ pathPrefix: '/contoso/v2.0' });
  await createOrg(server, 'acme');
  const t = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'oidc',
    issuer: idp.issuer,
    clientId: 'floe-cli',
    claims: { groups: 'engineers' },
    scopes: ['read'],
  });
  expect(t.status, JSON.stringify(t.body)).toBe(201);
});

afterAll(async () => {
  await server?.cleanup();
  await idp?.stop();
});

describe('floe login oidc (people)', () => {
  it('browser flow: PKCE + loopback redirect; a forged callback is refused first', async () => {
    let browsed: Promise<void> | undefined;
    const result = await run(['login', 'oidc', '--no-browser', '--json'], (line) => {
      if (!line.startsWith('http://')) return;
      browsed = (async () => {
        const authorize = new URL(line);
        expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
        const callback = authorize.searchParams.get('redirect_uri')!;
        expect(callback).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
        const forged = await fetch(`${callback}?code=stolen&state=wrong`);
        expect(forged.status).toBe(400);
        const redirect = await fetch(line, { redirect: 'manual' });
        expect(redirect.status).toBe(302);
        const done = await fetch(redirect.headers.get('location')!);
        expect(await done.text()).toMatch(/Logged in/);
      })();
    });
    await browsed;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      org: 'acme',
      subject: `oidc:${idp.issuer}#person-1`,
      scopes: ['read'],
    });
  });

  it('device flow: the person approves the shown code elsewhere', async () => {
    const result = await run(['login', 'oidc', '--device', '--json'], (line) => {
      const m = /enter the code (\S+)/.exec(line);
      if (m) setTimeout(() => idp.approveDevice(m[1]!), 300);
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/only enter this code if you started this login yourself/);
    expect(JSON.parse(result.stdout).org).toBe('acme');
  });

  it('a person outside the trusted group is refused', async () => {
    idp.personClaims = { sub: 'person-2', groups: ['contractors'] };
    const result = await run(['login', 'oidc', '--device'], (line) => {
      const m = /enter the code (\S+)/.exec(line);
      if (m) idp.approveDevice(m[1]!);
    });
    expect(result.code).not.toBe(0);
    // The refusal names no trust (that would describe the org's rules to anyone); the org's audit log has the reason.
    expect(result.stderr).toMatch(/403.*no org on this server trusts this identity/);
  });
});
