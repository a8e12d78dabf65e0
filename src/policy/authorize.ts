/**
 * THE authorization chokepoint: every access Floe grants is decided here. Deny by default.
 * `decide` is pure (the Cedar policy engine replaces its body later, same signature);
 * `Authorizer.authorize` adds the audit hook.
 */
import type { Principal, Scope } from '../identity/principal.js';
import type { Action, Resource } from './actions.js';

export interface Decision {
  allowed: boolean;
  reason: string;
}

const allow = (reason: string): Decision => ({ allowed: true, reason });
const deny = (reason: string): Decision => ({ allowed: false, reason });

function hasScope(p: Extract<Principal, { kind: 'token' }>, ...wanted: Scope[]): boolean {
  return wanted.some((s) => p.scopes.has(s));
}

export function decide(principal: Principal, action: Action, resource: Resource): Decision {
  if (principal.kind === 'server-admin') return allow('server admin');

  switch (action) {
    case 'server.admin':
      return deny('requires the server admin token');
    case 'org.admin': {
      if (resource.type === 'server') return deny('not an org resource');
      if (principal.kind !== 'token' || principal.org.id !== resource.org.id) return deny('not a member of this org');
      return hasScope(principal, 'admin') ? allow('org admin scope') : deny('token lacks the admin scope');
    }
    case 'flake.read': {
      if (resource.type !== 'flake') return deny('not a flake');
      if (resource.flake.visibility !== 'private') return allow(`${resource.flake.visibility} flake`);
      if (principal.kind !== 'token') return deny('authentication required');
      if (principal.org.id !== resource.org.id) return deny('token belongs to another org');
      if (principal.slices !== null) return deny('slice-limited tokens cannot read private flakes');
      return hasScope(principal, 'read', 'admin') ? allow('read scope') : deny('token lacks the read scope');
    }
    case 'flake.publish': {
      if (resource.type !== 'flake' && resource.type !== 'org') return deny('not a flake');
      if (principal.kind !== 'token') return deny('publishing needs a token with the publish scope, from trusted CI');
      if (principal.org.id !== resource.org.id) return deny('token belongs to another org');
      return hasScope(principal, 'publish', 'admin') ? allow('publish scope') : deny('token lacks the publish scope');
    }
    case 'cache.read':
    case 'cache.write': {
      if (resource.type !== 'slice') return deny('not a cache slice');
      if (action === 'cache.read' && resource.slice.public) return allow('public slice');
      if (principal.kind !== 'token') return deny('authentication required');
      if (principal.org.id !== resource.org.id) return deny('token belongs to another org');
      if (principal.slices !== null && !principal.slices.includes(resource.slice.name)) return deny('token is limited to other slices');
      const ok = action === 'cache.read' ? hasScope(principal, 'read', 'admin') : hasScope(principal, 'write', 'admin');
      return ok ? allow(`${action === 'cache.read' ? 'read' : 'write'} scope`) : deny(`token lacks the ${action === 'cache.read' ? 'read' : 'write'} scope`);
    }
  }
}

export interface AuditSink {
  record(principal: Principal, action: Action, resource: Resource, decision: Decision): void;
}

export class Authorizer {
  constructor(private readonly audit: AuditSink) {}

  authorize(principal: Principal, action: Action, resource: Resource): Decision {
    const decision = decide(principal, action, resource);
    this.audit.record(principal, action, resource, decision);
    return decision;
  }
}
