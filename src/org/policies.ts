/**
 * Org policies: versioned Cedar files, validated before they take effect, never edited in place
 * (a rollback is a new version with an old text). Keeps every org's active set compiled in memory
 * for the authorizer; other replicas' changes are picked up by a poll (bounded delay, ~1 s).
 */
import { createHash } from 'node:crypto';
import { FloeError, InvalidInput } from '../errors.js';
import type { Logger } from '../log.js';
import {
  CedarPolicySet,
  type ParsedPolicies,
  type PolicyProblem,
  parsePolicyFile,
  validatePolicyFile,
} from '../policy/cedar.js';
import type { OrgPolicySet, PolicySets } from '../policy/authorize.js';
import type { Db } from '../storage/types.js';
import type { ChangeFeed } from '../storage/changes.js';
import { isUniqueViolation, type Org } from './service.js';

/** A policy file that failed validation: nothing was stored. */
export class InvalidPolicy extends FloeError {
  constructor(readonly problems: PolicyProblem[]) {
    super(
      'invalid_input',
      `the policies do not validate against Floe's schema: ${problems.map((p) => `${p.line ? `line ${p.line}: ` : ''}${p.message}`).join('; ')}`,
    );
  }
}

export interface PolicyVersion {
  version: number;
  sha256: string;
  message: string | null;
  createdBy: string;
  createdAt: string;
  policyIds: string[];
}

export class PolicyStore implements PolicySets {
  private readonly active = new Map<string, OrgPolicySet>();
  private readonly loadedVersions = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly changes?: ChangeFeed,
  ) {}

  forOrg(orgId: string): OrgPolicySet | undefined {
    return this.active.get(orgId);
  }

  /** Loads the latest version of every org whose version changed. Safe to call often. */
  async refresh(): Promise<void> {
    const heads = await this.db
      .selectFrom('org_policies')
      .select(['org_id', (eb) => eb.fn.max('version').as('version')])
      .groupBy('org_id')
      .execute();
    for (const head of heads) {
      const version = Number(head.version);
      if (this.loadedVersions.get(head.org_id) === version) continue;
      const row = await this.db
        .selectFrom('org_policies')
        .select('source')
        .where('org_id', '=', head.org_id)
        .where('version', '=', version)
        .executeTakeFirst();
      // Stored versions were valid when applied; a schema change could have broken one since.
      if (row) this.install(head.org_id, version, validatePolicyFile(row.source));
    }
  }

  /** Follows changes made through other replicas: notices at once, a poll as the guarantee. */
  start(intervalMs = 1000): void {
    this.changes?.subscribe('policies', () => {
      this.refresh().catch((err) => this.log.warn({ err }, 'policy refresh failed; keeping the current policies'));
    });
    this.timer = setInterval(() => {
      this.refresh().catch((err) => this.log.warn({ err }, 'policy refresh failed; keeping the current policies'));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private install(orgId: string, version: number, parsed: ParsedPolicies): void {
    const ids = Object.keys(parsed.policies);
    if (parsed.problems.length > 0) {
      // Stored versions were valid when applied; a schema change could break one. Fail closed:
      // an org whose policies no longer validate gets a set that forbids everything it governs.
      this.log.error(
        { orgId, version, problems: parsed.problems },
        'active org policies no longer validate; denying access to the org until fixed',
      );
      this.active.set(orgId, {
        orgId,
        version,
        set: new CedarPolicySet(`org:${orgId}`, { 'floe:invalid-policies': 'forbid(principal, action, resource);' }),
      });
    } else if (ids.length === 0) {
      this.active.delete(orgId);
    } else {
      this.active.set(orgId, { orgId, version, set: new CedarPolicySet(`org:${orgId}`, parsed.policies) });
    }
    this.loadedVersions.set(orgId, version);
  }

  async current(org: Org): Promise<(PolicyVersion & { source: string }) | undefined> {
    const row = await this.db
      .selectFrom('org_policies')
      .selectAll()
      .where('org_id', '=', org.id)
      .orderBy('version', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? { ...toVersion(row), source: row.source } : undefined;
  }

  async get(org: Org, version: number): Promise<(PolicyVersion & { source: string }) | undefined> {
    const row = await this.db
      .selectFrom('org_policies')
      .selectAll()
      .where('org_id', '=', org.id)
      .where('version', '=', version)
      .executeTakeFirst();
    return row ? { ...toVersion(row), source: row.source } : undefined;
  }

  async history(org: Org): Promise<PolicyVersion[]> {
    const rows = await this.db
      .selectFrom('org_policies')
      .selectAll()
      .where('org_id', '=', org.id)
      .orderBy('version', 'desc')
      .limit(500)
      .execute();
    return rows.map(toVersion);
  }

  /** Validates, then stores as the next version and activates it here at once. Throws InvalidPolicy. */
  async apply(org: Org, source: string, createdBy: string, message?: string): Promise<PolicyVersion> {
    const parsed = validatePolicyFile(source, org.name);
    if (parsed.problems.length > 0) throw new InvalidPolicy(parsed.problems);
    if (message !== undefined && message.length > 500) throw new InvalidInput('message', 'at most 500 characters');
    for (let attempt = 0; ; attempt++) {
      try {
        const row = await this.db.transaction().execute(async (trx) => {
          const head = await trx
            .selectFrom('org_policies')
            .select((eb) => eb.fn.max('version').as('v'))
            .where('org_id', '=', org.id)
            .executeTakeFirst();
          const values = {
            org_id: org.id,
            version: Number(head?.v ?? 0) + 1,
            source,
            sha256: createHash('sha256').update(source).digest('hex'),
            message: message ?? null,
            created_by: createdBy,
            created_at: new Date().toISOString(),
          };
          await trx.insertInto('org_policies').values(values).execute();
          return values;
        });
        this.install(org.id, row.version, parsed);
        await this.changes
          ?.notify('policies', org.id)
          .catch((err) => this.log.warn({ err }, 'could not notify other replicas; they poll within a second'));
        return toVersion(row);
      } catch (err) {
        // Two admins applying at once: the loser retries on top of the winner's version.
        if (isUniqueViolation(err) && attempt < 5) continue;
        throw err;
      }
    }
  }

  /** A rollback is a new version carrying an old text, so the history stays linear and auditable. */
  async rollback(org: Org, version: number, createdBy: string): Promise<PolicyVersion> {
    const old = await this.get(org, version);
    if (!old) throw new InvalidInput('version', `org ${org.name} has no policy version ${version}`);
    return this.apply(org, old.source, createdBy, `rollback to version ${version}`);
  }
}

function toVersion(row: {
  version: number;
  sha256: string;
  message: string | null;
  created_by: string;
  created_at: string;
  source: string;
}): PolicyVersion {
  return {
    version: Number(row.version),
    sha256: row.sha256,
    message: row.message,
    createdBy: row.created_by,
    createdAt: row.created_at,
    // Ids need only the parse, not a validation (history lists up to 500 versions).
    policyIds: Object.keys(parsePolicyFile(row.source).policies),
  };
}
