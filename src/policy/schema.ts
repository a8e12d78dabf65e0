/**
 * The published Cedar schema org policies are written and validated against. Entity ids use
 * names people read: `Floe::Org::"acme"`, `Floe::Slice::"acme/default"`, `Floe::Flake::"acme/hello"`,
 * `Floe::Role::"write"`. Every request has one principal, a `Floe::Caller`: a token's holder (`in` its
 * org and in the role of each of its scopes) or an anonymous client (`authMethod == "anonymous"`,
 * id "anonymous", org "", no scopes).
 * Identity claims: well-known ones as optional attributes of `principal.claims`, every carried
 * claim as a tag (`principal.getTag("groups").contains("ops")`).
 */
export const WELL_KNOWN_CLAIMS = [
  'sub',
  'repository',
  'repository_id',
  'repository_owner',
  'repository_owner_id',
  'repository_visibility',
  'ref',
  'ref_type',
  'ref_protected',
  'sha',
  'event_name',
  'workflow_ref',
  'job_workflow_ref',
  'environment',
  'runner_environment',
  'actor',
  'project_path',
  'project_id',
  'namespace_path',
  'namespace_id',
  'pipeline_source',
  'user_login',
  'canonical_arn',
  'account',
  'tid',
  'oid',
  'email',
  'preferred_username',
] as const;

export const CEDAR_SCHEMA = `namespace Floe {
  entity Org = { name: String };
  entity Role;
  entity Server;
  entity Caller in [Org, Role] = {
    org: String,
    subject: String,
    scopes: Set<String>,
    "authMethod": String,
    "lifetimeSeconds": Long,
    "deployOnly": Bool,
    provider?: String,
    issuer?: String,
    claims: {
${WELL_KNOWN_CLAIMS.map((c) => `      ${c}?: String,`).join('\n')}
    },
  } tags Set<String>;
  entity Slice in [Org] = { org: String, name: String, "public": Bool };
  entity Flake in [Org] = { org: String, name: String, visibility: String };

  type Context = {
    ip: ipaddr,
    country: String,
    time: Long,
    "hourUtc": Long,
    "weekdayUtc": Long,
    baseline: Bool,
    "narinfoSignatures"?: Set<String>,
  };

  action "cache.read", "cache.write" appliesTo { principal: [Caller], resource: [Slice], context: Context };
  action "flake.read", "flake.publish" appliesTo { principal: [Caller], resource: [Flake, Org], context: Context };
  action "org.admin" appliesTo { principal: [Caller], resource: [Org], context: Context };
}
`;
