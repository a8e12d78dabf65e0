/**
 * Floe's built-in rules, in two layers, both pure:
 * - `guardrail`: denials no org policy can override (tenant isolation for writes, scope ceilings,
 *   slice limits on access and on administration, deploy-only tokens, token network limits,
 *   deny-by-default for anonymous).
 * - `baseline`: what Floe grants when an org has written no policy (same-org tokens within their
 *   scopes, public slices and public/unlisted flakes). Org policies may add permits and forbids.
 */
import type { Principal, Scope } from '../identity/principal.js';
import type { Action, RequestFacts, Resource } from './actions.js';
import { ipInAnyRange } from './network.js';

export interface Verdict {
  allowed: boolean;
  reason: string;
}

type TokenPrincipal = Extract<Principal, { kind: 'token' }>;

const hasScope = (p: TokenPrincipal, ...wanted: Scope[]) => wanted.some((s) => p.scopes.has(s));

/** The scope a token must carry for an action (admin implies all). */
const SCOPE_FOR: Record<Exclude<Action, 'server.admin'>, Scope> = {
  'cache.read': 'read',
  'flake.read': 'read',
  'cache.write': 'write',
  'flake.publish': 'publish',
  'org.admin': 'admin',
};

/** A denial that stands whatever the org's policies say, or undefined when the request may proceed. */
export function guardrail(p: Principal, action: Action, resource: Resource, facts: RequestFacts): Verdict | undefined {
  if (action === 'server.admin')
    return p.kind === 'server-admin' ? undefined : { allowed: false, reason: 'requires the server admin token' };
  if (p.kind === 'server-admin') return undefined;
  if (resource.type === 'server') return { allowed: false, reason: 'not an org resource' };
  if (action === 'flake.read' && resource.type !== 'flake') return { allowed: false, reason: 'not a flake' };
  if ((action === 'cache.read' || action === 'cache.write') && resource.type !== 'slice')
    return { allowed: false, reason: 'not a cache slice' };

  const sameOrg = p.kind === 'token' && p.org.id === resource.org.id;
  const isRead = action === 'cache.read' || action === 'flake.read';
  if (!isRead) {
    // Writes, publishing and administration never cross tenants, whatever a policy says.
    if (p.kind !== 'token')
      return {
        allowed: false,
        reason:
          action === 'flake.publish'
            ? 'publishing needs a token with the publish scope, from trusted CI'
            : 'authentication required',
      };
    if (!sameOrg) return { allowed: false, reason: 'token belongs to another org' };
  }
  if (p.kind !== 'token') return undefined; // anonymous reads: only what the baseline or a policy permits

  if (p.network) {
    const ip = p.client?.ip;
    if (p.network.cidrs.length > 0 && (ip === undefined || !ipInAnyRange(ip, p.network.cidrs)))
      return { allowed: false, reason: `token is limited to ${p.network.cidrs.join(', ')}` };
    if (
      p.network.countries.length > 0 &&
      (p.client?.country === undefined || !p.network.countries.includes(p.client.country))
    ) {
      return { allowed: false, reason: `token is limited to clients in ${p.network.countries.join(', ')}` };
    }
  }
  if (p.deploy) {
    if (action === 'cache.read' && facts.inDeployClosure === true) return undefined;
    if (action === 'flake.read' && facts.deployFlake === true) return undefined;
    return { allowed: false, reason: 'deploy-only token: it reads exactly the closures of its outputs' };
  }
  // A token's scopes are a ceiling: no policy lifts a read token to a writer.
  const scope = SCOPE_FOR[action];
  if (!hasScope(p, scope, 'admin')) return { allowed: false, reason: `token lacks the ${scope} scope` };
  if (sameOrg && resource.type === 'slice' && p.slices !== null && !p.slices.includes(resource.slice.name))
    return { allowed: false, reason: 'token is limited to other slices' };
  if (action === 'org.admin' && p.slices !== null) return sliceLimitedAdmin(p.slices, facts.adminSlices);
  return undefined;
}

/**
 * Slices are a ceiling on administration too: a token limited to slices S administers those
 * slices only (and mints tokens limited to subsets of S); anything org-wide would let it escape
 * them (make a slice public, trust an identity for every slice, mint a deploy token, rotate keys).
 */
function sliceLimitedAdmin(mine: readonly string[], wanted: readonly string[] | undefined): Verdict | undefined {
  const limit = `token is limited to slice${mine.length === 1 ? '' : 's'} ${mine.join(', ')}`;
  if (wanted === undefined)
    return {
      allowed: false,
      reason: `${limit}: org-wide administration (policies, signers, keys, follows, trusts, members, deploy tokens, unlimited tokens) needs a token not limited to slices`,
    };
  const outside = wanted.filter((s) => !mine.includes(s));
  if (outside.length > 0) return { allowed: false, reason: `${limit}: it cannot administer ${outside.join(', ')}` };
  return undefined;
}

/** Floe's default grant, assuming the guardrails passed. */
export function baseline(p: Principal, action: Action, resource: Resource): Verdict {
  if (p.kind === 'server-admin') return { allowed: true, reason: 'server admin' };
  if (resource.type === 'server') return { allowed: false, reason: 'not an org resource' };
  if (action === 'cache.read' && resource.type === 'slice' && resource.slice.public)
    return { allowed: true, reason: 'public slice' };
  if (action === 'flake.read' && resource.type === 'flake' && resource.flake.visibility !== 'private')
    return { allowed: true, reason: `${resource.flake.visibility} flake` };
  if (p.kind !== 'token') return { allowed: false, reason: 'authentication required' };
  if (p.org.id !== resource.org.id) return { allowed: false, reason: 'token belongs to another org' };
  if (p.deploy) return { allowed: true, reason: 'deploy grant' };
  if (action === 'flake.read' && p.slices !== null)
    return { allowed: false, reason: 'slice-limited tokens cannot read private flakes' };
  return {
    allowed: true,
    reason: `${action === 'org.admin' ? 'admin' : SCOPE_FOR[action as Exclude<Action, 'server.admin'>]} scope`,
  };
}
