/**
 * Governance: an org's policy files (apply, rollback) and the signing keys it trusts on uploaded
 * narinfos. Each method authorizes (AdminGuard), acts, then appends the audit entry; a policy
 * file that does not validate is recorded as a refused change.
 */
import type { AuditLog } from '../audit/log.js';
import type { Signer, SignerService } from '../cache/signers.js';
import { describePrincipal, type Principal } from '../identity/principal.js';
import { InvalidPolicy, type PolicyStore, type PolicyVersion } from '../org/policies.js';
import type { Org } from '../org/service.js';
import type { AdminGuard } from './guard.js';

export class GovernanceAdmin {
  constructor(
    private readonly deps: { guard: AdminGuard; policies: PolicyStore; signers: SignerService; audit: AuditLog },
  ) {}

  async applyPolicies(p: Principal, org: Org, source: string, message?: string): Promise<PolicyVersion> {
    this.deps.guard.assertOrgAdmin(p, org);
    let v: PolicyVersion;
    try {
      v = await this.deps.policies.apply(org, source, describePrincipal(p), message);
    } catch (err) {
      if (err instanceof InvalidPolicy)
        this.deps.audit.append({
          principal: p,
          action: 'policy.apply',
          target: `${org.name} policies`,
          orgId: org.id,
          outcome: 'deny',
          reason: 'policies did not validate',
          detail: { problems: err.problems.slice(0, 20) },
        });
      throw err;
    }
    await this.deps.audit.appendNow({
      principal: p,
      action: 'policy.apply',
      target: `${org.name} policies v${v.version}`,
      orgId: org.id,
      detail: { version: v.version, sha256: v.sha256, policyIds: v.policyIds, ...(message ? { message } : {}) },
    });
    return v;
  }

  /** A new version with the text of `version`. */
  async rollbackPolicies(p: Principal, org: Org, version: number): Promise<PolicyVersion> {
    this.deps.guard.assertOrgAdmin(p, org);
    const v = await this.deps.policies.rollback(org, version, describePrincipal(p));
    await this.deps.audit.appendNow({
      principal: p,
      action: 'policy.rollback',
      target: `${org.name} policies v${v.version}`,
      orgId: org.id,
      detail: { version: v.version, from: version, sha256: v.sha256 },
    });
    return v;
  }

  async addSigner(p: Principal, org: Org, publicKey: string): Promise<Signer> {
    this.deps.guard.assertOrgAdmin(p, org);
    const signer = await this.deps.signers.add(org, publicKey, describePrincipal(p));
    await this.deps.audit.appendNow({
      principal: p,
      action: 'signer.add',
      target: `signer ${org.name}/${signer.name}`,
      orgId: org.id,
      detail: { publicKey: signer.publicKey },
    });
    return signer;
  }

  async removeSigner(p: Principal, org: Org, name: string): Promise<void> {
    this.deps.guard.assertOrgAdmin(p, org);
    await this.deps.signers.remove(org, name);
    await this.deps.audit.appendNow({
      principal: p,
      action: 'signer.remove',
      target: `signer ${org.name}/${name}`,
      orgId: org.id,
    });
  }
}
