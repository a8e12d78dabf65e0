import { describe, expect, it } from 'vitest';
import type { Principal, Scope } from '../identity/principal.js';
import { Authorizer, decide, type OrgPolicySet } from './authorize.js';
import { CedarPolicySet, validatePolicyFile } from './cedar.js';

const acme = { id: 'o-acme', name: 'acme' };
const org = { type: 'org' as const, org: acme };

function admin(slices: string[] | null, scopes: Scope[] = ['admin']): Principal {
  return {
    kind: 'token',
    tokenId: `t-${slices?.join(',') ?? '*'}`,
    subject: 'ops',
    org: acme,
    scopes: new Set(scopes),
    slices,
    issuedAt: 1000,
    expiresAt: 4600,
    authMethod: 'token',
  };
}

describe('slices are a ceiling on administration', () => {
  it('an unlimited admin administers the org and any of its slices', () => {
    expect(decide(admin(null), 'org.admin', org).allowed).toBe(true);
    expect(decide(admin(null), 'org.admin', org, { adminSlices: ['a', 'b'] }).allowed).toBe(true);
  });

  it('a slice-limited admin administers its slices only, and nothing org-wide', () => {
    const limited = admin(['a', 'b']);
    expect(decide(limited, 'org.admin', org, { adminSlices: ['a'] }).allowed).toBe(true);
    expect(decide(limited, 'org.admin', org, { adminSlices: ['a', 'b'] }).allowed).toBe(true);
    const other = decide(limited, 'org.admin', org, { adminSlices: ['a', 'c'] });
    expect(other.allowed).toBe(false);
    expect(other.reason).toBe('token is limited to slices a, b: it cannot administer c');
    const wide = decide(limited, 'org.admin', org);
    expect(wide.allowed).toBe(false);
    expect(wide.reason).toMatch(
      /^token is limited to slices a, b: org-wide administration .* needs a token not limited to slices$/,
    );
    expect(decide(limited, 'org.admin', org, { adminSlices: [] }).allowed).toBe(true);
  });

  it('no org policy lifts the ceiling', () => {
    const v = validatePolicyFile('@id("all-admin")\npermit (principal, action, resource);', 'acme');
    expect(v.problems).toEqual([]);
    const set: OrgPolicySet = {
      orgId: acme.id,
      version: 1,
      set: new CedarPolicySet(`test:guard:${Math.random()}`, v.policies),
    };
    expect(decide(admin(['a']), 'org.admin', org, {}, set).allowed).toBe(false);
    expect(decide(admin(['a']), 'org.admin', org, { adminSlices: ['a'] }, set).allowed).toBe(true);
  });

  it('the decision memo tells confined and org-wide administration apart', () => {
    const v = validatePolicyFile('@id("all-admin")\npermit (principal, action, resource);', 'acme');
    const set: OrgPolicySet = {
      orgId: acme.id,
      version: 1,
      set: new CedarPolicySet(`test:memo:${Math.random()}`, v.policies),
    };
    const authz = new Authorizer({ record: () => {} }, { forOrg: () => set });
    const p = admin(['a']);
    expect(authz.authorize(p, 'org.admin', org, { adminSlices: ['a'] }).allowed).toBe(true);
    expect(authz.authorize(p, 'org.admin', org).allowed).toBe(false);
    expect(authz.authorize(p, 'org.admin', org, { adminSlices: ['z'] }).allowed).toBe(false);
  });
});
