/**
 * The admin services: every administrative change goes authorize (AdminGuard, over the one
 * Authorizer) → act (the domain services) → audit, here and nowhere else, so the JSON API and the
 * web interface are thin over the same rules. Domain code: imports no HTTP, web or CLI.
 */
import type { AuditLog } from '../audit/log.js';
import type { GarbageCollector } from '../cache/gc.js';
import type { RetentionService } from '../cache/retention.js';
import type { CacheService } from '../cache/service.js';
import type { SignerService } from '../cache/signers.js';
import type { SourceService } from '../cache/sources.js';
import type { UpstreamService } from '../cache/upstream.js';
import type { ExchangeService } from '../identity/exchange.js';
import type { TokenService } from '../identity/tokens.js';
import type { OrgKeyService } from '../org/keys.js';
import type { PolicyStore } from '../org/policies.js';
import type { OrgService } from '../org/service.js';
import type { Authorizer } from '../policy/authorize.js';
import { AccessAdmin } from './access.js';
import { GovernanceAdmin } from './governance.js';
import { AdminGuard } from './guard.js';
import { OrgAdmin } from './orgs.js';
import { StorageAdmin } from './storage.js';

export { AccessAdmin, AdminGuard, GovernanceAdmin, OrgAdmin, StorageAdmin };

export interface AdminServices {
  guard: AdminGuard;
  orgs: OrgAdmin;
  access: AccessAdmin;
  storage: StorageAdmin;
  governance: GovernanceAdmin;
}

export function createAdminServices(deps: {
  orgs: OrgService;
  authorizer: Authorizer;
  audit: AuditLog;
  tokens: TokenService;
  exchange: ExchangeService;
  sources: SourceService;
  cache: Pick<CacheService, 'emptySlice' | 'resignOrg'>;
  keys: OrgKeyService;
  upstreams: UpstreamService;
  retention: RetentionService;
  gc: GarbageCollector;
  policies: PolicyStore;
  signers: SignerService;
}): AdminServices {
  const guard = new AdminGuard(deps.orgs, deps.authorizer);
  const { audit } = deps;
  return {
    guard,
    orgs: new OrgAdmin({ guard, ...deps }),
    access: new AccessAdmin({ guard, ...deps }),
    storage: new StorageAdmin({ guard, ...deps }),
    governance: new GovernanceAdmin({ guard, policies: deps.policies, signers: deps.signers, audit }),
  };
}
