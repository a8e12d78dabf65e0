/**
 * The web interface in real headless Chromium: search and open a flake, private flakes invisible
 * when signed out, sign in through the local OIDC issuer, create and revoke a device token, run the
 * org's storage (pins, retention, the read-only quota).
 * Screenshots of the main pages go to test-artifacts/screenshots/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import path from 'node:path';
import Database from 'better-sqlite3';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { type TestBrowser, haveChromium, launchBrowser } from '../helpers/browser.js';
import { REV, helloMeta, publish } from './fixtures.js';

const inCi = process.env.CI === 'true';
const run = haveChromium() || inCi ? describe : describe.skip;

run('web interface in Chromium', () => {
  let server: TestServer;
  let idp: TestIssuer;
  let browser: TestBrowser;
  let page: Page;
  let pinnable: string[];

  beforeAll(async () => {
    server = await startFloe({ env: { FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1', FLOE_LOG_LEVEL: 'info' } });
    idp = await startIssuer();
    await createOrg(server, 'acme');
    await createOrg(server, 'globex');
    const t = await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/trusts', {
      provider: 'oidc',
      issuer: idp.issuer,
      clientId: 'floe-web',
      claims: { groups: 'engineers' },
      scopes: ['read', 'admin'],
    });
    expect(t.status, JSON.stringify(t.body)).toBe(201);
    const publisher = (await createToken(server, 'acme', ['publish'])).token;
    await publish(server, publisher, 'acme', 'hello', `0.1.3+rev-${REV(3)}`, helloMeta());
    await publish(
      server,
      publisher,
      'acme',
      'hello',
      `0.1.5+rev-${REV(5)}`,
      helloMeta({ commit_count: 5, revision: REV(5) }),
    );
    await publish(
      server,
      publisher,
      'acme',
      'secret-sauce',
      'v1.0.0',
      helloMeta({ visibility: 'private', description: 'The recipe', labels: ['internal'], revision: REV(9) }),
    );
    await publish(
      server,
      publisher,
      'acme',
      'toolbox',
      'v2.1.0',
      helloMeta({
        description: 'Linters, formatters and a pinned Node for every repo',
        labels: ['devshell', 'ci'],
        revision: REV(7),
        readme: '# toolbox\n\nEverything CI needs.',
      }),
    );
    const globex = (await createToken(server, 'globex', ['publish'])).token;
    await publish(
      server,
      globex,
      'globex',
      'infra',
      'v0.4.2',
      helloMeta({
        description: 'NixOS hosts and modules of Globex',
        labels: ['nixos'],
        revision: REV(4),
        readme: '# infra',
      }),
    );
    // Some cache activity for the usage page: pushes spread over the last weeks, hits and misses.
    const writer = basicAuth((await createToken(server, 'acme', ['write', 'read'])).token);
    pinnable = [];
    const names = [
      'hello-2.12',
      'glibc-2.39',
      'bash-5.2',
      'coreutils-9.4',
      'openssl-3.0.13',
      'python3-3.12.3',
      'nodejs-20.12',
      'zlib-1.3',
      'curl-8.7.1',
      'git-2.44',
    ];
    for (const [i, name] of names.entries()) {
      const p = fakePath(name, { type: 'regular', contents: 'x'.repeat(2000 * (i + 1) ** 2) });
      expect((await nixStyleUpload(`${server.url}/cache`, writer, p)).narinfo).toBe(201);
      pinnable.push(`/nix/store/${p.base}`);
      await fetch(`${server.url}/cache/${p.hashPart}.narinfo`, { headers: { Authorization: writer } });
    }
    await fetch(`${server.url}/cache/${'0'.repeat(32)}.narinfo`, { headers: { Authorization: writer } });
    const db = new Database(path.join(server.dataDir, 'floe.sqlite'));
    const rows = db.prepare('SELECT slice_id, hash_part FROM paths').all() as Array<{
      slice_id: string;
      hash_part: string;
    }>;
    const setCreated = db.prepare('UPDATE paths SET created_at = ? WHERE slice_id = ? AND hash_part = ?');
    for (const [i, r] of rows.entries()) {
      setCreated.run(new Date(Date.now() - ((i * 7) % 24) * 86_400_000).toISOString(), r.slice_id, r.hash_part);
    }
    // Storage over time: three weeks of earlier daily snapshots (the server writes today's).
    const acmeId = (db.prepare("SELECT id FROM orgs WHERE name = 'acme'").get() as { id: string }).id;
    const insert = db.prepare(
      'INSERT INTO usage_history (day, org_id, logical_bytes, stored_bytes, paths, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (let d = 21; d >= 1; d--) {
      if (d === 12 || d === 13) continue; // the server was down
      const day = new Date(Date.now() - d * 86_400_000).toISOString().slice(0, 10);
      const grow = (21 - d) / 21;
      insert.run(
        day,
        acmeId,
        Math.round(120_000 + 560_000 * grow),
        Math.round(240 + 660 * grow + (d % 4) * 15),
        2 + Math.round(7 * grow),
        new Date().toISOString(),
      );
    }
    db.close();
    browser = await launchBrowser();
    page = await browser.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.cleanup();
    await idp?.stop();
  });

  it('searches and opens a flake; the README is rendered without its HTML', async () => {
    await page.goto(server.url);
    expect(await page.title()).toBe('Flakes · Floe');
    await browser.screenshot(page, '01-home');
    await page.getByLabel('Search flakes').fill('hello');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForURL(/\?q=hello/);
    const cards = page.getByTestId('flake-card');
    expect(await cards.count()).toBe(1);
    await browser.screenshot(page, '02-search');
    await cards.first().click();
    await page.waitForURL(/\/flakes\/acme\/hello$/);
    await expect.poll(() => page.locator('h1').first().textContent()).toBe('hello');
    expect(await page.getByTestId('flake-url').inputValue()).toBe(`${server.url}/f/acme/hello/*`);
    expect(await page.getByText('floe add acme/hello').count()).toBe(1);
    const readme = page.getByTestId('readme');
    expect(await readme.locator('script, img[onerror]').count()).toBe(0);
    expect(await readme.textContent()).toContain('<script>');
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await readme.locator('a[href^="javascript:"]').count()).toBe(0);
    expect(await page.getByText('MIT').count()).toBeGreaterThan(0);
    await browser.screenshot(page, '03-flake');
    await page.getByRole('link', { name: `0.1.3+rev-${REV(3).slice(0, 7)}` }).click();
    await page.waitForURL(/\/releases\//);
    expect(await page.getByText(REV(3)).count()).toBeGreaterThan(0);
    await browser.screenshot(page, '04-release');
  });

  it('private flakes are invisible when signed out', async () => {
    await page.goto(`${server.url}/?q=secret`);
    expect(await page.getByTestId('flake-card').count()).toBe(0);
    const res = await page.goto(`${server.url}/flakes/acme/secret-sauce`);
    expect(res?.status()).toBe(404);
    await browser.screenshot(page, '05-not-found');
  });

  it('signs in through the org OIDC provider; private flakes appear', async () => {
    await page.goto(server.url);
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.waitForURL(/\/login/);
    await browser.screenshot(page, '06-login');
    await page.getByRole('button', { name: 'Continue with acme' }).click();
    await page.waitForURL(`${server.url}/`);
    expect(await page.getByTestId('who').textContent()).toContain('ada@example.com');
    const cookies = await browser.context.cookies(server.url);
    const session = cookies.find((c) => c.name === 'floe_session')!;
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    await page.goto(`${server.url}/?q=secret`);
    expect(await page.getByTestId('flake-card').count()).toBe(1);
    await page.goto(`${server.url}/flakes/acme/secret-sauce`);
    expect(await page.getByText('The recipe').count()).toBeGreaterThan(0);
  });

  it('an admin creates a device token (shown once) and revokes it', async () => {
    await page.goto(`${server.url}/manage/acme/tokens`);
    await page.getByLabel('Name').fill('web-01');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = (await page.getByTestId('secret').textContent())!.trim();
    expect(secret).toMatch(/^floe_/);
    await browser.screenshot(page, '07-token-created');
    const who = await api<{ subject: string; scopes: string[] }>(server, secret, 'GET', '/api/v1/auth/whoami');
    expect(who.body).toMatchObject({ subject: 'device:web-01', scopes: ['read'] });
    await page.goto(`${server.url}/manage/acme/tokens`);
    expect(await page.getByTestId('secret').count()).toBe(0);
    await page.getByRole('button', { name: 'Revoke device:web-01' }).click();
    await page.waitForURL(/\/manage\/acme\/tokens$/);
    expect(await page.locator('tr[data-subject="device:web-01"]').count()).toBe(0);
    await expect
      .poll(async () => (await api(server, secret, 'GET', '/api/v1/auth/whoami')).status, { timeout: 5000 })
      .toBe(401);
  });

  it('shows the org: usage charts, members, slices', async () => {
    await page.goto(`${server.url}/manage/acme`);
    expect(await page.getByTestId('stat-paths').textContent()).toBe('10');
    await browser.screenshot(page, '08-usage');
    await page.goto(`${server.url}/manage/acme/members`);
    expect(await page.getByTestId('trusts').getByText(idp.issuer).count()).toBe(1);
    await page.getByLabel('Trust rule').fill('{"provider": "github", "scopes": ["publish"]}');
    await page.getByRole('button', { name: 'Add trust' }).nth(1).click();
    expect(await page.getByRole('alert').textContent()).toMatch(/ownerId/);
    await browser.screenshot(page, '09-members');
    await page.goto(`${server.url}/manage/acme/slices`);
    await page.getByLabel('Name').fill('releases');
    await page.getByRole('button', { name: 'Create slice' }).click();
    await page.waitForURL(/\/slices$/);
    expect(await page.getByText(`${server.url}/cache/acme/releases`).count()).toBe(1);
    // A new slice answers at its own URL; an admin puts it in the members' view with one click.
    const row = page.locator('tr', { hasText: `${server.url}/cache/acme/releases` });
    expect(await row.getByText('own URL only').count()).toBe(1);
    await row.getByRole('button', { name: 'Add to view' }).click();
    await page.waitForURL(/\/slices$/);
    expect(
      await page
        .locator('tr', { hasText: `${server.url}/cache/acme/releases` })
        .getByText('in view (100)')
        .count(),
    ).toBe(1);
    const settings = await api<{ slices: Array<{ name: string; inView: boolean }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/sources',
    );
    expect(settings.body.slices.find((x) => x.name === 'releases')?.inView).toBe(true);
    expect(await page.getByRole('heading', { name: 'Signing keys' }).count()).toBe(1);
    await browser.screenshot(page, '10-slices');
  });

  it('storage: an org admin adds a pin, sets retention and sees usage; the quota is read-only', async () => {
    expect((await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/acme/settings', { quota: '64M' })).status).toBe(
      200,
    );
    await page.goto(`${server.url}/manage/acme`);
    await expect.poll(() => page.getByTestId('storage-over-time').locator('circle').count()).toBeGreaterThan(1);
    await page.getByRole('link', { name: 'Storage', exact: true }).click();
    await page.waitForURL(/\/manage\/acme\/storage$/);
    expect(await page.getByTestId('stat-logical').textContent()).toMatch(/KiB$/);
    expect(await page.getByTestId('slice-storage').locator('tbody tr').first().textContent()).toMatch(/default\s*10/);
    // The quota: shown, not editable by an org admin.
    expect(await page.getByTestId('quota-readonly').textContent()).toMatch(/64\.0 MiB/);
    expect(await page.getByRole('textbox', { name: 'Quota', exact: true }).count()).toBe(0);
    expect(await page.locator('input[name=quota]').count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Save quota' }).count()).toBe(0);
    // A pin: a bad store path first, shown inline.
    await page.getByLabel('Name', { exact: true }).fill('prod-2026-11');
    await page.getByLabel('Store path').fill('/tmp/result');
    await page.getByRole('button', { name: 'Add pin' }).click();
    expect(await page.getByRole('alert').textContent()).toMatch(/is not in \/nix\/store/);
    expect(await page.getByLabel('Store path').getAttribute('aria-invalid')).toBe('true');
    await page.getByLabel('Store path').fill(pinnable[9]!);
    await page.getByLabel(/Expires after/).fill('180d');
    await page.getByRole('button', { name: 'Add pin' }).click();
    await page.waitForURL(/done=pin-added/);
    expect(await page.locator('tr[data-pin="prod-2026-11"]').textContent()).toContain(pinnable[9]!);
    // A second one, removed again.
    await page.getByLabel('Name', { exact: true }).fill('tmp');
    await page.getByLabel('Store path').fill(pinnable[0]!);
    await page.getByRole('button', { name: 'Add pin' }).click();
    await page.waitForURL(/done=pin-added/);
    await page.getByRole('button', { name: 'Remove pin tmp' }).click();
    await page.waitForURL(/done=pin-removed/);
    expect(await page.locator('tr[data-pin]').count()).toBe(1);
    // Retention: a bad duration, then 30 days.
    await page.getByLabel('for a window').check();
    await page.getByLabel('Retention window').fill('a month');
    await page.getByRole('button', { name: 'Save retention' }).click();
    expect(await page.getByRole('alert').textContent()).toMatch(/expected a duration/);
    await page.getByLabel('Retention window').fill('30d');
    await page.getByRole('button', { name: 'Save retention' }).click();
    await page.waitForURL(/done=retention/);
    expect(await page.getByTestId('retention-current').textContent()).toBe('pushes are kept for 30 days');
    const pins = await api<{ pins: Array<{ name: string; storePath: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/pins',
    );
    expect(pins.body.pins).toMatchObject([{ name: 'prod-2026-11', storePath: pinnable[9] }]);
    expect(
      (await api<{ retentionSeconds: number }>(server, server.adminToken, 'GET', '/api/v1/orgs/acme/usage')).body
        .retentionSeconds,
    ).toBe(30 * 86400);
    await browser.screenshot(page, '16-storage');
  });

  it('edits a policy: a validation error inline, then a valid one, a test, and the audit entry', async () => {
    await page.goto(`${server.url}/manage/acme/policies`);
    await page
      .getByLabel('Policies', { exact: true })
      .fill(
        '@id("broken")\nforbid (principal, action == Floe::Action::"cache.write", resource)\nwhen { principal.nope == 1 };\n',
      );
    await page.getByRole('button', { name: 'Validate and apply' }).click();
    const problems = page.getByTestId('policy-problems');
    expect(await problems.textContent()).toMatch(/Line 3.*attribute `nope`/);
    expect(await page.getByLabel('Policies', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    await browser.screenshot(page, '13-policy-invalid');
    await page
      .getByLabel('Policies', { exact: true })
      .fill(
        '@id("devices-only-read")\nforbid (principal, action == Floe::Action::"cache.write", resource)\nwhen { principal.authMethod == "device" };\n',
      );
    await page.getByLabel('Change note').fill('devices never write');
    await page.getByRole('button', { name: 'Validate and apply' }).click();
    expect(await page.getByRole('status').first().textContent()).toMatch(/Version 1 is active: devices-only-read/);
    await page.getByLabel('Signed in with').selectOption('device');
    await page.getByRole('button', { name: 'Run test' }).click();
    expect(await page.getByTestId('policy-test-result').textContent()).toMatch(/^deny/);
    await browser.screenshot(page, '14-policy-applied');
    await page.goto(`${server.url}/manage/acme/audit`);
    await page.getByLabel('Action').fill('policy.');
    await page.getByRole('button', { name: 'Filter' }).click();
    const rows = page.getByTestId('audit').locator('tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.nth(0).textContent()).toMatch(/policy\.apply.*acme policies v1.*event/s);
    expect(await rows.nth(1).textContent()).toMatch(/policy\.apply.*did not validate.*deny/s);
    await page.goto(`${server.url}/manage/acme/audit`);
    await browser.screenshot(page, '15-audit');
  });

  it('looks right in dark mode too', async () => {
    const dark = await launchBrowser({ colorScheme: 'dark' });
    try {
      const p = await dark.newPage();
      await p.goto(`${server.url}/flakes/acme/hello`);
      await dark.screenshot(p, '11-flake-dark');
      await p.goto(server.url);
      await dark.screenshot(p, '12-home-dark');
    } finally {
      await dark.close();
    }
  });

  it('signs out: the session token is revoked', async () => {
    const token = (await browser.context.cookies(server.url)).find((c) => c.name === 'floe_session')!.value;
    await page.goto(server.url);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${server.url}/`);
    expect(await page.getByRole('link', { name: 'Sign in' }).count()).toBe(1);
    expect((await api(server, token, 'GET', '/api/v1/auth/whoami')).status).toBe(401);
  });
});
