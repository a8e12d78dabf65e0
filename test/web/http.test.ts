/**
 * The web interface and observability over plain HTTP: CSRF, cookie flags, README sanitizing,
 * the session cookie's reach, request ids, /readyz and the Prometheus histograms.
 */
import { rename } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { CookieJar, webClient } from '../helpers/web-client.js';
import { REV, helloMeta, publish } from './fixtures.js';

let server: TestServer;

/** A tiny cookie jar: enough for one browser-like client. */
const { get, post, signedIn } = webClient(() => server);

beforeAll(async () => {
  server = await startFloe({ env: { FLOE_LOG_LEVEL: 'info' } });
  await createOrg(server, 'acme');
  const publisher = (await createToken(server, 'acme', ['publish'])).token;
  await publish(server, publisher, 'acme', 'hello', `0.1.3+rev-${REV(3)}`, helloMeta());
});

afterAll(async () => {
  await server?.cleanup();
});

describe('web security', () => {
  it('refuses POSTs without the CSRF token or from another origin', async () => {
    const jar = await signedIn(server.adminToken);
    const csrf = jar.cookies.get('floe_csrf')!;
    const noToken = await post(jar, '/logout', {});
    expect(noToken.status).toBe(403);
    expect(await noToken.text()).toMatch(/missing CSRF token/);
    expect((await post(jar, '/logout', { _csrf: 'x'.repeat(csrf.length) })).status).toBe(403);
    expect((await post(jar, '/logout', { _csrf: csrf }, { Origin: 'https://evil.example' })).status).toBe(403);
    const noCookie = await fetch(`${server.url}/manage/acme/slices`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Cookie: `floe_session=${jar.cookies.get('floe_session')}`,
      },
      body: `_csrf=${csrf}&name=evil`,
      redirect: 'manual',
    });
    expect(noCookie.status).toBe(403);
    expect(
      (
        await api<{ slices: Array<{ name: string }> }>(server, server.adminToken, 'GET', '/api/v1/orgs/acme')
      ).body.slices.map((s) => s.name),
    ).toEqual(['default']);
    // Still signed in; the real form works.
    expect((await get(jar, '/manage/acme')).status).toBe(200);
    expect((await post(jar, '/logout', { _csrf: csrf })).status).toBe(303);
  });

  it('session cookies are HttpOnly, SameSite=Lax, Secure behind https; they do not authenticate /api', async () => {
    const jar = await signedIn(server.adminToken);
    const session = jar.raw.find((l) => l.startsWith('floe_session='))!;
    expect(session).toMatch(/; HttpOnly/);
    expect(session).toMatch(/; SameSite=Lax/);
    expect(session).toMatch(/; Path=\//);
    expect(session).not.toMatch(/; Secure/);
    const whoami = await fetch(`${server.url}/api/v1/auth/whoami`, { headers: { Cookie: jar.header() } });
    expect(await whoami.json()).toEqual({ kind: 'anonymous' });

    const https = await startFloe({ env: { FLOE_PUBLIC_URL: 'https://floe.example.test' } });
    try {
      const res = await fetch(`${https.url}/`);
      const csrfCookie = res.headers.getSetCookie().find((l) => l.startsWith('floe_csrf='))!;
      expect(csrfCookie).toMatch(/; Secure/);
      expect(csrfCookie).toMatch(/; HttpOnly/);
    } finally {
      await https.cleanup();
    }
  });

  it('a README cannot inject HTML or script; pages forbid scripts by CSP', async () => {
    const res = await get(new CookieJar(), '/flakes/acme/hello');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('&lt;script&gt;window.__pwned = 1&lt;/script&gt;');
    expect(text).not.toMatch(/<script/i);
    expect(text).not.toMatch(/<img[^>]*onerror/i);
    expect(text).not.toMatch(/href="javascript:/i);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'/);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
  });

  it('flake and release pages offer Nix older than 2.17 the immutable release URL, with the reason', async () => {
    // The URL Nix 2.17+ would lock through Link is the one the old-Nix snippet hands out.
    const location = (await fetch(`${server.url}/f/acme/hello/0.1.tar.gz`, { redirect: 'manual' })).headers.get(
      'location',
    )!;
    expect(location).toMatch(/\/f\/pinned\/acme\/hello\/0\.1\.3%2Brev-/);
    for (const page of [
      '/flakes/acme/hello',
      `/flakes/acme/hello/releases/${encodeURIComponent(`0.1.3+rev-${REV(3)}`)}`,
    ]) {
      const text = await (await get(new CookieJar(), page)).text();
      const snippet = /data-testid="old-nix-url">([^<]*)</.exec(text)?.[1];
      expect(snippet, page).toBe(`inputs.hello.url = "${location}";`);
      const note = /data-testid="old-nix-note">([\s\S]*?)<\/p>/.exec(text)?.[1] ?? '';
      expect(note).toMatch(/Nix older than 2\.17 .*ignores the <code>Link<\/code> header/);
      expect(note).toMatch(page.includes('releases') ? /if this release is yanked/ : /NAR hash mismatch/);
    }
    expect((await fetch(location)).status).toBe(200);
  });

  it('denied and missing look the same; admin pages need sign-in', async () => {
    const jar = new CookieJar();
    const missing = await get(jar, '/flakes/acme/nope');
    expect(missing.status).toBe(404);
    const manage = await get(jar, '/manage/acme');
    expect(manage.status).toBe(303);
    expect(manage.headers.get('location')).toBe('/login?return=%2Fmanage%2Facme');
    const reader = await signedIn((await createToken(server, 'acme', ['read'])).token);
    expect((await get(reader, '/manage/acme')).status).toBe(404);
  });
});

describe('web forms', () => {
  it('errors on web pages are HTML pages that say what to fix', async () => {
    const jar = await signedIn(server.adminToken);
    const res = await fetch(`${server.url}/manage/acme/policies/rollback`, {
      method: 'POST',
      headers: {
        Cookie: jar.header(),
        'Content-Type': 'application/x-www-form-urlencoded',
        Origin: server.url,
        Accept: 'text/html',
      },
      body: new URLSearchParams({ _csrf: jar.cookies.get('floe_csrf')!, version: '42' }),
      redirect: 'manual',
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    expect(await res.text()).toMatch(/org acme has no policy version 42/);
  });

  it('creates a deploy-only device token from the tokens page', async () => {
    const jar = await signedIn(server.adminToken);
    const res = await post(jar, '/manage/acme/tokens', {
      _csrf: jar.cookies.get('floe_csrf')!,
      kind: 'device',
      name: 'web-02',
      deploy: 'acme/hello/*#packages.x86_64-linux.default',
      ttl: '7d',
      slices: '*',
    });
    expect(res.status).toBe(201);
    const secret = /data-testid="secret">(floe_[^<]+)</.exec(await res.text())![1]!;
    const who = await api<{ subject: string; scopes: string[] }>(server, secret, 'GET', '/api/v1/auth/whoami');
    expect(who.body).toMatchObject({ subject: 'device:web-02', scopes: ['read'] });
    const list = await api<{ tokens: Array<{ subject: string; description: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme/tokens',
    );
    expect(list.body.tokens.find((t) => t.subject === 'device:web-02')?.description).toBe(
      'deploy-only: acme/hello/*#packages.x86_64-linux.default',
    );
    const bad = await post(jar, '/manage/acme/tokens', {
      _csrf: jar.cookies.get('floe_csrf')!,
      kind: 'device',
      name: 'web-03',
      deploy: 'not a grant',
      ttl: '7d',
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/names no output/);
  });
});

describe('observability', () => {
  it('request ids on every response, including /cache and misses, and in the log', async () => {
    for (const p of [
      '/',
      '/cache/nix-cache-info',
      '/cache/00000000000000000000000000000000.narinfo',
      '/api/v1/search?q=x',
      '/nope',
    ]) {
      const res = await fetch(`${server.url}${p}`);
      const id = res.headers.get('x-request-id');
      expect(id, p).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
      await expect.poll(() => server.logs().includes(`"reqId":"${id}"`), { timeout: 2000 }).toBe(true);
    }
  });

  it('/metrics has latency histograms by route template, bytes, policy decisions', async () => {
    await fetch(`${server.url}/flakes/acme/hello`);
    await fetch(`${server.url}/cache/nix-cache-info`);
    const text = await (
      await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
    ).text();
    expect(text).toMatch(/^# TYPE floe_http_request_duration_seconds histogram$/m);
    expect(text).toMatch(
      /^floe_http_request_duration_seconds_bucket\{method="GET",route="\/flakes\/:org\/:flake",status="2xx",le="0\.1"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^floe_http_request_duration_seconds_bucket\{method="GET",route="\/cache\/nix-cache-info",status="2xx",le="\+Inf"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^floe_http_request_duration_seconds_count\{method="GET",route="\/flakes\/:org\/:flake",status="2xx"\} [1-9]/m,
    );
    expect(text).not.toMatch(/route="\/flakes\/acme/);
    expect(text).toMatch(/^floe_http_sent_bytes_total\{area="web"\} [1-9]/m);
    expect(text).toMatch(/^floe_http_received_bytes_total\{area="cache"\} \d+$/m);
    expect(text).toMatch(/^floe_policy_decisions_total\{outcome="allow"\} [1-9]/m);
    expect(text).toMatch(/^# TYPE floe_gc_runs_total counter$/m);
    expect(text).toMatch(/^# TYPE floe_upload_verification_failures_total counter$/m);
  });

  it('counts upload verification failures by reason', async () => {
    const writer = (await createToken(server, 'acme', ['write'])).token;
    const res = await fetch(`${server.url}/cache/nar/bogus.nar`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${writer}` },
      body: 'definitely not a NAR',
    });
    expect(res.status).toBe(400);
    const text = await (
      await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
    ).text();
    expect(text).toMatch(/^floe_upload_verification_failures_total\{reason="invalid_input"\} [1-9]/m);
    expect(text).toMatch(/^floe_http_received_bytes_total\{area="cache"\} [1-9]/m);
  });

  it('/readyz checks the database and the blob store: 503 naming the failed backend', async () => {
    const ok = await fetch(`${server.url}/readyz`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      status: 'ready',
      checks: [
        { backend: 'database', ok: true },
        { backend: 'blobs', ok: true },
        { backend: 'disk', ok: true },
      ],
    });
    const blobs = path.join(server.dataDir, 'blobs');
    await rename(blobs, `${blobs}.away`);
    try {
      const down = await fetch(`${server.url}/readyz`);
      expect(down.status).toBe(503);
      const body = (await down.json()) as { status: string; failed: string[]; checks: Array<{ error?: string }> };
      expect(body).toMatchObject({ status: 'unavailable', failed: ['blobs'] });
      expect(JSON.stringify(body)).not.toContain(server.dataDir);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    } finally {
      await rename(`${blobs}.away`, blobs);
    }
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });

  it('records when a token was last used', async () => {
    const t = await createToken(server, 'acme', ['read']);
    expect((await api(server, t.token, 'GET', '/api/v1/auth/whoami')).status).toBe(200);
    await expect
      .poll(
        async () =>
          (
            await api<{ tokens: Array<{ id: string; lastUsedAt: string | null }> }>(
              server,
              server.adminToken,
              'GET',
              '/api/v1/orgs/acme/tokens',
            )
          ).body.tokens.find((x) => x.id === t.id)?.lastUsedAt,
        { timeout: 3000 },
      )
      .toMatch(/^\d{4}-/);
  });
});
