/**
 * The org's Storage page over plain HTTP: CSRF on its forms, who may see it, who may set the quota,
 * inline validation, the audit entries (as the API writes them), and the daily usage snapshots
 * (after start and after GC).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { CookieJar, webClient } from '../helpers/web-client.js';
import { fakePath, nixStyleUpload } from '../helpers/paths.js';
import { bytes } from '../../src/web/layout.js';

let server: TestServer;

const { get, post, signedIn } = webClient(() => server, { Accept: 'text/html' });

interface Settings {
  retentionSeconds: number | null;
  quotaBytes: number | null;
}
const settings = async () => (await api<Settings>(server, server.adminToken, 'GET', '/api/v1/orgs/acme/usage')).body;
const pins = async () =>
  (
    await api<{ pins: Array<{ name: string; storePath: string; expiresAt: string | null; createdBy: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/pins',
    )
  ).body.pins;
const auditOf = async (action: string) =>
  (
    await api<{ entries: Array<{ action: string; target: string; actor: string; detail: Record<string, unknown> }> }>(
      server,
      server.adminToken,
      'GET',
      `/api/v1/orgs/acme/audit?action=${action}`,
    )
  ).body.entries;
const history = async () =>
  (
    await api<{ days: Array<{ day: string; paths: number; logicalBytes: number; storedBytes: number }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/usage/history',
    )
  ).body.days;
const today = () => new Date().toISOString().slice(0, 10);

let orgAdmin: string;
let pushed: ReturnType<typeof fakePath>;

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_LOG_LEVEL: 'info' } });
  await createOrg(server, 'acme');
  orgAdmin = (await createToken(server, 'acme', ['admin', 'read'])).token;
});

afterAll(async () => {
  await server?.cleanup();
});

describe('usage snapshots', () => {
  it('a row per org shortly after start, refreshed by every GC run', async () => {
    await expect.poll(async () => (await history()).map((d) => d.day), { timeout: 10_000 }).toEqual([today()]);
    expect((await history())[0]).toMatchObject({ paths: 0, logicalBytes: 0, storedBytes: 0 });
    pushed = fakePath('hello-2.12', { type: 'regular', contents: 'hello '.repeat(5000) });
    const writer = basicAuth((await createToken(server, 'acme', ['write'])).token);
    expect((await nixStyleUpload(`${server.url}/cache`, writer, pushed)).narinfo).toBe(201);
    // Nothing else snapshots within the day: the GC run does.
    expect((await history())[0]!.paths).toBe(0);
    expect((await api(server, server.adminToken, 'POST', '/api/v1/gc', {})).status).toBe(200);
    await expect.poll(async () => (await history())[0]?.paths, { timeout: 5000 }).toBe(1);
    const row = (await history())[0]!;
    expect(row.logicalBytes).toBe(pushed.narSize);
    expect(row.storedBytes).toBeGreaterThan(0);
    expect(row.storedBytes).toBeLessThan(pushed.narSize);
    // The usage page charts it.
    const page = await (await get(await signedIn(orgAdmin), '/manage/acme')).text();
    expect(page).toMatch(/Storage over time/);
    expect(page).toMatch(new RegExp(`${today()}: [\\d.]+ (B|KiB) stored \\([\\d.]+ KiB logical, 1 path\\)`));
    // Org admins only.
    expect(
      (await api(server, (await createToken(server, 'acme', ['read'])).token, 'GET', '/api/v1/orgs/acme/usage/history'))
        .status,
    ).toBe(403);
  });
});

describe('the storage page', () => {
  it('is for org admins: signed out → sign in; members without admin → 404, on GET and POST', async () => {
    const anon = new CookieJar();
    const res = await get(anon, '/manage/acme/storage');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/login?return=%2Fmanage%2Facme%2Fstorage');
    const reader = await signedIn((await createToken(server, 'acme', ['read', 'write'])).token);
    expect((await get(reader, '/manage/acme/storage')).status).toBe(404);
    expect(
      (await post(reader, '/manage/acme/storage/retention', { _csrf: reader.csrf, mode: 'window', retention: '1d' }))
        .status,
    ).toBe(404);
    expect(
      (
        await post(reader, '/manage/acme/storage/pins', {
          _csrf: reader.csrf,
          name: 'x',
          storePath: `/nix/store/${pushed.base}`,
        })
      ).status,
    ).toBe(404);
    expect((await post(reader, '/manage/acme/storage/quota', { _csrf: reader.csrf, quota: '1T' })).status).toBe(404);
    // Another org's admin neither.
    await createOrg(server, 'globex');
    const other = await signedIn((await createToken(server, 'globex', ['admin'])).token);
    expect((await get(other, '/manage/acme/storage')).status).toBe(404);
    expect(await settings()).toMatchObject({ retentionSeconds: null, quotaBytes: null });
    expect(await pins()).toEqual([]);
  });

  it('every form needs the CSRF token', async () => {
    const jar = await signedIn(orgAdmin);
    for (const [p, form] of [
      ['/manage/acme/storage/pins', { name: 'evil', storePath: `/nix/store/${pushed.base}` }],
      ['/manage/acme/storage/retention', { mode: 'window', retention: '1s' }],
      ['/manage/acme/storage/quota', { quota: '1T' }],
      ['/manage/acme/storage/pins/evil/remove', {}],
    ] as const) {
      const missing = await post(jar, p, form);
      expect(missing.status, p).toBe(403);
      expect(await missing.text()).toMatch(/missing CSRF token/);
      expect((await post(jar, p, { ...form, _csrf: 'x'.repeat(jar.csrf.length) })).status, p).toBe(403);
    }
    expect(await settings()).toMatchObject({ retentionSeconds: null, quotaBytes: null });
    expect(await pins()).toEqual([]);
  });

  it('an org admin sees the quota read-only and cannot set it; the server admin can', async () => {
    expect((await api(server, server.adminToken, 'PATCH', '/api/v1/orgs/acme/settings', { quota: '5G' })).status).toBe(
      200,
    );
    const jar = await signedIn(orgAdmin);
    const page = await (await get(jar, '/manage/acme/storage')).text();
    expect(page).toMatch(/data-testid="quota-readonly"/);
    expect(page).toMatch(/5\.0 GiB/);
    expect(page).not.toContain('action="/manage/acme/storage/quota"');
    const refused = await post(jar, '/manage/acme/storage/quota', { _csrf: jar.csrf, quota: '1T' });
    expect(refused.status).toBe(403);
    expect(await refused.text()).toMatch(/setting a quota needs the server admin token/);
    expect((await settings()).quotaBytes).toBe(5 * 2 ** 30);

    const admin = await signedIn(server.adminToken);
    const adminPage = await (await get(admin, '/manage/acme/storage')).text();
    expect(adminPage).toContain('action="/manage/acme/storage/quota"');
    expect(adminPage).toMatch(/<input id="quota" name="quota" value="5G"/);
    const bad = await post(admin, '/manage/acme/storage/quota', { _csrf: admin.csrf, quota: 'lots' });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/id="quota-error" role="alert">quota: expected a size like 512M/);
    const ok = await post(admin, '/manage/acme/storage/quota', { _csrf: admin.csrf, quota: '10G' });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/manage/acme/storage?done=quota');
    expect((await settings()).quotaBytes).toBe(10 * 2 ** 30);
    const entry = (await auditOf('org.settings')).at(-1)!;
    expect(entry).toMatchObject({ target: 'org acme', detail: { quotaBytes: 10 * 2 ** 30, retentionSeconds: null } });
    expect((await post(admin, '/manage/acme/storage/quota', { _csrf: admin.csrf, quota: '' })).status).toBe(303);
    expect((await settings()).quotaBytes).toBeNull();
  });

  it('an org admin sets the retention window (bad durations shown inline) and keeps forever again', async () => {
    const jar = await signedIn(orgAdmin);
    const bad = await post(jar, '/manage/acme/storage/retention', {
      _csrf: jar.csrf,
      mode: 'window',
      retention: 'a month',
    });
    expect(bad.status).toBe(400);
    const text = await bad.text();
    expect(text).toMatch(/id="retention-error" role="alert">retention: expected a duration like 90s/);
    expect(text).toMatch(/<input id="retention" name="retention" value="a month"[^>]*aria-invalid="true"/);
    expect((await settings()).retentionSeconds).toBeNull();
    const ok = await post(jar, '/manage/acme/storage/retention', { _csrf: jar.csrf, mode: 'window', retention: '30d' });
    expect(ok.status).toBe(303);
    expect((await settings()).retentionSeconds).toBe(30 * 86400);
    expect(await (await get(jar, '/manage/acme/storage?done=retention')).text()).toMatch(/pushes are kept for 30 days/);
    const entry = (await auditOf('org.settings')).at(-1)!;
    expect(entry).toMatchObject({ target: 'org acme', detail: { retentionSeconds: 30 * 86400, quotaBytes: null } });
    expect(
      (await post(jar, '/manage/acme/storage/retention', { _csrf: jar.csrf, mode: 'forever', retention: '30d' }))
        .status,
    ).toBe(303);
    expect((await settings()).retentionSeconds).toBeNull();
  });

  it('an org admin adds and removes pins; bad store paths and TTLs are shown inline', async () => {
    const jar = await signedIn(orgAdmin);
    const notAPath = await post(jar, '/manage/acme/storage/pins', {
      _csrf: jar.csrf,
      name: 'prod',
      storePath: '/tmp/result',
      ttl: '',
    });
    expect(notAPath.status).toBe(400);
    expect(await notAPath.text()).toMatch(
      /id="pin-error" role="alert">store path: &quot;\/tmp\/result&quot; is not in \/nix\/store/,
    );
    const absent = fakePath('not-pushed');
    const notHeld = await post(jar, '/manage/acme/storage/pins', {
      _csrf: jar.csrf,
      name: 'prod',
      storePath: `/nix/store/${absent.base}`,
      ttl: '',
    });
    expect(notHeld.status).toBe(400);
    const notHeldText = await notHeld.text();
    expect(notHeldText).toMatch(/is in no slice of acme; push it first/);
    expect(notHeldText).toMatch(
      /<input id="pin-path" name="storePath"[^>]*value="\/nix\/store\/[a-z0-9]{32}-not-pushed"[^>]*aria-invalid="true"/,
    );
    const badTtl = await post(jar, '/manage/acme/storage/pins', {
      _csrf: jar.csrf,
      name: 'prod',
      storePath: `/nix/store/${pushed.base}`,
      ttl: 'forever',
    });
    expect(badTtl.status).toBe(400);
    expect(await badTtl.text()).toMatch(/expires after: expected a duration/);
    const badName = await post(jar, '/manage/acme/storage/pins', {
      _csrf: jar.csrf,
      name: 'Prod Release',
      storePath: `/nix/store/${pushed.base}`,
    });
    expect(badName.status).toBe(400);
    expect(await badName.text()).toMatch(/pin name: /);
    expect(await pins()).toEqual([]);

    const ok = await post(jar, '/manage/acme/storage/pins', {
      _csrf: jar.csrf,
      name: 'prod',
      storePath: `/nix/store/${pushed.base}`,
      ttl: '180d',
    });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/manage/acme/storage?done=pin-added');
    const [pin] = await pins();
    expect(pin).toMatchObject({ name: 'prod', storePath: `/nix/store/${pushed.base}` });
    expect(Date.parse(pin!.expiresAt!) - Date.now()).toBeGreaterThan(179 * 86400_000);
    expect((await auditOf('pin.add')).at(-1)).toMatchObject({
      target: 'pin acme/prod',
      detail: { storePath: `/nix/store/${pushed.base}`, ttl: '180d' },
    });
    const listed = await (await get(jar, '/manage/acme/storage?done=pin-added')).text();
    expect(listed).toContain(`<tr data-pin="prod">`);
    expect(listed).toContain(`/nix/store/${pushed.base}`);
    expect(listed).toMatch(/Pin added/);

    expect(
      (await post(jar, '/manage/acme/storage/pins/prod/remove', { _csrf: jar.csrf })).headers.get('location'),
    ).toBe('/manage/acme/storage?done=pin-removed');
    expect(await pins()).toEqual([]);
    expect((await auditOf('pin.remove')).at(-1)).toMatchObject({ target: 'pin acme/prod' });
    // Removing again: nothing to remove, nothing audited.
    expect((await post(jar, '/manage/acme/storage/pins/prod/remove', { _csrf: jar.csrf })).status).toBe(303);
    expect(await auditOf('pin.remove')).toHaveLength(1);
  });

  it('shows logical and stored bytes per org and slice, as the usage API computes them', async () => {
    const usage = (
      await api<{
        logicalBytes: number;
        storedBytes: number;
        slices: Array<{ name: string; logicalBytes: number; storedBytes: number }>;
      }>(server, server.adminToken, 'GET', '/api/v1/orgs/acme/usage')
    ).body;
    expect(usage.logicalBytes).toBe(pushed.narSize);
    const page = await (await get(await signedIn(orgAdmin), '/manage/acme/storage')).text();
    expect(page).toContain(`data-testid="stat-logical">${bytes(usage.logicalBytes)}<`);
    expect(page).toContain(`data-testid="stat-stored">${bytes(usage.storedBytes)}<`);
    expect(page).toMatch(/<code>default<\/code><\/td><td class="num">1<\/td>/);
  });
});
