/**
 * THE authorization chokepoint: every access Floe grants is decided here. Deny by default.
 *
 * A decision runs three layers: Floe's guardrails (denials nothing overrides), Floe's baseline
 * (what an org without policies gets), and the org's own Cedar policies, evaluated only for that
 * org's resources, which may permit more or forbid (forbid wins). `decide` is pure;
 * `Authorizer` adds the current policy sets, a decision memo for the hot path, and the audit hook.
 */
import type { Principal } from '../identity/principal.js';
import type { Action, RequestFacts, Resource } from './actions.js';
import { orgOf } from './actions.js';
import { BASELINE_POLICY_ID, type CedarPolicySet } from './cedar.js';
import { baseline, guardrail } from './guardrails.js';

export interface Decision {
  allowed: boolean;
  reason: string;
  /** What decided: `floe:guardrail`, `floe:baseline`, or the org policy ids that permitted or forbade. */
  decidedBy: string[];
  /** The org policy version consulted, if the resource's org has policies. */
  policyVersion?: number;
}

/** An org's active, compiled policies. */
export interface OrgPolicySet {
  orgId: string;
  version: number;
  set: CedarPolicySet;
}

const GUARDRAIL = 'floe:guardrail';

export function decide(
  p: Principal,
  action: Action,
  resource: Resource,
  facts: RequestFacts = {},
  orgSet?: OrgPolicySet,
  nowMs = Date.now(),
): Decision {
  const g = guardrail(p, action, resource, facts);
  if (g) return { allowed: false, reason: g.reason, decidedBy: [GUARDRAIL] };
  const base = baseline(p, action, resource);
  if (!orgSet || p.kind === 'server-admin')
    return { allowed: base.allowed, reason: base.reason, decidedBy: [base.allowed ? BASELINE_POLICY_ID : GUARDRAIL] };
  const r = orgSet.set.evaluate(p, action, resource, facts, base.allowed, nowMs);
  const version = orgSet.version;
  if (r.errors.length > 0) {
    // Fail closed: a policy that could not be evaluated might have been a forbid.
    return {
      allowed: false,
      reason: `org policy evaluation failed (${r.errors.join('; ')})`,
      decidedBy: [GUARDRAIL],
      policyVersion: version,
    };
  }
  if (r.allowed) {
    const byOrg = r.reasons.filter((id) => id !== BASELINE_POLICY_ID);
    return {
      allowed: true,
      reason: byOrg.length ? `permitted by org policy ${byOrg.join(', ')}` : base.reason,
      decidedBy: r.reasons,
      policyVersion: version,
    };
  }
  if (r.reasons.length > 0)
    return {
      allowed: false,
      reason: `forbidden by org policy ${r.reasons.join(', ')}`,
      decidedBy: r.reasons,
      policyVersion: version,
    };
  return {
    allowed: false,
    reason: `${base.reason}; no org policy permits it`,
    decidedBy: [GUARDRAIL],
    policyVersion: version,
  };
}

export interface AuditSink {
  record(principal: Principal, action: Action, resource: Resource, decision: Decision, facts: RequestFacts): void;
}

/** Where the current policy set of an org comes from (kept fresh by the org policy store). */
export interface PolicySets {
  forOrg(orgId: string): OrgPolicySet | undefined;
}

export const NO_POLICIES: PolicySets = { forOrg: () => undefined };

export class Authorizer {
  /** Decisions of orgs with policies, so a hot narinfo path pays Cedar once per caller, slice and minute. */
  private readonly memo = new Map<string, Decision>();
  private static readonly MEMO_LIMIT = 50_000;

  constructor(
    private readonly audit: AuditSink,
    private readonly policies: PolicySets = NO_POLICIES,
    private readonly onDecision: (allowed: boolean) => void = () => {},
  ) {}

  /**
   * `quiet`: a probe ("could this reference be linked from there?"), not an access the caller
   * asked for; it is decided the same way but not written to the audit trail one by one (a single
   * upload can name thousands of references).
   */
  authorize(
    principal: Principal,
    action: Action,
    resource: Resource,
    facts: RequestFacts = {},
    opts: { quiet?: boolean } = {},
  ): Decision {
    const org = orgOf(resource);
    const orgSet = org ? this.policies.forOrg(org.id) : undefined;
    let decision: Decision;
    if (orgSet === undefined || principal.kind === 'server-admin') {
      decision = decide(principal, action, resource, facts);
    } else {
      const nowMs = Date.now();
      const key = memoKey(principal, action, resource, facts, orgSet, nowMs);
      const hit = this.memo.get(key);
      if (hit) decision = hit;
      else {
        decision = decide(principal, action, resource, facts, orgSet, nowMs);
        if (this.memo.size >= Authorizer.MEMO_LIMIT) this.memo.clear();
        this.memo.set(key, decision);
      }
    }
    this.onDecision(decision.allowed);
    if (!opts.quiet) this.audit.record(principal, action, resource, decision, facts);
    return decision;
  }
}

function memoKey(
  p: Principal,
  action: Action,
  r: Resource,
  facts: RequestFacts,
  orgSet: OrgPolicySet,
  nowMs: number,
): string {
  const who = p.kind === 'token' ? p.tokenId : p.kind;
  const what =
    r.type === 'slice'
      ? `s:${r.slice.id}:${r.slice.public ? 1 : 0}`
      : r.type === 'flake'
        ? `f:${r.org.id}/${r.flake.name}:${r.flake.visibility}`
        : r.type === 'org'
          ? `o:${r.org.id}`
          : 'server';
  const f = `${facts.inDeployClosure ? 1 : 0}${facts.deployFlake ? 1 : 0}${facts.narinfoSignatures ? facts.narinfoSignatures.join(',') : '-'}|${facts.adminSlices ? facts.adminSlices.join(',') : '*'}`;
  // The minute is part of the key because policies may read context.time/hourUtc.
  return `${orgSet.orgId}@${orgSet.version}|${who}|${action}|${what}|${p.client?.ip ?? ''}|${p.client?.country ?? ''}|${Math.floor(nowMs / 60_000)}|${f}`;
}
