import { describe, expect, it } from 'vitest';
import { trustSpecFromFlags } from './trust-spec.js';

describe('trustSpecFromFlags', () => {
  it('builds each provider from flags', () => {
    expect(
      trustSpecFromFlags({ provider: 'github', ownerId: '123', ref: ['refs/heads/main'], scope: 'read,write' }),
    ).toEqual({
      provider: 'github',
      scopes: ['read', 'write'],
      ownerId: '123',
      refs: ['refs/heads/main'],
    });
    expect(
      trustSpecFromFlags({ provider: 'gitlab', namespaceId: '7', projectId: ['9'], scope: 'read', ttl: '2h' }),
    ).toMatchObject({ namespaceId: '7', projectIds: ['9'], ttlSeconds: 7200 });
    expect(
      trustSpecFromFlags({
        provider: 'oidc',
        issuer: 'https://idp',
        claim: ['groups=a', 'groups=b', 'tid=x'],
        scope: 'read',
      }),
    ).toMatchObject({
      claims: { groups: ['a', 'b'], tid: ['x'] },
    });
  });
  it('says which flag is missing', () => {
    expect(() => trustSpecFromFlags({ provider: 'github', scope: 'read' })).toThrow(/--owner-id/);
    expect(() => trustSpecFromFlags({ provider: 'aws', accountId: '123456789012', scope: 'read' })).toThrow(/--arn/);
    expect(() => trustSpecFromFlags({ scope: 'read' })).toThrow(/--provider/);
  });
});
