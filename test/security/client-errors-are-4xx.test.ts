/**
 * Client errors are 4xx, always: a table of malformed inputs (query parameters, path segments,
 * JSON bodies and every field in them, nesting, sizes) thrown at every route family of a real
 * `floe serve`, as the server admin and as an org admin (so requests get past authorization to
 * the parsing). Found in a security review: `?limit=abc` on the audit API, a malformed CIDR or IP
 * in a policy test, release metadata nested thousands deep: all answered 500.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { type CookieJar, webClient } from '../helpers/web-client.js';
import { flakeTarball } from '../web/fixtures.js';

let server: TestServer;
let orgAdmin: string;
let publisher: string;
const web = webClient(() => server);

beforeAll(async () => {
  server = await startFloe();
  await createOrg(server, 'acme');
  orgAdmin = (await createToken(server, 'acme', ['admin', 'read', 'write', 'publish'])).token;
  publisher = (await createToken(server, 'acme', ['publish'])).token;
});
afterAll(async () => {
  await server?.cleanup();
});

/** JSON nested `depth` levels deep, as text (JSON.stringify itself would overflow the stack). */
const deepArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const deepObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const DEEP = 50_000;

/** Values put in place of every field of a valid body: wrong types, edge numbers, sizes, nesting. */
const BAD_FIELD_VALUES: string[] = [
  'null',
  'true',
  '0',
  '-1',
  '1.5',
  '1e308',
  '-1e308',
  '""',
  '"x"',
  '"%ff"',
  '"\\u0000"',
  '"not-an-ip"',
  '"300.1.2.3/33"',
  '"::ffff:zz/129"',
  JSON.stringify('a'.repeat(20_000)),
  '[]',
  '[null]',
  '["not-a-cidr"]',
  '{}',
  '{"a":1}',
  deepArray(DEEP),
  deepObject(DEEP),
];

/** Whole bodies that are not what any route expects. */
const BAD_BODIES: string[] = [
  '',
  'not json',
  '{',
  '[]',
  'null',
  '"text"',
  '1',
  '{"__proto__":{"x":1}}',
  deepArray(DEEP),
  deepObject(DEEP),
];

/** Values put in place of a query parameter. */
const BAD_QUERY_VALUES = [
  'abc',
  '-1',
  '0',
  '1.5',
  '1e400',
  'NaN',
  'Infinity',
  '99999999999999999999999',
  '%ff',
  '%00',
  'a'.repeat(5000),
  '2026-13-45',
  'x&limit=y',
];

/** Values put in place of each path parameter. */
const BAD_SEGMENTS = [
  '%ff',
  '%00',
  '..',
  '%2e%2e',
  'a'.repeat(3000),
  '-1',
  'NaN',
  '1e400',
  '99999999999999999999999',
  '%E2%80%AE',
  'UPPER',
  '*',
];

interface JsonRoute {
  method: 'POST' | 'PUT' | 'PATCH';
  path: string;
  /** A body the route accepts (or nearly): each field is replaced in turn. */
  body: Record<string, unknown>;
  token: () => string;
  /** Nested fields to replace too, as paths. */
  nested?: string[][];
}

const policyCase = {
  principal: { org: 'acme', scopes: ['read'], network: { cidrs: ['10.0.0.0/8'], countries: ['DE'] } },
  action: 'cache.read',
  resource: { slice: 'default' },
  client: { ip: '10.1.2.3', country: 'DE' },
  facts: { narinfoSignatures: [] },
};

const JSON_ROUTES: JsonRoute[] = [
  { method: 'POST', path: '/api/v1/orgs', body: { name: 'neworg' }, token: () => server.adminToken },
  {
    method: 'POST',
    path: '/api/v1/orgs/acme/slices',
    body: { name: 'newslice', public: false },
    token: () => orgAdmin,
  },
  { method: 'PATCH', path: '/api/v1/orgs/acme/slices/default', body: { public: false }, token: () => orgAdmin },
  {
    method: 'POST',
    path: '/api/v1/tokens',
    body: {
      org: 'acme',
      scopes: ['read'],
      ttl: '1h',
      cidrs: ['10.0.0.0/8'],
      countries: ['DE'],
      slices: ['default'],
      subject: 's',
      description: 'd',
    },
    token: () => orgAdmin,
  },
  {
    method: 'POST',
    path: '/api/v1/cache/missing',
    body: { paths: ['/nix/store/00000000000000000000000000000000-x'] },
    token: () => orgAdmin,
  },
  {
    method: 'POST',
    path: '/api/v1/cache/acme/default/missing',
    body: { paths: ['/nix/store/00000000000000000000000000000000-x'] },
    token: () => orgAdmin,
  },
  { method: 'POST', path: '/api/v1/auth/exchange', body: { token: 'a.b.c', org: 'acme', ttl: '1h' }, token: () => '' },
  {
    method: 'POST',
    path: '/api/v1/auth/aws',
    body: { url: 'https://sts.amazonaws.com/', method: 'POST', headers: {}, body: '', org: 'acme' },
    token: () => '',
  },
  {
    method: 'POST',
    path: '/api/v1/orgs/acme/trusts',
    body: {
      provider: 'aws',
      scopes: ['read'],
      accountId: '123456789012',
      arnPatterns: ['arn:aws:iam::123456789012:role/ci-*'],
    },
    token: () => orgAdmin,
  },
  { method: 'POST', path: '/api/v1/orgs/acme/tokens/revoke', body: { subject: 'nobody' }, token: () => orgAdmin },
  {
    method: 'POST',
    path: '/api/v1/orgs/acme/policies/validate',
    body: { source: 'permit(principal, action, resource);' },
    token: () => orgAdmin,
  },
  { method: 'PUT', path: '/api/v1/orgs/acme/policies', body: { source: '', message: 'm' }, token: () => orgAdmin },
  { method: 'POST', path: '/api/v1/orgs/acme/policies/rollback', body: { version: 1 }, token: () => orgAdmin },
  {
    method: 'POST',
    path: '/api/v1/orgs/acme/policies/test',
    body: { cases: [policyCase] },
    token: () => orgAdmin,
    nested: [
      ['cases', '0', 'client', 'ip'],
      ['cases', '0', 'client', 'country'],
      ['cases', '0', 'principal', 'network', 'cidrs'],
      ['cases', '0', 'principal', 'network', 'cidrs', '0'],
      ['cases', '0', 'principal', 'network', 'countries', '0'],
      ['cases', '0', 'principal', 'slices'],
      ['cases', '0', 'principal', 'deploy'],
      ['cases', '0', 'resource'],
      ['cases', '0', 'facts'],
      ['cases', '0', 'facts', 'narinfoSignatures'],
    ],
  },
  { method: 'POST', path: '/api/v1/orgs/acme/signers', body: { publicKey: 'k:AAAA' }, token: () => orgAdmin },
  {
    method: 'POST',
    path: '/api/v1/upstreams',
    body: { name: 'up', url: 'https://example.invalid', publicKeys: ['k:AAAA'], pullThrough: false, priority: 1 },
    token: () => server.adminToken,
  },
  {
    method: 'POST',
    path: '/api/v1/orgs/acme/pins',
    body: { name: 'p', storePath: '/nix/store/00000000000000000000000000000000-x', ttl: '1d' },
    token: () => orgAdmin,
  },
  { method: 'PATCH', path: '/api/v1/orgs/acme/settings', body: { retention: '30d' }, token: () => orgAdmin },
  { method: 'POST', path: '/api/v1/gc', body: { dryRun: true, grace: '1h' }, token: () => server.adminToken },
  {
    method: 'POST',
    path: `/upload/acme/hello/1.0.0/100/${Buffer.alloc(32).toString('base64')}`,
    body: {
      visibility: 'public',
      description: 'd',
      readme: '# r',
      revision: 'a'.repeat(40),
      commit_count: 1,
      labels: ['x'],
      outputs: {},
      raw_flake_metadata: {},
      spdx_identifier: 'MIT',
      repo: 'a/b',
      source_subdirectory: '',
      mirrored: false,
    },
    token: () => publisher,
  },
];

/** The web interface's forms (signed in, with the CSRF token), each field replaced in turn. */
const FORM_ROUTES: Array<{ path: string; fields: Record<string, string>; admin?: boolean }> = [
  {
    path: '/manage/acme/storage/pins',
    fields: { name: 'p', storePath: '/nix/store/00000000000000000000000000000000-x', ttl: '1d' },
  },
  { path: '/manage/acme/storage/pins/nope/remove', fields: {} },
  { path: '/manage/acme/storage/retention', fields: { mode: 'window', retention: '30d' } },
  { path: '/manage/acme/storage/quota', fields: { quota: '10GiB' }, admin: true },
  {
    path: '/manage/acme/members/oidc',
    fields: { issuer: 'https://issuer.invalid', claim: 'sub', value: 'x', scopes: 'read', clientId: 'c' },
  },
  {
    path: '/manage/acme/members/json',
    fields: {
      spec: '{"provider":"aws","scopes":["read"],"accountId":"123456789012","arnPatterns":["arn:aws:iam::123456789012:role/x"]}',
    },
  },
  { path: '/manage/acme/members/nope/remove', fields: {} },
  {
    path: '/manage/acme/tokens',
    fields: {
      name: 'n',
      kind: 'api',
      ttl: '1d',
      description: 'd',
      deploy: 'acme/app/*#packages.x86_64-linux.default',
      scopes: 'read',
    },
  },
  { path: '/manage/acme/tokens/nope/revoke', fields: {} },
  { path: '/manage/acme/slices', fields: { name: 's', public: '1' } },
  { path: '/manage/acme/slices/default/visibility', fields: { public: '1' } },
  { path: '/manage/acme/policies', fields: { source: '', message: 'm' } },
  { path: '/manage/acme/policies/rollback', fields: { version: '1' } },
  {
    path: '/manage/acme/policies/test',
    fields: {
      subject: 's',
      scopes: 'read',
      authMethod: 'token',
      action: 'cache.read',
      resourceKind: 'slice',
      resourceName: 'default',
      visibility: 'private',
    },
  },
  { path: '/login/start', fields: { org: 'acme', issuer: 'https://issuer.invalid', return: '/' } },
];
// Forms are limited to 64 KiB (larger ones get a 413 before they are read): the deep values fit.
const BAD_FORM_VALUES = [
  '',
  'abc',
  '-1',
  '0',
  '1.5',
  '1e400',
  'NaN',
  '99999999999999999999999',
  '%ff',
  '\u0000',
  'a'.repeat(20_000),
  deepArray(5000),
  deepObject(2000),
  '{}',
  '[]',
  'null',
  '2026-13-45',
];

interface GetRoute {
  path: string;
  query: string[];
  token: () => string;
}

const GET_ROUTES: GetRoute[] = [
  {
    path: '/api/v1/orgs/acme/audit',
    query: ['limit', 'after', 'since', 'until', 'outcome', 'action', 'actor', 'format'],
    token: () => orgAdmin,
  },
  { path: '/api/v1/audit', query: ['limit', 'after', 'since', 'until', 'outcome'], token: () => server.adminToken },
  { path: '/api/v1/audit/verify', query: ['seq', 'hash'], token: () => server.adminToken },
  { path: '/api/v1/orgs/acme/reads', query: ['since', 'actor'], token: () => orgAdmin },
  { path: '/api/v1/orgs/acme/tokens', query: ['subject', 'all'], token: () => orgAdmin },
  { path: '/api/v1/orgs/acme/usage/history', query: ['days'], token: () => orgAdmin },
  { path: '/api/v1/search', query: ['q', 'limit'], token: () => '' },
  { path: '/api/v1/flake-orgs', query: ['limit'], token: () => '' },
  { path: '/api/v1/orgs/acme/flakes', query: ['limit', 'q'], token: () => orgAdmin },
  { path: '/', query: ['q'], token: () => '' },
  { path: '/login', query: ['return', 'error'], token: () => '' },
  { path: '/login/callback', query: ['state', 'code', 'error'], token: () => '' },
  { path: '/manage/acme/audit', query: ['before', 'since', 'outcome', 'actor', 'action'], token: () => orgAdmin },
  { path: '/manage/acme/audit/export', query: ['since', 'outcome'], token: () => orgAdmin },
  { path: '/manage/acme/storage', query: ['done'], token: () => orgAdmin },
  { path: '/manage/acme/tokens', query: ['all'], token: () => orgAdmin },
];

/** Templates whose `:params` are replaced in turn; the others keep a plausible value. */
const PARAM_ROUTES: Array<{ method: string; path: string; token: () => string }> = [
  { method: 'GET', path: '/api/v1/orgs/:org', token: () => server.adminToken },
  { method: 'GET', path: '/api/v1/orgs/:org/policies/versions/:version', token: () => server.adminToken },
  { method: 'DELETE', path: '/api/v1/tokens/:id', token: () => server.adminToken },
  { method: 'DELETE', path: '/api/v1/orgs/:org/trusts/:id', token: () => server.adminToken },
  { method: 'DELETE', path: '/api/v1/orgs/:org/signers/:name', token: () => server.adminToken },
  { method: 'DELETE', path: '/api/v1/orgs/:org/pins/:name', token: () => server.adminToken },
  { method: 'DELETE', path: '/api/v1/upstreams/:name', token: () => server.adminToken },
  { method: 'GET', path: '/api/v1/flakes/:org/:flake/releases', token: () => server.adminToken },
  { method: 'GET', path: '/api/v1/flakes/:org/:flake/resolve/:req', token: () => server.adminToken },
  { method: 'GET', path: '/api/v1/flakes/:org/:flake/resolve/:req/output/:attr', token: () => server.adminToken },
  { method: 'POST', path: '/api/v1/flakes/:org/:flake/releases/:version/yank', token: () => server.adminToken },
  { method: 'GET', path: '/f/:org/:flake/:req', token: () => '' },
  { method: 'GET', path: '/f/pinned/:org/:flake/:version/:id/source.tar.gz', token: () => '' },
  { method: 'PUT', path: '/api/v1/release-uploads/:id', token: () => publisher },
  { method: 'POST', path: '/publish/:id', token: () => publisher },
  { method: 'POST', path: '/upload/:org/:flake/:version/:size/:sha', token: () => publisher },
  { method: 'GET', path: '/flakes/:org/:flake', token: () => '' },
  { method: 'GET', path: '/flakes/:org/:flake/releases/:version', token: () => '' },
  { method: 'GET', path: '/manage/:org', token: () => server.adminToken },
  { method: 'GET', path: '/cache/:org/:slice/nix-cache-info', token: () => server.adminToken },
  { method: 'GET', path: '/cache/:name.narinfo', token: () => server.adminToken },
  { method: 'GET', path: '/cache/nar/:name', token: () => server.adminToken },
];
const PLAUSIBLE: Record<string, string> = {
  org: 'acme',
  flake: 'hello',
  req: '*',
  attr: 'packages.x86_64-linux.default',
  version: '1',
  id: '00000000-0000-4000-8000-000000000000',
  name: 'x',
  slice: 'default',
  size: '10',
  sha: 'AAAA',
};

function setAt(body: unknown, path: string[], raw: string): string {
  // Replaces the value at `path` with raw JSON text (which may be too deep for JSON.stringify).
  const marker = '"__FLOE_BAD_VALUE__"';
  const copy = structuredClone(body) as Record<string, unknown>;
  let at: Record<string, unknown> = copy;
  for (const k of path.slice(0, -1)) at = at[k] as Record<string, unknown>;
  at[path.at(-1)!] = '__FLOE_BAD_VALUE__';
  return JSON.stringify(copy).replace(marker, () => raw);
}

async function send(
  method: string,
  p: string,
  token: string,
  body?: string,
  contentType = 'application/json',
): Promise<{ status: number; text: string }> {
  const res = await fetch(`${server.url}${p}`, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'Content-Type': contentType } : {}),
      Accept: 'text/html,application/json',
    },
    ...(body !== undefined ? { body } : {}),
    redirect: 'manual',
  });
  return { status: res.status, text: (await res.text()).slice(0, 300) };
}

/** Runs every request, collecting the ones answered 5xx (all of them at once make a readable failure). */
async function serverErrors(
  requests: Array<{ label: string; run: () => Promise<{ status: number; text: string }> }>,
): Promise<string[]> {
  const failures: string[] = [];
  for (const r of requests) {
    const res = await r.run().catch((err: Error) => ({ status: 599, text: `request failed: ${err.message}` }));
    if (res.status >= 500) failures.push(`${r.label} -> ${res.status} ${res.text}`);
  }
  return failures;
}

describe('client errors are 4xx', () => {
  it('every JSON body route answers malformed bodies and malformed fields with 4xx', async () => {
    // The template bodies are accepted: the malformed variants below are refused for what they change.
    expect(
      (await send('POST', '/api/v1/orgs/acme/policies/test', orgAdmin, JSON.stringify({ cases: [policyCase] }))).status,
    ).toBe(200);
    const requests: Array<{ label: string; run: () => Promise<{ status: number; text: string }> }> = [];
    for (const route of JSON_ROUTES) {
      for (const body of BAD_BODIES)
        requests.push({
          label: `${route.method} ${route.path} body ${body.slice(0, 30)}`,
          run: () => send(route.method, route.path, route.token(), body),
        });
      const fields = [...Object.keys(route.body).map((k) => [k]), ...(route.nested ?? [])];
      for (const field of fields) {
        for (const value of BAD_FIELD_VALUES) {
          requests.push({
            label: `${route.method} ${route.path} ${field.join('.')}=${value.slice(0, 30)}`,
            run: () => send(route.method, route.path, route.token(), setAt(route.body, field, value)),
          });
        }
      }
      requests.push({
        label: `${route.method} ${route.path} as a form`,
        run: () => send(route.method, route.path, route.token(), 'a=1', 'application/x-www-form-urlencoded'),
      });
    }
    expect(await serverErrors(requests)).toEqual([]);
  });

  it('every query parameter answers malformed values with 4xx (or ignores them)', async () => {
    // The reported case: a 400 that names the parameter.
    const limit = await api<{ error: string; message: string }>(
      server,
      orgAdmin,
      'GET',
      '/api/v1/orgs/acme/audit?limit=abc',
    );
    expect(limit).toEqual({
      status: 400,
      body: { error: 'invalid_input', message: 'limit: expected a whole number from 1 to 5000' },
    });
    const requests: Array<{ label: string; run: () => Promise<{ status: number; text: string }> }> = [];
    for (const route of GET_ROUTES) {
      for (const name of route.query) {
        for (const value of BAD_QUERY_VALUES)
          requests.push({
            label: `GET ${route.path}?${name}=${value.slice(0, 30)}`,
            run: () => send('GET', `${route.path}?${name}=${value}`, route.token()),
          });
        requests.push({
          label: `GET ${route.path}?${name} twice`,
          run: () => send('GET', `${route.path}?${name}=1&${name}=x`, route.token()),
        });
      }
    }
    expect(await serverErrors(requests)).toEqual([]);
  });

  it('every path parameter answers malformed segments with 4xx', async () => {
    const requests: Array<{ label: string; run: () => Promise<{ status: number; text: string }> }> = [];
    for (const route of PARAM_ROUTES) {
      const params = [...route.path.matchAll(/:([a-z]+)/g)].map((m) => m[1]!);
      for (const param of params) {
        for (const bad of BAD_SEGMENTS) {
          const p = route.path.replace(/:([a-z]+)/g, (_, name: string) => (name === param ? bad : PLAUSIBLE[name]!));
          requests.push({
            label: `${route.method} ${p.slice(0, 100)}`,
            run: () =>
              send(
                route.method,
                p,
                route.token(),
                route.method === 'GET' || route.method === 'DELETE' ? undefined : '{}',
              ),
          });
        }
      }
    }
    expect(await serverErrors(requests)).toEqual([]);
  });

  it('every web form answers malformed fields with 4xx or a page saying what is wrong', async () => {
    const adminJar = await web.signedIn(orgAdmin);
    const serverJar = await web.signedIn(server.adminToken);
    const requests: Array<{ label: string; run: () => Promise<{ status: number; text: string }> }> = [];
    const post = async (jar: CookieJar, p: string, form: Record<string, string>) => {
      const res = await web.post(jar, p, { _csrf: jar.csrf, ...form });
      return { status: res.status, text: (await res.text()).slice(0, 300) };
    };
    // The forms are really reached (session and CSRF token accepted), not refused before parsing.
    expect((await post(adminJar, '/manage/acme/slices', { name: 'reached' })).status).toBe(303);
    for (const route of FORM_ROUTES) {
      const jar = route.admin ? serverJar : adminJar;
      requests.push({ label: `POST ${route.path} (no fields)`, run: () => post(jar, route.path, {}) });
      for (const field of Object.keys(route.fields)) {
        for (const value of BAD_FORM_VALUES)
          requests.push({
            label: `POST ${route.path} ${field}=${value.slice(0, 30)}`,
            run: () => post(jar, route.path, { ...route.fields, [field]: value }),
          });
      }
    }
    expect(await serverErrors(requests)).toEqual([]);
  });

  it('release metadata nested thousands deep is refused with 400 at staging, and nothing is staged', async () => {
    const tarball = flakeTarball('deep', 'deep');
    const sha = createHash('sha256').update(tarball).digest('base64');
    for (const field of ['outputs', 'raw_flake_metadata', 'extra_field']) {
      for (const nested of [deepArray(5000), deepObject(5000)]) {
        const body = `{"visibility":"public","${field}":${nested}}`;
        const res = await fetch(`${server.url}/upload/acme/deep/1.0.0/${tarball.length}/${sha}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' },
          body,
        });
        expect(res.status, field).toBe(400);
        expect(await res.text()).toMatch(/nested deeper than 100 levels/);
      }
    }
    // Ordinary nesting (a flake's outputs inventory) still stages.
    const ok = await fetch(`${server.url}/upload/acme/deep/1.0.0/${tarball.length}/${sha}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${publisher}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        visibility: 'public',
        outputs: {
          inventory: { packages: { children: { 'x86_64-linux': { children: { default: { what: 'package' } } } } } },
        },
      }),
    });
    expect(ok.status).toBe(200);
  });

  it('the server is still healthy and the org intact after all of it', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await api(server, orgAdmin, 'GET', '/api/v1/orgs/acme')).status).toBe(200);
    expect(server.logs().includes('Maximum call stack'), 'a stack overflow was logged').toBe(false);
  });
});
