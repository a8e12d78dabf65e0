import { describe, expect, it } from 'vitest';
import { FloeError } from '../errors.js';
import type { Principal, Scope } from '../identity/principal.js';
import { Authorizer } from '../policy/authorize.js';
import { AdminGuard } from './guard.js';

const acme = { id: 'o-acme', name: 'acme', createdAt: '2026-01-01T00:00:00Z' };
const globex = { id: 'o-globex', name: 'globex', createdAt: '2026-01-01T00:00:00Z' };
// The org table, as OrgService answers it: by exact name.
const orgs = {
  findOrg: async (name: string) => [acme, globex].find((o) => o.name === name),
  orgNames: async () => [acme.name, globex.name],
  listSlices: async () => [],
};
const denials: string[] = [];
const authorizer = new Authorizer({ record: (_p, action, _r, d) => void (d.allowed || denials.push(action)) });
const guard = new AdminGuard(orgs, authorizer);

function token(org: { id: string; name: string }, scopes: Scope[], slices: string[] | null = null): Principal {
  return {
    kind: 'token',
    tokenId: `t-${Math.random()}`,
    subject: 'ci',
    org: { id: org.id, name: org.name },
    scopes: new Set(scopes),
    slices,
    issuedAt: 1000,
    expiresAt: 4_000_000_000,
    authMethod: 'token',
  };
}
const serverAdmin: Principal = { kind: 'server-admin', tokenId: 'root', subject: 'admin' };

async function refusal(run: () => Promise<unknown> | unknown): Promise<{ code: string; message: string }> {
  try {
    await run();
  } catch (err) {
    if (err instanceof FloeError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('AdminGuard', () => {
  it("gives the org to its admins and to the server admin, with the API's refusals to everyone else", async () => {
    expect((await guard.orgAdmin(token(acme, ['admin']), 'acme')).id).toBe(acme.id);
    expect((await guard.orgAdmin(serverAdmin, 'globex')).id).toBe(globex.id);
    // Another org's admin: "no such org" and "not yours" read the same, no reason given.
    const foreign = await refusal(() => guard.orgAdmin(token(globex, ['admin']), 'acme'));
    const missing = await refusal(() => guard.orgAdmin(token(globex, ['admin']), 'acne'));
    expect(foreign).toEqual({ code: 'forbidden', message: 'not allowed to manage org "acme"' });
    expect(missing).toEqual({ code: 'forbidden', message: 'not allowed to manage org "acne"' });
    // The org's own read token learns why; a near miss of its own org's name gets a hint.
    expect((await refusal(() => guard.orgAdmin(token(acme, ['read']), 'acme'))).message).toMatch(
      /^not allowed to manage org "acme": .+/,
    );
    expect((await refusal(() => guard.orgAdmin(token(acme, ['admin']), 'acne'))).message).toBe(
      'not allowed to manage org "acne" (did you mean "acme", your token\'s org?)',
    );
    // The server admin may know every org: a 404 naming the closest one.
    expect(await refusal(() => guard.orgAdmin(serverAdmin, 'globx'))).toEqual({
      code: 'not_found',
      message: 'no org named "globx" (did you mean "globex"?)',
    });
  });

  it('a slice-limited admin administers its slices, never the whole org', async () => {
    const limited = token(acme, ['admin'], ['dev']);
    expect((await guard.orgAdmin(limited, 'acme', ['dev'])).id).toBe(acme.id);
    expect((await refusal(() => guard.orgAdmin(limited, 'acme'))).code).toBe('forbidden');
    expect((await refusal(() => guard.orgAdmin(limited, 'acme', ['dev', 'prod']))).code).toBe('forbidden');
    expect(guard.mayAdminOrg(limited, acme, ['dev'])).toBe(true);
    expect(guard.mayAdminOrg(limited, acme)).toBe(false);
  });

  it('refuses without a route guard too (defence in depth), and records the denial', async () => {
    denials.length = 0;
    const writer = token(acme, ['write']);
    expect((await refusal(() => guard.assertOrgAdmin(writer, acme))).message).toMatch(
      /^not allowed to manage org "acme": /,
    );
    expect(denials).toEqual(['org.admin']);
    expect(await refusal(() => guard.serverAdmin(token(acme, ['admin']), 'adding upstreams'))).toMatchObject({
      code: 'forbidden',
      message: expect.stringMatching(/^adding upstreams needs the server admin token: /),
    });
    expect(guard.isServerAdmin(serverAdmin)).toBe(true);
    expect(guard.isServerAdmin({ kind: 'anonymous' })).toBe(false);
  });
});
