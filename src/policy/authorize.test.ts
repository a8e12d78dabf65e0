import { describe, expect, it } from 'vitest';
import type { Principal, Scope } from '../identity/principal.js';
import type { Resource } from './actions.js';
import { Authorizer, decide, type OrgPolicySet } from './authorize.js';
import { CedarPolicySet, validatePolicyFile } from './cedar.js';
import { ipInAnyRange, normalizeIp } from './network.js';

const acme = { id: 'o-acme', name: 'acme' };
const globex = { id: 'o-globex', name: 'globex' };
const slice = (org = acme, name = 'default', pub = false): Resource => ({
  type: 'slice',
  org,
  slice: { id: `${org.id}/${name}`, name, public: pub },
});
const flake = (org = acme, name = 'hello', visibility: 'public' | 'unlisted' | 'private' = 'private'): Resource => ({
  type: 'flake',
  org,
  flake: { name, visibility },
});

function token(scopes: Scope[], over: Partial<Extract<Principal, { kind: 'token' }>> = {}): Principal {
  return {
    kind: 'token',
    tokenId: `t-${Math.random()}`,
    subject: 'ci',
    org: acme,
    scopes: new Set(scopes),
    slices: null,
    issuedAt: 1000,
    expiresAt: 4600,
    authMethod: 'token',
    client: { ip: '10.1.2.3', country: 'DE' },
    ...over,
  };
}

function orgSet(source: string, org = acme, version = 1): OrgPolicySet {
  const v = validatePolicyFile(source, org.name);
  expect(v.problems).toEqual([]);
  return { orgId: org.id, version, set: new CedarPolicySet(`test:${org.id}:${version}:${Math.random()}`, v.policies) };
}

describe('guardrails and baseline (no org policies)', () => {
  it('deny by default: anonymous reads only public things and writes nothing', () => {
    const anon: Principal = { kind: 'anonymous' };
    expect(decide(anon, 'cache.read', slice()).allowed).toBe(false);
    expect(decide(anon, 'cache.read', slice(acme, 'pub', true)).allowed).toBe(true);
    expect(decide(anon, 'cache.write', slice(acme, 'pub', true)).allowed).toBe(false);
    expect(decide(anon, 'flake.read', flake(acme, 'x', 'unlisted')).allowed).toBe(true);
    expect(decide(anon, 'flake.read', flake()).allowed).toBe(false);
    expect(decide(anon, 'org.admin', { type: 'org', org: acme }).allowed).toBe(false);
  });

  it('scopes are ceilings and tenants are isolated', () => {
    expect(decide(token(['read']), 'cache.read', slice()).allowed).toBe(true);
    expect(decide(token(['read']), 'cache.write', slice()).reason).toBe('token lacks the write scope');
    expect(decide(token(['write']), 'cache.read', slice()).allowed).toBe(false);
    expect(decide(token(['admin']), 'cache.write', slice(globex)).reason).toBe('token belongs to another org');
    expect(decide(token(['read']), 'cache.read', slice(globex)).allowed).toBe(false);
    expect(decide(token(['read'], { slices: ['a'] }), 'cache.read', slice(acme, 'b')).reason).toBe(
      'token is limited to other slices',
    );
    expect(decide(token(['admin']), 'server.admin', { type: 'server' }).allowed).toBe(false);
  });

  it('token network limits: CIDRs and countries', () => {
    const limited = (client: { ip: string; country?: string }) =>
      token(['read'], { network: { cidrs: ['10.0.0.0/8', '2001:db8::/32'], countries: ['DE'] }, client });
    expect(decide(limited({ ip: '10.9.9.9', country: 'DE' }), 'cache.read', slice()).allowed).toBe(true);
    expect(decide(limited({ ip: '192.0.2.1', country: 'DE' }), 'cache.read', slice()).reason).toMatch(
      /limited to 10\.0\.0\.0\/8/,
    );
    expect(decide(limited({ ip: '10.9.9.9', country: 'US' }), 'cache.read', slice()).reason).toMatch(/clients in DE/);
    expect(decide(limited({ ip: '10.9.9.9' }), 'cache.read', slice()).allowed).toBe(false); // unknown country
  });

  it('deploy-only tokens read their closure and nothing else', () => {
    const device = token(['read', 'write', 'admin'], {
      deploy: [{ org: 'acme', flake: 'infra', requirement: '*', attr: 'nixosConfigurations.web' }],
      authMethod: 'device',
    });
    expect(decide(device, 'cache.read', slice(), { inDeployClosure: true }).allowed).toBe(true);
    expect(decide(device, 'cache.read', slice(), { inDeployClosure: false }).allowed).toBe(false);
    expect(decide(device, 'cache.read', slice(acme, 'pub', true)).allowed).toBe(false);
    expect(decide(device, 'cache.write', slice(), { inDeployClosure: true }).allowed).toBe(false);
    expect(decide(device, 'flake.read', flake()).allowed).toBe(false);
    expect(decide(device, 'flake.read', flake(), { deployFlake: true }).allowed).toBe(true);
    expect(decide(device, 'org.admin', { type: 'org', org: acme }).allowed).toBe(false);
  });

  it('addresses: IPv4-mapped IPv6 is IPv4; ranges of the other family never match', () => {
    expect(normalizeIp('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(ipInAnyRange('::ffff:10.1.2.3', ['10.0.0.0/8'])).toBe(true);
    expect(ipInAnyRange('2001:db8::1', ['10.0.0.0/8'])).toBe(false);
    expect(ipInAnyRange('not an ip', ['0.0.0.0/0'])).toBe(false);
  });
});

describe('org policies (Cedar)', () => {
  it('forbid beats the baseline, and the decision names the policy', () => {
    const set = orgSet(
      '@id("eu-only")\nforbid (principal, action == Floe::Action::"cache.read", resource) unless { ["DE", "FR"].contains(context.country) };',
    );
    const de = decide(token(['read']), 'cache.read', slice(), {}, set);
    expect(de).toMatchObject({ allowed: true, decidedBy: ['floe:baseline'], policyVersion: 1 });
    const us = decide(token(['read'], { client: { ip: '8.8.8.8', country: 'US' } }), 'cache.read', slice(), {}, set);
    expect(us).toMatchObject({ allowed: false, decidedBy: ['eu-only'], reason: 'forbidden by org policy eu-only' });
  });

  it('permits widen access for readers of other orgs, but never writes or past scope ceilings', () => {
    const set = orgSet(
      '@id("acme-reads-shared")\npermit (principal, action == Floe::Action::"cache.read", resource == Floe::Slice::"globex/shared") when { principal.org == "acme" };',
      globex,
    );
    expect(decide(token(['read']), 'cache.read', slice(globex, 'shared'), {}, set)).toMatchObject({
      allowed: true,
      decidedBy: ['acme-reads-shared'],
    });
    expect(decide(token(['read']), 'cache.read', slice(globex, 'default'), {}, set).allowed).toBe(false);
    expect(decide(token(['write']), 'cache.read', slice(globex, 'shared'), {}, set).allowed).toBe(false);
    const greedy = orgSet('permit (principal, action, resource);', globex);
    expect(decide(token(['admin']), 'cache.write', slice(globex, 'shared'), {}, greedy).reason).toBe(
      'token belongs to another org',
    );
    expect(decide({ kind: 'anonymous' }, 'cache.write', slice(globex), {}, greedy).allowed).toBe(false);
  });

  it('claims, lifetime and narinfo signatures are visible to compliance rules', () => {
    const set = orgSet(`
@id("protected-pushes")
forbid (principal, action == Floe::Action::"cache.write", resource)
when { principal.authMethod == "gitlab" } unless { principal.claims has ref_protected && principal.claims.ref_protected == "true" };
@id("short-tokens")
forbid (principal, action, resource) when { principal.lifetimeSeconds > 8 * 3600 };
@id("signed-writes")
forbid (principal, action == Floe::Action::"cache.write", resource)
when { context has narinfoSignatures } unless { context.narinfoSignatures.contains("acme-ci-1") };
@id("ops-group")
forbid (principal, action == Floe::Action::"cache.read", resource == Floe::Slice::"acme/ops") unless { principal.hasTag("groups") && principal.getTag("groups").contains("ops") };
`);
    const ci = (claims: Record<string, string | string[]>) =>
      token(['read', 'write'], {
        authMethod: 'gitlab',
        identity: { provider: 'gitlab', issuer: 'https://gitlab.example', claims },
      });
    expect(decide(ci({ ref_protected: 'true' }), 'cache.write', slice(), {}, set).allowed).toBe(true);
    expect(decide(ci({ ref_protected: 'false' }), 'cache.write', slice(), {}, set).decidedBy).toEqual([
      'protected-pushes',
    ]);
    expect(decide(token(['read'], { expiresAt: 1000 + 9 * 3600 }), 'cache.read', slice(), {}, set).decidedBy).toEqual([
      'short-tokens',
    ]);
    expect(decide(token(['write']), 'cache.write', slice(), { narinfoSignatures: ['acme-ci-1'] }, set).allowed).toBe(
      true,
    );
    expect(decide(token(['write']), 'cache.write', slice(), { narinfoSignatures: [] }, set).decidedBy).toEqual([
      'signed-writes',
    ]);
    expect(decide(ci({ groups: ['dev', 'ops'] }), 'cache.read', slice(acme, 'ops'), {}, set).allowed).toBe(true);
    expect(decide(ci({ groups: ['dev'] }), 'cache.read', slice(acme, 'ops'), {}, set).decidedBy).toEqual(['ops-group']);
  });

  it('validation catches what "success" hides, names lines, and refuses other orgs and reserved ids', () => {
    const typo = validatePolicyFile('// ok\npermit (principal, action, resource)\n  when { context.sourceIP == "x" };');
    expect(typo.problems).toHaveLength(1);
    expect(typo.problems[0]).toMatchObject({ policyId: 'policy0', line: 3 });
    expect(typo.problems[0]!.message).toMatch(/sourceIP/);
    const syntax = validatePolicyFile('permit (principal, action, resource) when { 1 + };');
    expect(syntax.problems[0]!.message).toMatch(/unexpected token/);
    const foreign = validatePolicyFile('permit (principal, action, resource in Floe::Org::"globex");', 'acme');
    expect(foreign.problems[0]!.message).toMatch(/belongs to org "globex"/);
    expect(validatePolicyFile('@id("floe:x") permit (principal, action, resource);').problems[0]!.message).toMatch(
      /reserved/,
    );
    expect(
      validatePolicyFile(
        '@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);',
      ).problems[0]!.message,
    ).toMatch(/duplicate/);
  });
});

describe('Authorizer', () => {
  it("uses the resource's org policies only, memoizes per caller, and audits every decision", () => {
    const records: boolean[] = [];
    const acmeSet = orgSet('forbid (principal, action, resource);');
    const authz = new Authorizer(
      { record: (_p, _a, _r, d) => records.push(d.allowed) },
      { forOrg: (id) => (id === acme.id ? acmeSet : undefined) },
    );
    const globexReader = token(['read'], { org: globex });
    // acme's blanket forbid never reaches globex's resources.
    expect(authz.authorize(globexReader, 'cache.read', slice(globex)).allowed).toBe(true);
    const t = token(['read']);
    expect(authz.authorize(t, 'cache.read', slice()).allowed).toBe(false);
    expect(authz.authorize(t, 'cache.read', slice()).allowed).toBe(false);
    expect(records).toEqual([true, false, false]);
    expect(
      authz.authorize({ kind: 'server-admin', tokenId: 'a', subject: 'admin' }, 'cache.write', slice()).allowed,
    ).toBe(true);
  });
});
