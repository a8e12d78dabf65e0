/**
 * The policy engine over HTTP against a real server: org policies written in Cedar (validated,
 * versioned, rolled back), cross-project and cross-org grants, IP and country rules through a
 * trusted proxy, token network limits, compliance rules, explain/test, and the audit trail that
 * tells the whole story afterwards (hash-chained, exported, tamper-evident).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, api, basicAuth, createOrg, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, narInfoFor, nixStyleUpload, type FakePath } from '../helpers/paths.js';
import { githubClaims, startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { fingerprintPath, formatPublicKey, generateSigningKey, signFingerprint } from '../../src/nix/signing.js';
import { parseHash } from '../../src/nix/hash.js';
import { type ChainedFields, entryHash } from '../../src/audit/chain.js';
import type { StorePathBase } from '../../src/nix/store-path.js';

const exec = promisify(execFile);
const DE = '193.99.144.80'; // heise.de, Germany in the shipped GeoLite2 data
const US = '8.8.8.8';

let server: TestServer;
let gh: TestIssuer;
let admin: string;
const paths: Record<string, FakePath> = {};

/** GET a narinfo as `token`, as if the client were at `ip` behind the trusted proxy. */
async function narinfo(p: FakePath, token: string | undefined, ip?: string, base = '/cache'): Promise<number> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = basicAuth(token);
  if (ip) headers['X-Forwarded-For'] = ip;
  const res = await fetch(`${server.url}${base}/${p.hashPart}.narinfo`, { headers });
  await res.arrayBuffer();
  return res.status;
}

async function applyPolicy(org: string, source: string, message?: string) {
  return api<{
    version: number;
    sha256: string;
    policyIds: string[];
    error?: string;
    problems?: Array<{ message: string; line?: number; policyId?: string }>;
  }>(server, admin, 'PUT', `/api/v1/orgs/${org}/policies`, { source, ...(message ? { message } : {}) });
}

async function ciToken(claims: Record<string, unknown>): Promise<string> {
  const r = await api<{ token: string }>(server, undefined, 'POST', '/api/v1/auth/exchange', {
    token: await gh.mint(githubClaims(claims)),
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.token;
}

const floe = (args: string[]) =>
  exec(process.execPath, [FLOE_BIN, ...args], {
    env: { ...process.env, FLOE_SERVER: server.url, FLOE_TOKEN: admin },
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

beforeAll(async () => {
  // The test client is the proxy: its X-Forwarded-For is believed, as a load balancer's would be.
  server = await startFloe({
    env: { FLOE_TRUSTED_PROXIES: 'loopback', FLOE_OIDC_ALLOW_HTTP_ISSUERS: '1', FLOE_OIDC_JWKS_COOLDOWN_MS: '0' },
  });
  admin = server.adminToken;
  gh = await startIssuer({ defaultAudience: server.url });
  await createOrg(server, 'acme');
  await createOrg(server, 'globex');
  // acme's project slices are part of its members' view (new slices are not, unless asked).
  for (const s of ['proj-a', 'proj-b', 'proj-c', 'ops'])
    expect((await api(server, admin, 'POST', '/api/v1/orgs/acme/slices', { name: s, inView: true })).status).toBe(201);
  expect((await api(server, admin, 'POST', '/api/v1/orgs/globex/slices', { name: 'shared' })).status).toBe(201);
  const acmeWriter = (await createToken(server, 'acme', ['read', 'write'])).token;
  const globexWriter = (await createToken(server, 'globex', ['read', 'write'])).token;
  for (const [key, org, slice, token] of [
    ['a', 'acme', 'proj-a', acmeWriter],
    ['b', 'acme', 'proj-b', acmeWriter],
    ['c', 'acme', 'proj-c', acmeWriter],
    ['def', 'acme', 'default', acmeWriter],
    ['shared', 'globex', 'shared', globexWriter],
    ['secret', 'globex', 'default', globexWriter],
  ] as const) {
    paths[key] = fakePath(`${key}-path`);
    const up = await nixStyleUpload(`${server.url}/cache/${org}/${slice}`, basicAuth(token), paths[key]!);
    expect(up.narinfo, up.narinfoText).toBe(201);
  }
  const trust = await api(server, admin, 'POST', '/api/v1/orgs/acme/trusts', {
    provider: 'github',
    issuer: gh.issuer,
    ownerId: '1001',
    scopes: ['read', 'write'],
  });
  expect(trust.status, JSON.stringify(trust.body)).toBe(201);
});

afterAll(async () => {
  await server?.cleanup();
  await gh?.stop();
});

describe('policies are validated before they take effect', () => {
  it('a typo is refused with its line, nothing is stored, and the refusal is audited', async () => {
    const source =
      '// readers from the office only\nforbid (principal, action == Floe::Action::"cache.read", resource)\n  unless { context.sourceIP.isInRange(ip("10.0.0.0/8")) };\n';
    const v = await api<{ valid: boolean; problems: Array<{ line: number; message: string }> }>(
      server,
      admin,
      'POST',
      '/api/v1/orgs/acme/policies/validate',
      { source },
    );
    expect(v.body.valid).toBe(false);
    expect(v.body.problems).toHaveLength(1);
    expect(v.body.problems[0]).toMatchObject({ line: 3 });
    expect(v.body.problems[0]!.message).toMatch(/sourceIP/);
    const put = await applyPolicy('acme', source);
    expect(put.status).toBe(400);
    expect(put.body.error).toBe('invalid_policy');
    expect((await api<{ version: number }>(server, admin, 'GET', '/api/v1/orgs/acme/policies')).body.version).toBe(0);
    // Still Floe's defaults: the acme reader reads everything of acme.
    expect(await narinfo(paths.c!, (await createToken(server, 'acme', ['read'])).token)).toBe(200);
  });

  it("an org's policy naming another org's resources is refused", async () => {
    const put = await applyPolicy(
      'acme',
      'permit (principal, action == Floe::Action::"cache.read", resource in Floe::Org::"globex");',
    );
    expect(put.status).toBe(400);
    expect(put.body.problems![0]!.message).toMatch(
      /belongs to org "globex": acme's policies only govern acme's resources/,
    );
  });

  it('the CLI validates with FILE:LINE:COLUMN, and apply refuses an invalid file', async () => {
    const dir = server.dataDir;
    const bad = path.join(dir, 'bad.cedar');
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(bad, 'permit (principal, action, resource)\n  when { principal.clams.ref == "x" };\n'),
    );
    const r = await floe(['policy', 'validate', bad, '--org', 'acme']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${bad.replace(/[.]/g, '\\.')}:2:\\d+: \\[policy0\\] .*clams`));
    expect((await floe(['policy', 'apply', bad, '--org', 'acme'])).code).toBe(1);
    expect((await api<{ version: number }>(server, admin, 'GET', '/api/v1/orgs/acme/policies')).body.version).toBe(0);
  });
});

describe('access by project, across orgs, by network and geography', () => {
  const ACME_POLICY = `
// Project A's CI reads its own slice and project B's, not C's.
@id("proj-a-ci")
forbid (principal, action == Floe::Action::"cache.read", resource)
when { principal.claims has repository && principal.claims.repository == "acme-gh/proj-a" }
unless { resource == Floe::Slice::"acme/proj-a" || resource == Floe::Slice::"acme/proj-b" };

// The ops slice: only from Germany or the office network.
@id("ops-geo")
forbid (principal, action == Floe::Action::"cache.read", resource == Floe::Slice::"acme/ops")
unless { context.country == "DE" || context.ip.isInRange(ip("10.0.0.0/8")) };
`;

  it('applies as version 1, listed in the history', async () => {
    const put = await applyPolicy('acme', ACME_POLICY, 'project isolation');
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect(put.body).toMatchObject({ version: 1, policyIds: ['proj-a-ci', 'ops-geo'] });
    const h = await api<{ versions: Array<{ version: number; message: string }> }>(
      server,
      admin,
      'GET',
      '/api/v1/orgs/acme/policies/versions',
    );
    expect(h.body.versions).toMatchObject([{ version: 1, message: 'project isolation' }]);
  });

  it("project A's CI reads A and B, and C is indistinguishable from a missing path", async () => {
    const ciA = await ciToken({ repository: 'acme-gh/proj-a', repository_id: '3001' });
    const ciC = await ciToken({ repository: 'acme-gh/proj-c', repository_id: '3003' });
    expect(await narinfo(paths.a!, ciA)).toBe(200);
    expect(await narinfo(paths.b!, ciA)).toBe(200);
    const denied = await fetch(`${server.url}/cache/${paths.c!.hashPart}.narinfo`, {
      headers: { Authorization: basicAuth(ciA) },
    });
    const missing = await fetch(`${server.url}/cache/${'0'.repeat(32)}.narinfo`, {
      headers: { Authorization: basicAuth(ciA) },
    });
    expect(denied.status).toBe(404);
    expect(await denied.text()).toBe(await missing.text());
    expect([...denied.headers.entries()].filter(([k]) => !['date', 'x-request-id'].includes(k))).toEqual(
      [...missing.headers.entries()].filter(([k]) => !['date', 'x-request-id'].includes(k)),
    );
    expect(await narinfo(paths.c!, ciA, undefined, '/cache/acme/proj-c')).toBe(404);
    // Other projects' CI is not limited by that rule.
    expect(await narinfo(paths.c!, ciC)).toBe(200);
  });

  it('another org grants acme read access to one slice of its own, and only that', async () => {
    const put = await applyPolicy(
      'globex',
      '@id("partners")\npermit (principal, action == Floe::Action::"cache.read", resource == Floe::Slice::"globex/shared") when { principal.org == "acme" };',
    );
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    const acmeReader = (await createToken(server, 'acme', ['read'])).token;
    // Shared is not followed yet: acme's view does not consult globex at all.
    expect(await narinfo(paths.shared!, acmeReader)).toBe(404);
    expect(await narinfo(paths.shared!, acmeReader, undefined, '/cache/globex/shared')).toBe(200);
    const acmeAdmin = (await createToken(server, 'acme', ['admin'])).token;
    expect(
      (await api(server, acmeAdmin, 'POST', '/api/v1/orgs/acme/follows', { org: 'globex', slice: 'default' })).status,
    ).toBe(400);
    expect(
      (await api(server, acmeAdmin, 'POST', '/api/v1/orgs/acme/follows', { org: 'globex', slice: 'shared' })).status,
    ).toBe(201);
    expect(await narinfo(paths.shared!, acmeReader)).toBe(200);
    expect(await narinfo(paths.secret!, acmeReader)).toBe(404);
    // Reading is all a policy can grant across orgs: writes stay within the tenant.
    const acmeWriter = (await createToken(server, 'acme', ['read', 'write'])).token;
    const up = await nixStyleUpload(`${server.url}/cache/globex/shared`, basicAuth(acmeWriter), fakePath('intruder'));
    expect(up.nar).toBe(403);
  });

  it('country and CIDR rules use X-Forwarded-For from the trusted proxy', async () => {
    const reader = (await createToken(server, 'acme', ['read'])).token;
    expect(await narinfo(paths.def!, reader, US)).toBe(200); // the ops rule covers only the ops slice
    const ops = fakePath('ops-tool');
    const writer = (await createToken(server, 'acme', ['read', 'write'])).token;
    expect((await nixStyleUpload(`${server.url}/cache/acme/ops`, basicAuth(writer), ops)).narinfo).toBe(201);
    paths.ops = ops;
    expect(await narinfo(ops, reader, DE)).toBe(200);
    expect(await narinfo(ops, reader, US)).toBe(404);
    expect(await narinfo(ops, reader, '10.20.30.40')).toBe(200);
    // A chain: the client is the last address the trusted proxies did not add themselves.
    expect(await narinfo(ops, reader, `${US}, 127.0.0.1`)).toBe(404);
    expect(await narinfo(ops, reader, `${DE}, 127.0.0.1`)).toBe(200);
  });

  it('X-Forwarded-For from an untrusted peer is ignored', async () => {
    const other = await startFloe({
      dataDir: server.dataDir + '-untrusted',
      env: { FLOE_TRUSTED_PROXIES: '192.0.2.1' },
    });
    try {
      await createOrg(other, 'acme');
      const put = await api(other, other.adminToken, 'PUT', '/api/v1/orgs/acme/policies', {
        source:
          'forbid (principal, action == Floe::Action::"cache.read", resource) unless { context.country == "DE" };',
      });
      expect(put.status).toBe(201);
      const p = fakePath('geo');
      const w = (await createToken(other, 'acme', ['read', 'write'])).token;
      expect((await nixStyleUpload(`${other.url}/cache/acme/default`, basicAuth(w), p)).narinfo).toBe(201);
      const res = await fetch(`${other.url}/cache/${p.hashPart}.narinfo`, {
        headers: { Authorization: basicAuth(w), 'X-Forwarded-For': DE },
      });
      expect(res.status).toBe(404);
    } finally {
      await other.cleanup();
      await import('node:fs/promises').then((fs) =>
        fs.rm(server.dataDir + '-untrusted', { recursive: true, force: true }),
      );
    }
  });

  it('a token can carry its own network limits', async () => {
    const r = await api<{ token: string; network: unknown }>(server, admin, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      countries: ['de'],
      cidrs: ['193.99.0.0/16'],
    });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.network).toEqual({ cidrs: ['193.99.0.0/16'], countries: ['DE'] });
    expect(await narinfo(paths.def!, r.body.token, DE)).toBe(200);
    expect(await narinfo(paths.def!, r.body.token, US)).toBe(404);
    expect(await narinfo(paths.def!, r.body.token, '81.169.145.105')).toBe(404); // German, outside the CIDR
    const bad = await api<{ message: string }>(server, admin, 'POST', '/api/v1/tokens', {
      org: 'acme',
      scopes: ['read'],
      cidrs: ['10.0.0.0/33'],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/not an address or CIDR: 10\.0\.0\.0\/33/);
  });
});

describe('compliance rules', () => {
  const COMPLIANCE = `
@id("protected-pushes")
forbid (principal, action == Floe::Action::"cache.write", resource)
when { principal.authMethod == "github" }
unless { principal.claims has ref_protected && principal.claims.ref_protected == "true" };

@id("short-lived-tokens")
forbid (principal, action, resource) when { principal.lifetimeSeconds > 8 * 3600 };

@id("signed-uploads")
forbid (principal, action == Floe::Action::"cache.write", resource == Floe::Slice::"acme/proj-c")
when { context has narinfoSignatures } unless { context.narinfoSignatures.contains("acme-ci-1") };
`;
  let v2: number;

  it('apply as version 2', async () => {
    const put = await applyPolicy('acme', COMPLIANCE, 'compliance');
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    v2 = put.body.version;
    expect(v2).toBe(2);
  });

  it('only protected branches may push, and the refusal says which policy', async () => {
    const unprotected = await ciToken({ repository: 'acme-gh/app', ref_protected: 'false' });
    const up = await nixStyleUpload(`${server.url}/cache`, basicAuth(unprotected), fakePath('from-a-branch'));
    expect(up.nar).toBe(403);
    expect(up.narText).toMatch(/forbidden by org policy protected-pushes/);
    const protectedCi = await ciToken({ repository: 'acme-gh/app', ref_protected: 'true' });
    expect((await nixStyleUpload(`${server.url}/cache`, basicAuth(protectedCi), fakePath('from-main'))).narinfo).toBe(
      201,
    );
  });

  it('tokens may not live longer than 8 hours', async () => {
    const long = (await createToken(server, 'acme', ['read'], { ttl: '24h' })).token;
    const short = (await createToken(server, 'acme', ['read'], { ttl: '1h' })).token;
    expect(await narinfo(paths.def!, long)).toBe(404);
    expect(await narinfo(paths.def!, short)).toBe(200);
  });

  it('writes to proj-c require a narinfo signed by the CI key', async () => {
    const writer = (await createToken(server, 'acme', ['read', 'write'], { ttl: '1h' })).token;
    const unsigned = fakePath('unsigned');
    const r1 = await nixStyleUpload(`${server.url}/cache/acme/proj-c`, basicAuth(writer), unsigned);
    expect(r1.narinfo).toBe(403);
    expect(r1.narinfoText).toMatch(/signed-uploads/);
    expect(await narinfo(unsigned, writer)).toBe(404); // nothing partially stored
    const key = generateSigningKey('acme-ci-1');
    const signedUpload = async (name: string, sign: (fingerprint: string) => string) => {
      const p = fakePath(name);
      const info = {
        storePath: p.base,
        narHash: parseHash(p.narHash),
        narSize: p.narSize,
        references: [] as StorePathBase[],
      };
      const text =
        narInfoFor(p, 'nar/x.nar').replace(/^URL: .*$/m, `URL: nar/${p.narHash.slice(7)}.nar`) +
        `Sig: ${sign(fingerprintPath(info))}\n`;
      return nixStyleUpload(`${server.url}/cache/acme/proj-c`, basicAuth(writer), p, {
        fileName: `${p.narHash.slice(7)}.nar`,
        narinfo: text,
      });
    };
    // A real signature by a key the org does not trust yet: refused.
    expect((await signedUpload('signed-untrusted', (f) => signFingerprint(key, f))).narinfo).toBe(403);
    const trust = await floe(['signer', 'add', formatPublicKey(key), '--org', 'acme']);
    expect(trust.stdout).toBe('acme trusts signatures by acme-ci-1\n');
    // The right key name with bytes that do not verify: refused.
    const forger = generateSigningKey('acme-ci-1');
    expect((await signedUpload('signed-forged', (f) => signFingerprint(forger, f))).narinfo).toBe(403);
    const r2 = await signedUpload('signed', (f) => signFingerprint(key, f));
    expect(r2.narinfo, r2.narinfoText).toBe(201);
  });

  it('rollback to version 1 restores the earlier rules as version 3', async () => {
    const r = await api<{ version: number; sha256: string }>(
      server,
      admin,
      'POST',
      '/api/v1/orgs/acme/policies/rollback',
      { version: 1 },
    );
    expect(r.status).toBe(201);
    expect(r.body.version).toBe(3);
    const v1 = await api<{ sha256: string }>(server, admin, 'GET', '/api/v1/orgs/acme/policies/versions/1');
    expect(r.body.sha256).toBe(v1.body.sha256);
    const long = (await createToken(server, 'acme', ['read'], { ttl: '24h' })).token;
    expect(await narinfo(paths.def!, long)).toBe(200);
    expect((await floe(['policy', 'history', '--org', 'acme'])).stdout).toMatch(
      /^v3 .* rollback to version 1\nv2 .* compliance\nv1 .* project isolation$/m,
    );
  });
});

describe('explain and test', () => {
  it('explains a decision and which policy made it', async () => {
    const r = await floe([
      'policy',
      'explain',
      '--org',
      'acme',
      '--action',
      'cache.read',
      '--resource',
      'slice:ops',
      '--ip',
      US,
      '--country',
      'US',
    ]);
    expect(r.stdout).toBe('DENY: forbidden by org policy ops-geo\ndecided by: ops-geo\n');
    const ok = await floe([
      'policy',
      'explain',
      '--org',
      'acme',
      '--action',
      'cache.read',
      '--resource',
      'slice:ops',
      '--country',
      'DE',
    ]);
    expect(ok.stdout).toMatch(/^ALLOW: read scope\ndecided by: floe:baseline/);
    const cross = await floe([
      'policy',
      'explain',
      '--org',
      'globex',
      '--principal-org',
      'acme',
      '--action',
      'cache.write',
      '--resource',
      'slice:shared',
      '--scopes',
      'read,write',
    ]);
    expect(cross.stdout).toMatch(/^DENY: token belongs to another org\ndecided by: floe:guardrail/);
  });

  it('runs a file of expected decisions, exiting 1 on a mismatch, against a candidate file too', async () => {
    const fs = await import('node:fs/promises');
    const cases = path.join(server.dataDir, 'cases.json');
    await fs.writeFile(
      cases,
      JSON.stringify({
        cases: [
          {
            name: 'proj-a CI reads B',
            principal: {
              identity: { provider: 'github', issuer: gh.issuer, claims: { repository: 'acme-gh/proj-a' } },
            },
            action: 'cache.read',
            resource: { slice: 'proj-b' },
            expect: 'allow',
          },
          {
            name: 'proj-a CI cannot read C',
            principal: {
              identity: { provider: 'github', issuer: gh.issuer, claims: { repository: 'acme-gh/proj-a' } },
            },
            action: 'cache.read',
            resource: { slice: 'proj-c' },
            expect: 'deny',
          },
          {
            name: 'anonymous cannot write',
            principal: { anonymous: true },
            action: 'cache.write',
            resource: { slice: 'default' },
            expect: 'deny',
          },
        ],
      }),
    );
    const r = await floe(['policy', 'test', cases, '--org', 'acme']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 passed, 0 failed/);
    const candidate = path.join(server.dataDir, 'open.cedar');
    await fs.writeFile(candidate, '@id("open") permit (principal, action == Floe::Action::"cache.read", resource);\n');
    const r2 = await floe(['policy', 'test', cases, '--org', 'acme', '--policies', candidate]);
    expect(r2.code).toBe(1);
    expect(r2.stdout).toMatch(/FAIL {2}proj-a CI cannot read C: allow \(expected deny\) by floe:baseline/);
    // Testing a candidate changes nothing.
    expect((await api<{ version: number }>(server, admin, 'GET', '/api/v1/orgs/acme/policies')).body.version).toBe(3);
  });
});

describe('the audit trail', () => {
  it('tells the story: logins, tokens, policies, writes and denials, with who, from where and why', async () => {
    const r = await api<{
      entries: Array<{
        seq: number;
        action: string;
        outcome: string;
        actor: string;
        target: string;
        reason: string;
        detail: Record<string, unknown>;
      }>;
    }>(server, admin, 'GET', '/api/v1/orgs/acme/audit?limit=1000');
    const e = r.body.entries;
    const has = (pred: (x: (typeof e)[number]) => boolean) => expect(e.some(pred)).toBe(true);
    has((x) => x.action === 'org.create' && x.target === 'org acme');
    has((x) => x.action === 'slice.create' && x.target === 'slice acme/proj-a');
    has((x) => x.action === 'trust.add');
    has((x) => x.action === 'auth.login' && x.outcome === 'allow' && x.target.startsWith('github:acme-gh/proj-a'));
    has(
      (x) =>
        x.action === 'token.create' &&
        (x.detail.network as { countries: string[] } | undefined)?.countries?.[0] === 'DE',
    );
    has((x) => x.action === 'policy.apply' && x.outcome === 'deny' && x.reason === 'policies did not validate');
    has((x) => x.action === 'policy.apply' && x.outcome === 'event' && x.detail.version === 2);
    has((x) => x.action === 'policy.rollback' && x.detail.from === 1);
    has((x) => x.action === 'signer.add' && x.target === 'signer acme/acme-ci-1');
    has((x) => x.action === 'cache.write' && x.outcome === 'event' && x.target.includes('-from-main'));
    has(
      (x) =>
        x.action === 'cache.write' && x.outcome === 'deny' && x.reason === 'forbidden by org policy protected-pushes',
    );
    has(
      (x) =>
        x.action === 'cache.read' &&
        x.outcome === 'deny' &&
        x.reason === 'forbidden by org policy ops-geo' &&
        x.detail.country === 'US' &&
        x.detail.ip === US,
    );
    has(
      (x) =>
        x.action === 'cache.read' &&
        x.outcome === 'deny' &&
        x.reason === 'forbidden by org policy proj-a-ci' &&
        x.actor.includes('proj-a'),
    );
    // Sequence numbers only grow, and no other org's entries leak in.
    expect(e.map((x) => x.seq)).toEqual([...e.map((x) => x.seq)].sort((a, b) => a - b));
    expect(e.some((x) => x.target.includes('globex/default'))).toBe(false);
  });

  it('filters, exports JSONL, and summarizes reads per principal and path', async () => {
    const denied = await api<{ entries: Array<{ outcome: string; action: string }> }>(
      server,
      admin,
      'GET',
      '/api/v1/orgs/acme/audit?outcome=deny&action=cache.',
    );
    expect(denied.body.entries.length).toBeGreaterThan(2);
    expect(denied.body.entries.every((x) => x.outcome === 'deny' && x.action.startsWith('cache.'))).toBe(true);
    const jsonl = await floe(['audit', '--org', 'acme', '--action', 'policy.', '--jsonl']);
    const lines = jsonl.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { action: string });
    // A refusal repeated within the minute is a counted summary, written when the log is read.
    expect(lines.map((l) => l.action).sort()).toEqual([
      'policy.apply',
      'policy.apply',
      'policy.apply',
      'policy.apply',
      'policy.rollback',
    ]);
    const reads = await api<{ reads: Array<{ storePath: string; narinfoHits: number; actor: string }> }>(
      server,
      admin,
      'GET',
      '/api/v1/orgs/acme/reads',
    );
    const ops = reads.body.reads.filter((x) => x.storePath === paths.ops!.base);
    expect(ops.reduce((n, x) => n + x.narinfoHits, 0)).toBeGreaterThanOrEqual(3);
  });

  it('is hash-chained: verify passes, a rewrite is caught against an anchor, an edited entry is pinpointed', async () => {
    const ok = await floe(['audit', 'verify']);
    expect(ok.code, ok.stderr).toBe(0);
    const anchor = /^audit log intact: \d+ entries, head (\d+:[0-9a-f]{64})$/m.exec(ok.stdout)![1]!;
    // The head also goes to the log (shipped elsewhere), to anchor later checks.
    expect(server.logs()).toMatch(/"auditSeq":\d+,"auditHead":"[0-9a-f]{64}","msg":"audit checkpoint"/);
    const db = new Database(path.join(server.dataDir, 'floe.sqlite'));
    try {
      // Someone with database access rewrites an entry and recomputes every later hash: the chain
      // alone cannot tell, the anchor can.
      type Row = ChainedFields & { prev_hash: string; hash: string };
      const rows = db.prepare('select * from audit_log order by seq').all() as Row[];
      const rewritten = rows.find((r) => r.action === 'policy.apply' && r.outcome === 'event')!;
      let prev = rewritten.prev_hash;
      for (const r of rows.filter((x) => x.seq >= rewritten.seq)) {
        const changed = r.seq === rewritten.seq ? { ...r, reason: 'nothing happened here' } : r;
        const hash = entryHash(prev, changed);
        db.prepare('update audit_log set reason = ?, prev_hash = ?, hash = ? where seq = ?').run(
          changed.reason,
          prev,
          hash,
          r.seq,
        );
        prev = hash;
      }
      expect((await floe(['audit', 'verify'])).code).toBe(0);
      const anchored = await floe(['audit', 'verify', '--anchor', anchor]);
      expect(anchored.code).toBe(1);
      expect(anchored.stderr).toContain(
        `audit log chain broken at entry ${anchor.split(':')[0]}: differs from the anchor: the log was rewritten up to here`,
      );
      expect((await floe(['audit', 'verify', '--anchor', 'nonsense'])).stderr).toMatch(/--anchor must be SEQ:HASH/);
      const victim = db.prepare("select seq from audit_log where action = 'policy.rollback'").get() as { seq: number };
      db.prepare("update audit_log set reason = 'nothing to see' where seq = ?").run(victim.seq);
      const bad = await floe(['audit', 'verify']);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain(
        `audit log chain broken at entry ${victim.seq}: content does not match its hash (altered)`,
      );
    } finally {
      db.close();
    }
  });
});
