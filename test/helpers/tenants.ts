/**
 * Two tenants on one server, as the integrity tests need them: acme (a CI token, a read token,
 * a low-trust `sandbox` slice with a write token limited to it) and evil (an admin with a public
 * `bait` slice of its own, where it puts content it wants acme to take).
 */
import { expect } from 'vitest';
import { api, createOrg, createToken, type TestServer } from './server.js';

export interface Tenants {
  acmeCI: string;
  acmeRead: string;
  evilRW: string;
  sandboxRW: string;
}

export async function setupTenants(server: TestServer): Promise<Tenants> {
  await createOrg(server, 'acme');
  await createOrg(server, 'evil');
  const acmeCI = (await createToken(server, 'acme', ['read', 'write'])).token;
  const acmeRead = (await createToken(server, 'acme', ['read'])).token;
  const evilRW = (await createToken(server, 'evil', ['read', 'write', 'admin'])).token;
  expect((await api(server, evilRW, 'POST', '/api/v1/orgs/evil/slices', { name: 'bait', public: true })).status).toBe(
    201,
  );
  expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs/acme/slices', { name: 'sandbox' })).status).toBe(
    201,
  );
  const sandboxRW = (await createToken(server, 'acme', ['read', 'write'], { slices: ['sandbox'] })).token;
  return { acmeCI, acmeRead, evilRW, sandboxRW };
}

/** Orgs acme and other, each with a read-write and a read-only token (the cache suites' setup). */
export async function setupTwoOrgs(
  server: TestServer,
): Promise<{ acmeRW: string; acmeRead: string; otherRW: string; otherRead: string }> {
  await createOrg(server, 'acme');
  await createOrg(server, 'other');
  const acmeRW = (await createToken(server, 'acme', ['read', 'write'])).token;
  const acmeRead = (await createToken(server, 'acme', ['read'])).token;
  const otherRW = (await createToken(server, 'other', ['read', 'write'])).token;
  const otherRead = (await createToken(server, 'other', ['read'])).token;
  return { acmeRW, acmeRead, otherRW, otherRead };
}
