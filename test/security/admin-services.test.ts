/**
 * Administration goes through one set of services: the web interface mints tokens with the API's
 * rules and records the same event, a page or route the caller may not administer answers before
 * anything happens, and the batch upload API answers a slice URL from one write decision (a
 * slice the caller may not see is the same 404 as a missing one, a visible one it may not write a
 * 403 with the reason).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { webClient } from '../helpers/web-client.js';
import { fakePath } from '../helpers/paths.js';

let server: TestServer;
const { post, signedIn } = webClient(() => server, { Accept: 'text/html' });

interface Entry {
  action: string;
  target: string;
  outcome: string;
  detail: Record<string, unknown>;
}
const audit = async (action: string) =>
  (await api<{ entries: Entry[] }>(server, server.adminToken, 'GET', `/api/v1/orgs/acme/audit?action=${action}`)).body
    .entries;
const tokenSubjects = async () =>
  (
    await api<{ tokens: Array<{ subject: string }> }>(server, server.adminToken, 'GET', '/api/v1/orgs/acme/tokens')
  ).body.tokens.map((t) => t.subject);

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  await createOrg(server, 'globex');
});
afterAll(async () => {
  await server?.cleanup();
});

describe('one minting path for the API and the web', () => {
  it('records the same token.create event from both', async () => {
    const viaApi = await api<{ id: string }>(server, server.adminToken, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      slices: ['default'],
      subject: 'token:from-api',
    });
    expect(viaApi.status).toBe(201);
    const jar = await signedIn(server.adminToken);
    const viaWeb = await post(jar, '/manage/acme/tokens', {
      _csrf: jar.cookies.get('floe_csrf')!,
      kind: 'api',
      name: 'from-web',
      scopes: 'read',
      slices: 'default',
      ttl: '7d',
    });
    expect(viaWeb.status).toBe(201);
    const [a, w] = [
      (await audit('token.create')).find((e) => e.detail.subject === 'token:from-api')!,
      (await audit('token.create')).find((e) => e.detail.subject === 'token:from-web')!,
    ];
    expect(a.target).toBe(`token ${viaApi.body.id}`);
    expect(w.target).toMatch(/^token /);
    expect(Object.keys(w.detail).sort()).toEqual(Object.keys(a.detail).sort());
    expect(w.detail).toMatchObject({ scopes: ['read'], slices: ['default'] });
    expect(a.detail).toMatchObject({ scopes: ['read'], slices: ['default'] });
  });

  it('the web refuses a slice the org does not have, as the API does, and mints nothing', async () => {
    const viaApi = await api(server, server.adminToken, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      slices: ['nope'],
    });
    expect(viaApi.status).toBe(400);
    const jar = await signedIn(server.adminToken);
    const viaWeb = await post(jar, '/manage/acme/tokens', {
      _csrf: jar.cookies.get('floe_csrf')!,
      kind: 'api',
      name: 'nope-web',
      scopes: 'read',
      slices: 'nope',
    });
    expect(viaWeb.status).toBe(400);
    // The same message both ways (the web escapes its quotes).
    expect(JSON.stringify(viaApi.body)).toMatch(/no slice named \\"nope\\" in org acme/);
    expect(await viaWeb.text()).toMatch(
      /no slice named (&quot;|&#34;|&#x22;|")nope(&quot;|&#34;|&#x22;|") in org acme/,
    );
    expect(await tokenSubjects()).not.toContain('token:nope-web');
  });
});

describe('route guards', () => {
  it('a member without admin rights gets the 404 of a missing org on manage pages, and changes nothing', async () => {
    const member = (await createToken(server, 'acme', ['read', 'write'])).token;
    const jar = await signedIn(member);
    const csrf = jar.cookies.get('floe_csrf')!;
    for (const [path, form] of [
      ['/manage/acme/tokens', { kind: 'api', name: 'sneaky', scopes: 'admin' }],
      ['/manage/acme/slices', { name: 'sneaky' }],
      ['/manage/acme/storage/retention', { mode: 'forever' }],
    ] as const) {
      const res = await post(jar, path, { _csrf: csrf, ...form });
      expect(res.status, path).toBe(404);
    }
    expect(await tokenSubjects()).not.toContain('token:sneaky');
    const slices = await api<{ slices: Array<{ name: string }> }>(
      server,
      server.adminToken,
      'GET',
      '/api/v1/orgs/acme',
    );
    expect(slices.body.slices.map((s) => s.name)).not.toContain('sneaky');
    // The API's guard answers before the body is read, with the org's own reason for its own token.
    const res = await api<{ message: string }>(server, member, 'POST', '/api/v1/orgs/acme/pins', { not: 'read' });
    expect(res.status).toBe(403);
    expect(res.body.message).toMatch(/^not allowed to manage org "acme": /);
  });
});

describe('batch upload to a slice URL', () => {
  const put = async (token: string, url: string) => {
    const p = fakePath('hello');
    const line = JSON.stringify({
      storePath: `/nix/store/${p.base}`,
      narHash: p.narHash,
      narSize: p.narSize,
      references: [],
    });
    const res = await fetch(`${server.url}${url}`, {
      method: 'PUT',
      headers: { Authorization: basicAuth(token) },
      body: Buffer.concat([Buffer.from(`${line}\n`), p.nar]),
    });
    const text = await res.text();
    // The miss is the one plain-text miss response; everything else is JSON.
    const body = (res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : { text }) as {
      message?: string;
      status?: string;
      text?: string;
    };
    return { status: res.status, body };
  };

  it('writes for a writer, 403 for a reader of the slice, 404 for a caller who cannot see it', async () => {
    const writer = (await createToken(server, 'acme', ['write'])).token;
    const reader = (await createToken(server, 'acme', ['read'])).token;
    const stranger = (await createToken(server, 'globex', ['write', 'read', 'admin'])).token;
    expect(await put(writer, '/api/v1/cache/acme/default/paths')).toMatchObject({
      status: 201,
      body: { status: 'created' },
    });
    const refused = await put(reader, '/api/v1/cache/acme/default/paths');
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/^not allowed to write to acme\/default: /);
    const hidden = await put(stranger, '/api/v1/cache/acme/default/paths');
    const missing = await put(stranger, '/api/v1/cache/acme/no-such-slice/paths');
    expect(hidden.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(hidden.body).toEqual(missing.body);
  });

  it('decides the write twice per path: once on the slice before the body, once for the path at commit', async () => {
    const writer = (await createToken(server, 'acme', ['write'])).token;
    // Every decision of the one Authorizer is counted; a scrape's own server.admin decision counts in it.
    const allowed = async () => {
      const text = await (
        await fetch(`${server.url}/metrics`, { headers: { Authorization: `Bearer ${server.adminToken}` } })
      ).text();
      return Number(/^floe_policy_decisions_total\{outcome="allow"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await allowed();
    expect((await put(writer, '/api/v1/cache/acme/default/paths')).status).toBe(201);
    expect((await allowed()) - before).toBe(2 + 1);
  });
});
