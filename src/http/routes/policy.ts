/**
 * Org policies (validate, apply, history, rollback, test/explain), the published schema, and the
 * audit trail (query, JSONL export, chain verification, read summaries).
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import { InvalidInput } from '../../errors.js';
import type { AuditLog } from '../../audit/log.js';
import type { RequestFacts } from '../../policy/actions.js';
import { decide, type OrgPolicySet } from '../../policy/authorize.js';
import { CedarPolicySet, validatePolicyFile } from '../../policy/cedar.js';
import { CEDAR_SCHEMA } from '../../policy/schema.js';
import { InvalidPolicy, type PolicyStore } from '../../org/policies.js';
import type { SignerService } from '../../cache/signers.js';
import type { OrgService } from '../../org/service.js';
import type { Limits } from '../../config.js';
import type { GovernanceAdmin } from '../../admin/governance.js';
import { adminOrg, type RouteGuards } from '../admin-guards.js';
import type { AppEnv } from '../context.js';
import { readJson } from '../body.js';
import { parseBody, queryInt, queryTime } from '../validate.js';
import { hypotheticalPrincipal, hypotheticalResource, testCase } from '../../policy/hypothetical.js';

export interface PolicyRouteDeps {
  policies: PolicyStore;
  signers: SignerService;
  audit: AuditLog;
  governance: GovernanceAdmin;
  orgs: OrgService;
  limits: Limits;
  guards: Pick<RouteGuards, 'orgAdmin' | 'serverAdmin'>;
}

const MAX_POLICY_BODY = 512 * 1024;
const applyBody = z.object({ source: z.string().max(256 * 1024), message: z.string().max(500).optional() });
const validateBody = z.object({ source: z.string().max(256 * 1024) });
const rollbackBody = z.object({ version: z.number().int().positive() });
const signerBody = z.object({ publicKey: z.string().max(200) });

const testBody = z.object({
  source: z
    .string()
    .max(256 * 1024)
    .optional(),
  cases: z.array(testCase).min(1).max(1000),
});

export function policyRoutes(api: Hono<AppEnv>, deps: PolicyRouteDeps): void {
  const { orgAdmin, serverAdmin } = deps.guards;
  api.get('/policy/schema', (c) => c.text(CEDAR_SCHEMA, 200, { 'Content-Type': 'text/plain; charset=utf-8' }));

  api.get('/orgs/:org/policies', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const current = await deps.policies.current(org);
    return c.json(current ?? { version: 0, source: '', policyIds: [] });
  });

  api.post('/orgs/:org/policies/validate', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const body = parseBody(validateBody, await readJson(c.env.incoming, MAX_POLICY_BODY));
    const result = validatePolicyFile(body.source, org.name);
    return c.json({
      valid: result.problems.length === 0,
      policyIds: Object.keys(result.policies),
      problems: result.problems,
    });
  });

  api.put('/orgs/:org/policies', orgAdmin(), async (c) => {
    const p = c.get('principal');
    const org = adminOrg(c);
    const body = parseBody(applyBody, await readJson(c.env.incoming, MAX_POLICY_BODY));
    try {
      return c.json(await deps.governance.applyPolicies(p, org, body.source, body.message), 201);
    } catch (err) {
      if (err instanceof InvalidPolicy)
        return c.json({ error: 'invalid_policy', message: err.message, problems: err.problems }, 400);
      throw err;
    }
  });

  api.get('/orgs/:org/policies/versions', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    return c.json({ versions: await deps.policies.history(org) });
  });

  api.get('/orgs/:org/policies/versions/:version', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const v = await deps.policies.get(org, Number(c.req.param('version')));
    if (!v)
      return c.json(
        { error: 'not_found', message: `org ${org.name} has no policy version ${c.req.param('version')}` },
        404,
      );
    return c.json(v);
  });

  api.post('/orgs/:org/policies/rollback', orgAdmin(), async (c) => {
    const p = c.get('principal');
    const org = adminOrg(c);
    const body = parseBody(rollbackBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const v = await deps.governance.rollbackPolicies(p, org, body.version);
    return c.json(v, 201);
  });

  // Runs hypothetical requests through guardrails, baseline and the org's policies (active, or a
  // candidate text), reporting the decision and what decided it. Used by `floe policy test|explain`.
  api.post('/orgs/:org/policies/test', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    const body = parseBody(testBody, await readJson(c.env.incoming, MAX_POLICY_BODY));
    let orgSet: OrgPolicySet | undefined;
    if (body.source !== undefined) {
      const parsed = validatePolicyFile(body.source, org.name);
      if (parsed.problems.length > 0)
        return c.json(
          { error: 'invalid_policy', message: new InvalidPolicy(parsed.problems).message, problems: parsed.problems },
          400,
        );
      // One scratch id: evaluation below is synchronous, so no other request sees it half-made.
      orgSet = Object.keys(parsed.policies).length
        ? { orgId: org.id, version: 0, set: new CedarPolicySet('candidate', parsed.policies) }
        : undefined;
    } else {
      orgSet = deps.policies.forOrg(org.id);
    }
    const slices = new Map((await deps.orgs.listSlices(org)).map((s) => [s.name, s]));
    const otherOrgs = new Map<string, string>();
    for (const tc of body.cases) {
      const name = 'org' in tc.principal ? tc.principal.org : undefined;
      if (name && name !== org.name && !otherOrgs.has(name))
        otherOrgs.set(name, (await deps.orgs.findOrg(name))?.id ?? `unknown:${name}`);
    }
    const results = body.cases.map((tc, i) => {
      const principal = hypotheticalPrincipal(tc.principal, org, otherOrgs, tc.client, i);
      const resource = hypotheticalResource(tc.resource, org, slices);
      const d = decide(principal, tc.action, resource, (tc.facts ?? {}) as RequestFacts, orgSet);
      const decision = d.allowed ? 'allow' : 'deny';
      return {
        name: tc.name ?? `case ${i + 1}`,
        decision,
        reason: d.reason,
        decidedBy: d.decidedBy,
        ...(tc.expect ? { expected: tc.expect, pass: tc.expect === decision } : {}),
      };
    });
    return c.json({
      policyVersion: body.source !== undefined ? 'candidate' : (orgSet?.version ?? 0),
      passed: results.filter((r) => r.pass !== false).length,
      failed: results.filter((r) => r.pass === false).length,
      results,
    });
  });

  // ---- trusted signing keys (what `context.narinfoSignatures` verifies against) ----

  api.get('/orgs/:org/signers', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    return c.json({ signers: await deps.signers.list(org) });
  });
  api.post('/orgs/:org/signers', orgAdmin(), async (c) => {
    const p = c.get('principal');
    const org = adminOrg(c);
    const body = parseBody(signerBody, await readJson(c.env.incoming, deps.limits.maxSmallBodyBytes));
    const signer = await deps.governance.addSigner(p, org, body.publicKey);
    return c.json(signer, 201);
  });
  api.delete('/orgs/:org/signers/:name', orgAdmin(), async (c) => {
    const p = c.get('principal');
    const org = adminOrg(c);
    await deps.governance.removeSigner(p, org, c.req.param('name'));
    return c.json({ name: c.req.param('name'), removed: true });
  });

  // ---- audit ----

  const auditQuery = (c: import('hono').Context<AppEnv>) => {
    const q = (k: string) => c.req.query(k) || undefined;
    const outcome = q('outcome');
    if (outcome !== undefined && !['allow', 'deny', 'event'].includes(outcome))
      throw new InvalidInput('outcome', 'one of allow, deny, event');
    const after = queryInt('after', q('after'), { min: 0, max: Number.MAX_SAFE_INTEGER });
    const limit = queryInt('limit', q('limit'), { min: 1, max: 5000 });
    const since = queryTime('since', q('since'));
    const until = queryTime('until', q('until'));
    return {
      ...(q('action') ? { action: q('action')! } : {}),
      ...(outcome ? { outcome: outcome as 'allow' | 'deny' | 'event' } : {}),
      ...(q('actor') ? { actor: q('actor')! } : {}),
      ...(since ? { since } : {}),
      ...(until ? { until } : {}),
      ...(after !== undefined ? { afterSeq: after } : {}),
      ...(limit !== undefined ? { limit } : {}),
    };
  };
  const sendAudit = async (c: import('hono').Context<AppEnv>, orgId: string | undefined) => {
    await deps.audit.flush();
    const entries = await deps.audit.query({ ...auditQuery(c), ...(orgId !== undefined ? { orgId } : {}) });
    if (c.req.query('format') === 'jsonl') {
      return c.body(entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''), 200, {
        'Content-Type': 'application/x-ndjson',
      });
    }
    return c.json({ entries, next: entries.length ? entries.at(-1)!.seq : null });
  };

  api.get('/orgs/:org/audit', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    return sendAudit(c, org.id);
  });
  api.get('/audit', serverAdmin('the whole audit log'), async (c) => sendAudit(c, undefined));
  api.get('/audit/verify', serverAdmin('verifying the audit chain'), async (c) => {
    await deps.audit.flush();
    const seq = c.req.query('seq');
    const hash = c.req.query('hash');
    if ((seq === undefined) !== (hash === undefined)) throw new InvalidInput('anchor', 'give both seq and hash');
    if (seq !== undefined && (!/^\d{1,15}$/.test(seq) || !/^[0-9a-f]{64}$/.test(hash!)))
      throw new InvalidInput('anchor', 'seq is a number, hash 64 hex digits');
    return c.json(await deps.audit.verify(seq !== undefined ? { seq: Number(seq), hash: hash! } : undefined));
  });
  api.get('/orgs/:org/reads', orgAdmin(), async (c) => {
    const org = adminOrg(c);
    await deps.audit.flush();
    const since = c.req.query('since');
    const actor = c.req.query('actor');
    return c.json({
      reads: await deps.audit.readSummary(org.id, { ...(since ? { since } : {}), ...(actor ? { actor } : {}) }),
    });
  });
}
