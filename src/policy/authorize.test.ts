import { describe, expect, it } from 'vitest';
import type { Principal, Scope } from '../identity/principal.js';
import type { SliceResource } from './actions.js';
import { decide } from './authorize.js';

const acme = { id: 'o1', name: 'acme' };
const other = { id: 'o2', name: 'other' };
const slice = (isPublic: boolean, name = 'default', org = acme): SliceResource => ({ type: 'slice', org, slice: { id: `${org.id}-${name}`, name, public: isPublic } });
const token = (org: typeof acme, scopes: Scope[], slices: string[] | null = null): Principal => ({ kind: 'token', tokenId: 't', subject: 's', org, scopes: new Set(scopes), slices });
const anon: Principal = { kind: 'anonymous' };
const admin: Principal = { kind: 'server-admin', tokenId: 'a', subject: 'admin' };

describe('decide (deny by default)', () => {
  const cases: Array<[string, Principal, 'cache.read' | 'cache.write' | 'org.admin' | 'server.admin', Parameters<typeof decide>[2], boolean]> = [
    ['anonymous reads a private slice', anon, 'cache.read', slice(false), false],
    ['anonymous reads a public slice', anon, 'cache.read', slice(true), true],
    ['anonymous writes a public slice', anon, 'cache.write', slice(true), false],
    ['member with read reads', token(acme, ['read']), 'cache.read', slice(false), true],
    ['member with write only cannot read', token(acme, ['write']), 'cache.read', slice(false), false],
    ['member with read cannot write', token(acme, ['read']), 'cache.write', slice(false), false],
    ['member with write writes', token(acme, ['write']), 'cache.write', slice(false), true],
    ['admin scope reads and writes', token(acme, ['admin']), 'cache.write', slice(false), true],
    ['other org cannot read', token(other, ['read', 'write', 'admin']), 'cache.read', slice(false), false],
    ['other org cannot write a public slice', token(other, ['write']), 'cache.write', slice(true), false],
    ['slice-limited token reads its slice', token(acme, ['read'], ['ci']), 'cache.read', slice(false, 'ci'), true],
    ['slice-limited token cannot read another slice', token(acme, ['read'], ['ci']), 'cache.read', slice(false), false],
    ['org admin administers its org', token(acme, ['admin']), 'org.admin', { type: 'org', org: acme }, true],
    ['read token cannot administer', token(acme, ['read', 'write']), 'org.admin', { type: 'org', org: acme }, false],
    ['org admin cannot administer another org', token(acme, ['admin']), 'org.admin', { type: 'org', org: other }, false],
    ['org admin is not server admin', token(acme, ['admin']), 'server.admin', { type: 'server' }, false],
    ['server admin may do anything', admin, 'server.admin', { type: 'server' }, true],
  ];
  for (const [name, p, action, resource, allowed] of cases) {
    it(name, () => {
      const d = decide(p, action, resource);
      expect(d.allowed).toBe(allowed);
      expect(d.reason).not.toBe('');
    });
  }
});
