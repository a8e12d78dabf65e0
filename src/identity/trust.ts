/**
 * Which external identities belong to an org: "trusts" declared by org admins, and the pure
 * function that decides whether a verified token's claims satisfy one.
 *
 * Trust is bound to immutable numeric ids (GitHub owner/repository ids, GitLab namespace/project
 * ids, Entra tenant ids), never to names or to a parsed `sub`: names can be renamed and
 * re-registered. Risky CI contexts are refused unless the trust explicitly allows them:
 * GitHub `pull_request_target`/`workflow_run`/`issue_comment`/`pull_request` events (they run
 * with the base repository's identity), GitLab unprotected refs, merge-request pipelines and
 * fork pipelines running in the parent project.
 */
import { z } from 'zod';
import type { Scope } from './principal.js';
import { SCOPES } from '../wire/access.js';

export const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';
export const GITLAB_ISSUER = 'https://gitlab.com';
const RISKY_GITHUB_EVENTS = ['pull_request_target', 'workflow_run', 'issue_comment', 'pull_request'];
const NUMERIC_ID = z.union([z.string().regex(/^\d{1,20}$/), z.number().int().nonnegative()]).transform(String);
const SLICE_NAME = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/);
const MAX_TRUST_TTL_SECONDS = 12 * 3600;

const common = {
  issuer: z.string().url().optional(),
  audience: z.string().min(1).max(500).optional(),
  scopes: z.array(z.enum(SCOPES)).min(1),
  slices: z.array(SLICE_NAME).min(1).optional(),
  /** Lifetime of the Floe tokens this trust mints, in seconds (default 1 h, at most 12 h). */
  ttlSeconds: z.number().int().min(60).max(MAX_TRUST_TTL_SECONDS).optional(),
};

export const trustSpecSchema = z.discriminatedUnion('provider', [
  z.object({
    provider: z.literal('github'),
    ...common,
    ownerId: NUMERIC_ID,
    repositoryIds: z.array(NUMERIC_ID).min(1).optional(),
    refs: z.array(z.string().min(1)).min(1).optional(),
    environments: z.array(z.string().min(1)).min(1).optional(),
    workflowRefs: z.array(z.string().min(1)).min(1).optional(),
    allowEvents: z.array(z.string()).optional(),
    allowSelfHostedRunners: z.boolean().optional(),
  }),
  z.object({
    provider: z.literal('gitlab'),
    ...common,
    namespaceId: NUMERIC_ID,
    projectIds: z.array(NUMERIC_ID).min(1).optional(),
    refs: z.array(z.string().min(1)).min(1).optional(),
    allowUnprotectedRefs: z.boolean().optional(),
    allowMergeRequestPipelines: z.boolean().optional(),
  }),
  z.object({
    provider: z.literal('aws'),
    ...common,
    accountId: z.string().regex(/^\d{12}$/, 'a 12-digit AWS account id'),
    /**
     * Canonical ARNs (assumed roles as arn:aws:iam::ACCOUNT:role/NAME); "*" matches within one path
     * segment. Bounded (an IAM ARN is at most 2048 characters, real patterns far shorter) so that
     * matching every pattern of a trust stays cheap work per login.
     */
    arnPatterns: z
      .array(
        z
          .string()
          .max(1024, 'at most 1024 characters')
          .regex(/^arn:aws[a-z-]*:iam::\d{12}:(role|user)\/[A-Za-z0-9+=,.@_*/-]+$/, 'an IAM role or user ARN pattern')
          .refine((p) => p.split('*').length - 1 <= 16, 'at most 16 "*" per pattern'),
      )
      .min(1)
      .max(100),
  }),
  z.object({
    provider: z.literal('oidc'),
    ...common,
    issuer: z.string().url(),
    /** The Floe CLI's public client id at this provider: enables `floe login oidc` for people (the ID token's audience). */
    clientId: z.string().min(1).max(200).optional(),
    /** Every listed claim must equal one of the values (or, for an array claim, contain one). */
    claims: z
      .record(z.string().min(1), z.union([z.string(), z.array(z.string()).min(1)]))
      .refine((c) => Object.keys(c).length > 0, {
        message: 'at least one claim condition is required (otherwise everyone the issuer knows would be trusted)',
      }),
  }),
]);

export type TrustSpec = z.infer<typeof trustSpecSchema>;

export const AWS_ISSUER = 'https://sts.amazonaws.com';

export function defaultIssuer(spec: TrustSpec): string {
  if (spec.provider === 'aws') return AWS_ISSUER;
  if (spec.issuer) return spec.issuer.replace(/\/+$/, '');
  return spec.provider === 'github' ? GITHUB_ISSUER : GITLAB_ISSUER;
}

/**
 * `*` matches within one ARN path segment, nothing else is special. No RegExp: a backtracking
 * engine takes exponential time on patterns like `role/*a*a*a*a*b` (a trust is written by an org
 * admin, the ARN by whoever asks). Stars never match `/` or `:`, so the separators of pattern and
 * ARN must pair up one to one; between them, the greedy two-pointer glob match (back up to the
 * last star only) is exact because an unrestricted star absorbs whatever an earlier one would
 * have, and it costs at most segment length × segment length.
 */
export function arnPatternMatches(pattern: string, arn: string): boolean {
  const patternParts = pattern.split(ARN_SEPARATORS);
  const arnParts = arn.split(ARN_SEPARATORS);
  // split with a capturing group keeps the separators at odd indexes.
  if (patternParts.length !== arnParts.length) return false;
  for (let i = 0; i < patternParts.length; i++) {
    if (i % 2 === 1 ? patternParts[i] !== arnParts[i] : !globMatches(patternParts[i]!, arnParts[i]!)) return false;
  }
  return true;
}

const ARN_SEPARATORS = /([/:])/;

function globMatches(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1; // index of the last star seen in the pattern
  let resume = 0; // where in the text that star's match currently ends
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

export type Claims = Record<string, unknown>;
export type TrustMatch = { ok: true } | { ok: false; reason: string };

const str = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
const no = (reason: string): TrustMatch => ({ ok: false, reason });

export function matchTrust(spec: TrustSpec, claims: Claims): TrustMatch {
  switch (spec.provider) {
    case 'github': {
      if (str(claims.repository_owner_id) !== spec.ownerId)
        return no(`repository owner id ${str(claims.repository_owner_id) ?? '(none)'} is not ${spec.ownerId}`);
      if (spec.repositoryIds && !spec.repositoryIds.includes(str(claims.repository_id) ?? ''))
        return no(`repository id ${str(claims.repository_id) ?? '(none)'} is not trusted`);
      const event = str(claims.event_name) ?? '';
      if (RISKY_GITHUB_EVENTS.includes(event) && !spec.allowEvents?.includes(event))
        return no(
          `tokens from "${event}" workflows are refused (they can run untrusted code with the repository's identity)`,
        );
      if (spec.refs && !spec.refs.includes(str(claims.ref) ?? ''))
        return no(`ref ${str(claims.ref) ?? '(none)'} is not trusted`);
      if (spec.environments && !spec.environments.includes(str(claims.environment) ?? ''))
        return no(`environment ${str(claims.environment) ?? '(none)'} is not trusted`);
      if (
        spec.workflowRefs &&
        !spec.workflowRefs.includes(str(claims.job_workflow_ref) ?? str(claims.workflow_ref) ?? '')
      )
        return no('workflow is not trusted');
      if (str(claims.runner_environment) === 'self-hosted' && !spec.allowSelfHostedRunners)
        return no('self-hosted runners are not trusted by this org');
      return { ok: true };
    }
    case 'gitlab': {
      // After GitLab's fork-pipeline fix, job_* claims name the project the pipeline runs in.
      const projectId = str(claims.job_project_id) ?? str(claims.project_id);
      const namespaceId = str(claims.job_namespace_id) ?? str(claims.namespace_id);
      if (claims.job_project_id !== undefined && str(claims.job_project_id) !== str(claims.project_id))
        return no('fork pipelines running in the parent project are refused');
      if (namespaceId !== spec.namespaceId)
        return no(`namespace id ${namespaceId ?? '(none)'} is not ${spec.namespaceId}`);
      if (spec.projectIds && !spec.projectIds.includes(projectId ?? ''))
        return no(`project id ${projectId ?? '(none)'} is not trusted`);
      if (!spec.allowUnprotectedRefs && str(claims.ref_protected) !== 'true')
        return no('only protected refs are trusted');
      if (!spec.allowMergeRequestPipelines && str(claims.pipeline_source) === 'merge_request_event')
        return no('merge request pipelines are refused');
      if (spec.refs && !spec.refs.includes(str(claims.ref) ?? ''))
        return no(`ref ${str(claims.ref) ?? '(none)'} is not trusted`);
      return { ok: true };
    }
    case 'aws': {
      if (str(claims.account) !== spec.accountId)
        return no(`AWS account ${str(claims.account) ?? '(none)'} is not ${spec.accountId}`);
      const arn = str(claims.canonical_arn) ?? '';
      if (!spec.arnPatterns.some((p) => arnPatternMatches(p, arn))) return no(`${arn} matches no trusted role or user`);
      return { ok: true };
    }
    case 'oidc': {
      for (const [name, wanted] of Object.entries(spec.claims)) {
        const allowed = Array.isArray(wanted) ? wanted : [wanted];
        const actual = claims[name];
        const values = Array.isArray(actual) ? actual.map(str) : [str(actual)];
        if (!values.some((v) => v !== undefined && allowed.includes(v))) return no(`claim ${name} does not match`);
      }
      return { ok: true };
    }
  }
}

/** The Floe token subject for an external identity: stable ids first, names for humans. */
export function subjectFor(spec: TrustSpec, issuer: string, claims: Claims): string {
  switch (spec.provider) {
    case 'github':
      return `github:${str(claims.repository) ?? '?'}@${str(claims.repository_id) ?? '?'}:${str(claims.ref) ?? ''}`;
    case 'gitlab':
      return `gitlab:${str(claims.project_path) ?? '?'}@${str(claims.project_id) ?? '?'}:${str(claims.ref) ?? ''}`;
    case 'aws':
      return `aws:${str(claims.canonical_arn) ?? '?'}`;
    case 'oidc':
      return `oidc:${issuer}#${str(claims.oid) ?? str(claims.sub) ?? '?'}`;
  }
}

const CARRIED_CLAIMS: Record<TrustSpec['provider'], string[]> = {
  github: [
    'repository',
    'repository_id',
    'repository_visibility',
    'ref_protected',
    'repository_owner',
    'repository_owner_id',
    'ref',
    'ref_type',
    'sha',
    'event_name',
    'workflow_ref',
    'job_workflow_ref',
    'environment',
    'run_id',
    'runner_environment',
    'actor',
    'actor_id',
  ],
  gitlab: [
    'project_path',
    'project_id',
    'namespace_path',
    'namespace_id',
    'ref',
    'ref_type',
    'ref_protected',
    'sha',
    'pipeline_source',
    'pipeline_id',
    'job_id',
    'environment',
    'user_login',
    'runner_environment',
  ],
  aws: ['arn', 'canonical_arn', 'account', 'user_id'],
  oidc: ['sub', 'oid', 'tid', 'groups', 'roles', 'email', 'preferred_username', 'name', 'azp', 'idtyp'],
};

/** The identity claims that travel in the Floe token, for the policy engine and the audit log. */
export function carriedClaims(spec: TrustSpec, claims: Claims): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of CARRIED_CLAIMS[spec.provider]) {
    const v = claims[name];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[name] = String(v);
    else if (Array.isArray(v)) out[name] = v.slice(0, 200).map(String);
  }
  return out;
}

export function grantedScopes(spec: TrustSpec): Scope[] {
  return [...new Set(spec.scopes)];
}

/**
 * The external subject a trust claims: issuer plus the immutable id that names an owner (GitHub
 * owner, GitLab namespace, AWS account). One such subject belongs to one org unless the server
 * admin approved an overlap. Generic OIDC trusts claim their issuer, narrowed by their conditions.
 */
export function trustSubjectKey(spec: TrustSpec): string {
  const issuer = defaultIssuer(spec);
  switch (spec.provider) {
    case 'github':
      return `github:${issuer}#owner=${spec.ownerId}`;
    case 'gitlab':
      return `gitlab:${issuer}#namespace=${spec.namespaceId}`;
    case 'aws':
      return `aws#account=${spec.accountId}`;
    case 'oidc':
      return `oidc:${issuer}`;
  }
}

/**
 * Whether one identity could satisfy both trusts (conservatively: when unsure, they overlap).
 * OIDC trusts of one issuer overlap unless some claim both constrain has disjoint allowed values.
 */
export function trustsOverlap(a: TrustSpec, b: TrustSpec): boolean {
  if (trustSubjectKey(a) !== trustSubjectKey(b)) return false;
  if (a.provider !== 'oidc' || b.provider !== 'oidc') return true;
  for (const [name, wanted] of Object.entries(a.claims)) {
    const other = b.claims[name];
    if (other === undefined) continue;
    const left = new Set(Array.isArray(wanted) ? wanted : [wanted]);
    const right = Array.isArray(other) ? other : [other];
    if (!right.some((v) => left.has(v))) return false;
  }
  return true;
}

/**
 * Whether a verified identity is the subject a trust claims, whatever the trust's other
 * conditions (refs, environments, ...): the org that owns the subject is the org the identity
 * belongs to, even when this particular job (a feature branch) is not trusted.
 */
export function identityIsSubjectOf(spec: TrustSpec, claims: Claims): boolean {
  switch (spec.provider) {
    case 'github':
      return str(claims.repository_owner_id) === spec.ownerId;
    case 'gitlab':
      return (str(claims.job_namespace_id) ?? str(claims.namespace_id)) === spec.namespaceId;
    case 'aws':
      return str(claims.account) === spec.accountId;
    case 'oidc':
      return matchTrust(spec, claims).ok;
  }
}
