/**
 * PURE: the hypothetical callers and resources of `floe policy test` and the web's policy tester:
 * their JSON shape (zod) and the Principal/Resource each stands for, so an org admin can ask
 * "would this be allowed?" of the real decision function without minting anything.
 */
import { z } from 'zod';
import type { Principal, Scope } from '../identity/principal.js';
import type { Org } from '../org/service.js';
import { AUTH_METHODS, SCOPES, VISIBILITIES } from '../wire/access.js';
import { ACTIONS, type Action, type Resource } from './actions.js';
import { isValidCidr } from './network.js';

// Hypothetical addresses are parsed by the network guardrails: refuse what they cannot parse.
const CIDR = z.string().max(50).refine(isValidCidr, 'expected an IP address or CIDR range');
const IP_ADDRESS = z
  .string()
  .max(50)
  .refine((ip) => !ip.includes('/') && isValidCidr(ip), 'expected an IP address');
const COUNTRY = z.string().regex(/^[A-Za-z]{2}$/, 'expected a two-letter country code');

export const testPrincipal = z.union([
  z.object({ anonymous: z.literal(true) }),
  z.object({
    org: z.string().optional(),
    subject: z.string().max(200).optional(),
    scopes: z.array(z.enum(SCOPES)).min(1).optional(),
    slices: z.array(z.string()).nullable().optional(),
    authMethod: z.enum(AUTH_METHODS).optional(),
    lifetimeSeconds: z.number().int().positive().optional(),
    identity: z
      .object({
        provider: z.string(),
        issuer: z.string(),
        claims: z.record(z.string(), z.union([z.string(), z.array(z.string())])),
      })
      .optional(),
    network: z.object({ cidrs: z.array(CIDR).max(100), countries: z.array(COUNTRY).max(300) }).optional(),
    deploy: z
      .array(z.object({ org: z.string(), flake: z.string(), requirement: z.string(), attr: z.string() }))
      .optional(),
  }),
]);
export const testCase = z.object({
  name: z.string().max(200).optional(),
  principal: testPrincipal,
  action: z.enum(ACTIONS as [Action, ...Action[]]),
  resource: z.union([
    z.object({ slice: z.string() }),
    z.object({ flake: z.string(), visibility: z.enum(VISIBILITIES).optional() }),
    z.object({ org: z.literal(true) }),
  ]),
  client: z.object({ ip: IP_ADDRESS.optional(), country: COUNTRY.optional() }).optional(),
  facts: z
    .object({
      inDeployClosure: z.boolean().optional(),
      deployFlake: z.boolean().optional(),
      narinfoSignatures: z.array(z.string()).optional(),
    })
    .optional(),
  expect: z.enum(['allow', 'deny']).optional(),
});
export function hypotheticalPrincipal(
  spec: z.infer<typeof testPrincipal>,
  org: Org,
  otherOrgs: Map<string, string>,
  client: { ip?: string; country?: string } | undefined,
  i: number,
): Principal {
  const c = { ip: client?.ip ?? '127.0.0.1', ...(client?.country ? { country: client.country.toUpperCase() } : {}) };
  if ('anonymous' in spec) return { kind: 'anonymous', client: c };
  const orgName = spec.org ?? org.name;
  const now = Math.floor(Date.now() / 1000);
  return {
    kind: 'token',
    tokenId: `test-case-${i}`,
    subject: spec.subject ?? 'test',
    org: { id: orgName === org.name ? org.id : otherOrgs.get(orgName)!, name: orgName },
    scopes: new Set((spec.scopes ?? ['read']) as Scope[]),
    slices: spec.slices ?? null,
    issuedAt: now,
    expiresAt: now + (spec.lifetimeSeconds ?? 3600),
    authMethod:
      spec.authMethod ?? (spec.deploy ? 'device' : spec.identity ? (spec.identity.provider as 'oidc') : 'token'),
    ...(spec.identity ? { identity: spec.identity } : {}),
    ...(spec.network ? { network: spec.network } : {}),
    ...(spec.deploy ? { deploy: spec.deploy } : {}),
    client: c,
  };
}

export function hypotheticalResource(
  spec: z.infer<typeof testCase>['resource'],
  org: Org,
  slices: Map<string, { id: string; name: string; public: boolean }>,
): Resource {
  const o = { id: org.id, name: org.name };
  if ('slice' in spec) {
    const s = slices.get(spec.slice);
    return {
      type: 'slice',
      org: o,
      slice: s
        ? { id: s.id, name: s.name, public: s.public }
        : { id: `test:${spec.slice}`, name: spec.slice, public: false },
    };
  }
  if ('flake' in spec)
    return { type: 'flake', org: o, flake: { name: spec.flake, visibility: spec.visibility ?? 'private' } };
  return { type: 'org', org: o };
}
