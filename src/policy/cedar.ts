/**
 * Org policies in Cedar (@cedar-policy/cedar-wasm): parse a policy file into policies with stable
 * ids, validate it against Floe's schema (strict mode; note that `validate` answers "success" while
 * listing validation errors, so both are checked), and evaluate requests on a preparsed set.
 * In-process and deterministic: no I/O.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import type { Principal } from '../identity/principal.js';
import type { Action, RequestFacts, Resource } from './actions.js';
import { CEDAR_SCHEMA, WELL_KNOWN_CLAIMS } from './schema.js';

export interface PolicyProblem {
  /** The policy's id (its `@id` annotation, else `policyN` by position), when the problem is in one. */
  policyId?: string;
  message: string;
  /** 1-based position in the policy file. */
  line?: number;
  column?: number;
}

export interface ParsedPolicies {
  /** id -> policy text, in file order. */
  policies: Record<string, string>;
  problems: PolicyProblem[];
}

const MAX_POLICY_FILE_BYTES = 256 * 1024;
const MAX_POLICIES = 1000;

function position(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

interface CedarDetailedError {
  message: string;
  help?: string | null;
  sourceLocations?: Array<{ start: number; end: number }>;
}

function problemFrom(err: CedarDetailedError, source: string, base: number, policyId?: string): PolicyProblem {
  const loc = err.sourceLocations?.[0];
  const message = err.help ? `${err.message} (${err.help})` : err.message;
  return { ...(policyId ? { policyId } : {}), message, ...(loc ? position(source, base + loc.start) : {}) };
}

/** Splits a policy file into policies with stable ids: `@id("name")` when given, else `policyN`. */
export function parsePolicyFile(source: string): ParsedPolicies {
  if (Buffer.byteLength(source) > MAX_POLICY_FILE_BYTES)
    return {
      policies: {},
      problems: [{ message: `the policy file is larger than ${MAX_POLICY_FILE_BYTES / 1024} KiB` }],
    };
  const parts = cedar.policySetTextToParts(source);
  if (parts.type === 'failure')
    return { policies: {}, problems: parts.errors.map((e) => problemFrom(e as CedarDetailedError, source, 0)) };
  if (parts.policy_templates.length > 0)
    return {
      policies: {},
      problems: [{ message: 'templates are not supported in org policies; write static policies' }],
    };
  if (parts.policies.length > MAX_POLICIES)
    return { policies: {}, problems: [{ message: `at most ${MAX_POLICIES} policies per org` }] };
  const policies: Record<string, string> = {};
  const problems: PolicyProblem[] = [];
  parts.policies.forEach((text, i) => {
    const annotated = /@id\(\s*"((?:[^"\\]|\\.)*)"\s*\)/.exec(text.slice(0, text.search(/\b(permit|forbid)\s*\(/)));
    const id = annotated ? annotated[1]! : `policy${i}`;
    if (id.startsWith('floe:'))
      problems.push({ policyId: id, message: 'ids starting with "floe:" are reserved for built-in policies' });
    else if (policies[id] !== undefined)
      problems.push({ policyId: id, message: `duplicate policy id ${JSON.stringify(id)}` });
    else policies[id] = text;
  });
  return { policies, problems };
}

let schemaPrepared = false;
function prepareSchema(): void {
  if (schemaPrepared) return;
  const res = cedar.preparseSchema('floe', CEDAR_SCHEMA);
  if (res.type !== 'success') throw new Error(`Floe's own Cedar schema does not parse: ${JSON.stringify(res)}`);
  schemaPrepared = true;
}

/**
 * Parses and validates a policy file against the schema. No problems = safe to activate.
 * With `orgName`, a policy naming another org's entities is refused outright: it could never
 * take effect (an org's policies only see its own resources), so it is surely a mistake.
 */
export function validatePolicyFile(source: string, orgName?: string): ParsedPolicies {
  const parsed = parsePolicyFile(source);
  if (parsed.problems.length > 0 || Object.keys(parsed.policies).length === 0) return parsed;
  if (orgName !== undefined) {
    const foreign = foreignReferences(source, parsed.policies, orgName);
    if (foreign.length > 0) return { ...parsed, problems: foreign };
  }
  const res = cedar.validate({
    schema: CEDAR_SCHEMA,
    policies: { staticPolicies: parsed.policies },
    validationSettings: { mode: 'strict' },
  });
  const offsets = offsetsOf(source, parsed.policies);
  if (res.type === 'failure')
    return { ...parsed, problems: res.errors.map((e) => problemFrom(e as CedarDetailedError, source, 0)) };
  // "success" only means the validator ran: the errors are in validationErrors.
  const problems = res.validationErrors.map((v) =>
    problemFrom(v.error as CedarDetailedError, source, offsets[v.policyId] ?? 0, v.policyId),
  );
  // The validator reports a problem once per action it applies to: one per place is enough.
  const seen = new Set<string>();
  return {
    ...parsed,
    problems: problems.filter((p) => {
      const k = `${p.policyId}:${p.line}:${p.column}`;
      return !seen.has(k) && !!seen.add(k);
    }),
  };
}

function foreignReferences(source: string, policies: Record<string, string>, orgName: string): PolicyProblem[] {
  const offsets = offsetsOf(source, policies);
  const problems: PolicyProblem[] = [];
  for (const [id, text] of Object.entries(policies)) {
    for (const m of text.matchAll(/Floe::(Org|Slice|Flake)::"((?:[^"\\]|\\.)*)"/g)) {
      const owner = m[1] === 'Org' ? m[2]! : m[2]!.split('/')[0]!;
      if (owner !== orgName) {
        problems.push({
          policyId: id,
          message: `${m[0]} belongs to org ${JSON.stringify(owner)}: ${orgName}'s policies only govern ${orgName}'s resources`,
          ...position(source, (offsets[id] ?? 0) + m.index!),
        });
      }
    }
  }
  return problems;
}

function offsetsOf(source: string, policies: Record<string, string>): Record<string, number> {
  const out: Record<string, number> = {};
  let cursor = 0;
  for (const [id, text] of Object.entries(policies)) {
    const at = source.indexOf(text, cursor);
    out[id] = Math.max(at, 0);
    if (at >= 0) cursor = at + text.length;
  }
  return out;
}

/** Always part of an org's set: what Floe's baseline grants stays granted unless a policy forbids it. */
export const BASELINE_POLICY_ID = 'floe:baseline';
const BASELINE_POLICY = 'permit(principal, action, resource) when { context.baseline };';

/** A compiled org policy set, ready for evaluation. */
export class CedarPolicySet {
  readonly policyIds: string[];

  /**
   * `id` names the set inside the WASM module; preparsing the same id again replaces it (so one id
   * per org, and one scratch id for candidate sets, keep memory bounded).
   */
  constructor(
    readonly id: string,
    policies: Record<string, string>,
  ) {
    prepareSchema();
    this.policyIds = Object.keys(policies);
    const res = cedar.preparsePolicySet(this.id, {
      staticPolicies: { ...policies, [BASELINE_POLICY_ID]: BASELINE_POLICY },
    });
    if (res.type !== 'success') throw new Error(`policy set does not parse: ${JSON.stringify(res.errors)}`);
  }

  evaluate(
    p: Principal,
    action: Action,
    resource: Resource,
    facts: RequestFacts,
    baselineAllows: boolean,
    nowMs: number,
  ): { allowed: boolean; reasons: string[]; errors: string[] } {
    const principal = principalEntity(p);
    const resourceEntities = resourceEntitiesOf(resource);
    const res = cedar.statefulIsAuthorized({
      principal: principal.uid,
      action: { type: 'Floe::Action', id: action },
      resource: resourceEntities[0]!.uid,
      context: contextOf(p, facts, baselineAllows, nowMs),
      preparsedPolicySetId: this.id,
      preparsedSchemaName: 'floe',
      validateRequest: false,
      entities: [principal, ...resourceEntities],
    });
    if (res.type !== 'success') return { allowed: false, reasons: [], errors: res.errors.map((e) => e.message) };
    return {
      allowed: res.response.decision === 'allow',
      // Cedar returns the determining policies as a set, in no stable order.
      reasons: [...res.response.diagnostics.reason].sort(),
      errors: res.response.diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
    };
  }
}

type EntityJson = cedar.EntityJson;

const org = (name: string) => ({ type: 'Floe::Org', id: name });

function principalEntity(p: Principal): EntityJson {
  if (p.kind !== 'token') {
    return {
      uid: { type: 'Floe::Caller', id: p.kind },
      attrs: {
        org: '',
        subject: p.kind,
        scopes: [],
        authMethod: p.kind,
        lifetimeSeconds: 0,
        deployOnly: false,
        claims: {},
      },
      parents: [],
      tags: {},
    };
  }
  const claims: Record<string, string> = {};
  const tags: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(p.identity?.claims ?? {})) {
    tags[name] = Array.isArray(value) ? value : [value];
    if (typeof value === 'string' && (WELL_KNOWN_CLAIMS as readonly string[]).includes(name)) claims[name] = value;
  }
  return {
    uid: { type: 'Floe::Caller', id: p.tokenId },
    attrs: {
      org: p.org.name,
      subject: p.subject,
      scopes: [...p.scopes],
      authMethod: p.authMethod ?? 'token',
      lifetimeSeconds: p.issuedAt !== undefined && p.expiresAt !== undefined ? p.expiresAt - p.issuedAt : 0,
      deployOnly: p.deploy !== undefined,
      ...(p.identity ? { provider: p.identity.provider, issuer: p.identity.issuer } : {}),
      claims,
    },
    parents: [org(p.org.name), ...[...p.scopes].map((s) => ({ type: 'Floe::Role', id: s }))],
    tags,
  };
}

function resourceEntitiesOf(r: Resource): EntityJson[] {
  switch (r.type) {
    case 'slice':
      return [
        {
          uid: { type: 'Floe::Slice', id: `${r.org.name}/${r.slice.name}` },
          attrs: { org: r.org.name, name: r.slice.name, public: r.slice.public },
          parents: [org(r.org.name)],
        },
        { uid: org(r.org.name), attrs: { name: r.org.name }, parents: [] },
      ];
    case 'flake':
      return [
        {
          uid: { type: 'Floe::Flake', id: `${r.org.name}/${r.flake.name}` },
          attrs: { org: r.org.name, name: r.flake.name, visibility: r.flake.visibility },
          parents: [org(r.org.name)],
        },
        { uid: org(r.org.name), attrs: { name: r.org.name }, parents: [] },
      ];
    case 'org':
      return [{ uid: org(r.org.name), attrs: { name: r.org.name }, parents: [] }];
    case 'server':
      return [{ uid: { type: 'Floe::Server', id: 'server' }, attrs: {}, parents: [] }];
  }
}

function contextOf(p: Principal, facts: RequestFacts, baselineAllows: boolean, nowMs: number): cedar.Context {
  const d = new Date(nowMs);
  return {
    ip: { __extn: { fn: 'ip', arg: p.client?.ip ?? '0.0.0.0' } },
    country: p.client?.country ?? '--',
    time: Math.floor(nowMs / 60_000) * 60,
    hourUtc: d.getUTCHours(),
    weekdayUtc: d.getUTCDay(),
    baseline: baselineAllows,
    ...(facts.narinfoSignatures ? { narinfoSignatures: [...facts.narinfoSignatures] } : {}),
  };
}
