/**
 * What a deploy-only device token may read: the closures of the flake outputs its grants name, in
 * every non-yanked release matching each grant's version requirement (so a new release is followed
 * without a new token). Computed from the references Floe stores, never from the client's word.
 */
import { InvalidInput } from '../errors.js';
import type { DeployGrant, Principal } from '../identity/principal.js';
import type { Db } from '../storage/types.js';
import { outputStorePath } from './inventory.js';
import { parseRequirement, parseVersion, satisfies, type Version } from './version.js';

const STORE_PATH_HASH = /^(?:\/nix\/store\/)?([0-9a-df-np-sv-z]{32})-/;

interface Memo {
  hashes: ReadonlySet<string>;
  at: number;
}

export class DeployScopes {
  private readonly memo = new Map<string, Memo>();
  /** A path outside the memoized closure triggers a recomputation after this long (new releases). */
  private static readonly MISS_RECHECK_MS = 1_000;
  /** Even paths inside it are re-checked this often (a yanked release stops granting its closure). */
  private static readonly TTL_MS = 30_000;

  constructor(private readonly db: Db) {}

  /** Hash parts of every path the token may read; undefined for tokens that are not deploy-only. */
  async closureOf(p: Principal, wanted?: string): Promise<ReadonlySet<string> | undefined> {
    if (p.kind !== 'token' || !p.deploy) return undefined;
    const now = Date.now();
    const hit = this.memo.get(p.tokenId);
    if (
      hit &&
      now - hit.at < DeployScopes.TTL_MS &&
      (wanted === undefined || hit.hashes.has(wanted) || now - hit.at < DeployScopes.MISS_RECHECK_MS)
    )
      return hit.hashes;
    const hashes = await this.compute(p.org.id, p.deploy);
    if (this.memo.size > 10_000) this.memo.clear();
    this.memo.set(p.tokenId, { hashes, at: now });
    return hashes;
  }

  /** Whether a grant names this flake (and this output, when given). */
  static grants(p: Principal, org: string, flake: string, attr?: string): boolean {
    return (
      p.kind === 'token' &&
      !!p.deploy?.some((g) => g.org === org && g.flake === flake && (attr === undefined || g.attr === attr))
    );
  }

  /** Whether a grant covers this output of this release (its version matches the requirement). */
  static grantsRelease(p: Principal, org: string, flake: string, attr: string, version: Version): boolean {
    return (
      p.kind === 'token' &&
      !!p.deploy?.some(
        (g) =>
          g.org === org && g.flake === flake && g.attr === attr && satisfies(version, parseRequirement(g.requirement)),
      )
    );
  }

  async roots(orgId: string, grants: readonly DeployGrant[]): Promise<string[]> {
    const roots: string[] = [];
    for (const g of grants) {
      const flake = await this.db
        .selectFrom('flakes')
        .select('id')
        .where('org_id', '=', orgId)
        .where('name', '=', g.flake)
        .executeTakeFirst();
      if (!flake) continue;
      const req = parseRequirement(g.requirement);
      const releases = await this.db
        .selectFrom('releases')
        .select(['version', 'metadata'])
        .where('flake_id', '=', flake.id)
        .where('yanked_at', 'is', null)
        .execute();
      for (const r of releases) {
        if (!satisfies(parseVersion(r.version), req)) continue;
        const out = outputStorePath(r.metadata, g.attr);
        if (out) roots.push(out);
      }
    }
    return roots;
  }

  private async compute(orgId: string, grants: readonly DeployGrant[]): Promise<ReadonlySet<string>> {
    const seen = new Set<string>();
    let frontier = (await this.roots(orgId, grants))
      .map((r) => STORE_PATH_HASH.exec(r)?.[1])
      .filter((h): h is string => !!h);
    // Breadth-first over the references stored with the org's paths (any of its slices).
    while (frontier.length > 0) {
      const next: string[] = [];
      const fresh = frontier.filter((h) => !seen.has(h));
      for (const h of fresh) seen.add(h);
      for (let i = 0; i < fresh.length; i += 500) {
        const rows = await this.db
          .selectFrom('paths')
          .innerJoin('slices', 'slices.id', 'paths.slice_id')
          .select('paths.refs')
          .where('slices.org_id', '=', orgId)
          .where('paths.hash_part', 'in', fresh.slice(i, i + 500))
          .execute();
        for (const row of rows) {
          for (const ref of row.refs.split(' ').filter(Boolean)) {
            const h = STORE_PATH_HASH.exec(ref)?.[1];
            if (h && !seen.has(h)) next.push(h);
          }
        }
      }
      frontier = next;
    }
    return seen;
  }
}

/**
 * Parses `org/flake/requirement#attr` (or `flake/requirement#attr` within `defaultOrg`), e.g.
 * `acme/ethercalc/*#nixosConfigurations.web`. The requirement defaults to `*`.
 */
export function parseDeployGrant(text: string, defaultOrg: string): DeployGrant {
  const hash = text.indexOf('#');
  if (hash < 0)
    throw new InvalidInput(
      'deploy',
      `${JSON.stringify(text)} names no output: expected org/flake/requirement#attr, e.g. acme/ethercalc/*#nixosConfigurations.web`,
    );
  const attr = text.slice(hash + 1);
  const parts = text.slice(0, hash).split('/');
  if (!/^[A-Za-z_][\w'-]*(\.[A-Za-z_][\w'-]*)*$/.test(attr))
    throw new InvalidInput('deploy', `${JSON.stringify(attr)} is not an attribute path`);
  const [org, flake, requirement] =
    parts.length === 3
      ? parts
      : parts.length === 2
        ? [defaultOrg, parts[0], parts[1]]
        : parts.length === 1
          ? [defaultOrg, parts[0], '*']
          : [];
  if (!org || !flake || !requirement)
    throw new InvalidInput('deploy', `expected org/flake/requirement#attr, got ${JSON.stringify(text)}`);
  parseRequirement(requirement); // throws with a message naming the problem
  return { org, flake, requirement, attr };
}
