/**
 * The flake catalogue for listings and search, apart from publishing: the catalogue in memory
 * (FlakeCatalogue) and the ranking (searchCatalogue, PURE). Who may see an entry is the caller's
 * `visible` (RegistryService.listFlakes asks the authorizer).
 */
import type { Db } from '../storage/types.js';
import type { Visibility } from '../wire/access.js';

export interface FlakeSummary {
  org: string;
  flake: string;
  visibility: Visibility;
  description: string | null;
  labels: string[];
  updatedAt: string;
  score: number;
}

export interface CatalogueEntry {
  orgId: string;
  orgName: string;
  name: string;
  visibility: Visibility;
  description: string | null;
  labels: string[];
  updatedAt: string;
  lowerName: string;
  lowerOrg: string;
  lowerDescription: string;
  haystack: string;
}

export interface CatalogueQuery {
  org?: string;
  query?: string;
  limit?: number;
}

const CATALOGUE_TTL_MS = 5_000;

/**
 * PURE: the entries of `opts.org` (all orgs without it) holding every term of `opts.query`, that
 * `visible` allows, best first: exact name, name prefix, name or org substring, label, description.
 */
export function searchCatalogue(
  entries: readonly CatalogueEntry[],
  opts: CatalogueQuery,
  visible: (e: CatalogueEntry) => boolean,
): FlakeSummary[] {
  const terms = (opts.query ?? '').toLowerCase().split(/\s+/).filter(Boolean).slice(0, 8);
  const out: FlakeSummary[] = [];
  for (const e of entries) {
    if (opts.org !== undefined && e.orgName !== opts.org) continue;
    if (!terms.every((t) => e.haystack.includes(t))) continue;
    if (!visible(e)) continue;
    let score = 0;
    for (const t of terms) {
      if (e.lowerName === t) score += 100;
      else if (e.lowerName.startsWith(t)) score += 50;
      else if (e.lowerName.includes(t) || e.lowerOrg.includes(t)) score += 20;
      if (e.labels.includes(t)) score += 10;
      if (e.lowerDescription.includes(t)) score += 5;
    }
    out.push({
      org: e.orgName,
      flake: e.name,
      visibility: e.visibility,
      description: e.description,
      labels: e.labels,
      updatedAt: e.updatedAt,
      score,
    });
  }
  return out
    .sort(
      (a, b) =>
        b.score - a.score ||
        (a.org < b.org ? -1 : a.org > b.org ? 1 : a.flake < b.flake ? -1 : a.flake > b.flake ? 1 : 0),
    )
    .slice(0, Math.min(Math.max(opts.limit ?? 50, 1), 500_000));
}

/** A catalogue entry from what a listing shows of a flake. */
export function catalogueEntry(r: {
  orgId: string;
  orgName: string;
  name: string;
  visibility: Visibility;
  description: string | null;
  labels: string[];
  updatedAt: string;
}): CatalogueEntry {
  const description = r.description ?? '';
  return {
    ...r,
    lowerName: r.name.toLowerCase(),
    lowerOrg: r.orgName.toLowerCase(),
    lowerDescription: description.toLowerCase(),
    haystack: `${r.orgName}/${r.name} ${description} ${r.labels.join(' ')}`.toLowerCase(),
  };
}

/**
 * The flake catalogue in memory for listings and search: small (a 10k-flake catalogue is a few
 * MB) and read far more often than written. Reloaded after this replica publishes (`invalidate`)
 * and at most `CATALOGUE_TTL_MS` after another replica did.
 */
export class FlakeCatalogue {
  private cache: { at: number; entries: CatalogueEntry[] } | undefined;
  private load: Promise<CatalogueEntry[]> | undefined;

  constructor(private readonly db: Db) {}

  invalidate(): void {
    this.cache = undefined;
  }

  async entries(): Promise<CatalogueEntry[]> {
    if (this.cache && Date.now() - this.cache.at < CATALOGUE_TTL_MS) return this.cache.entries;
    this.load ??= (async () => {
      try {
        const rows = await this.db
          .selectFrom('flakes')
          .innerJoin('orgs', 'orgs.id', 'flakes.org_id')
          .select([
            'flakes.name',
            'flakes.visibility',
            'flakes.description',
            'flakes.labels',
            'flakes.updated_at',
            'orgs.id as org_id',
            'orgs.name as org_name',
          ])
          .execute();
        const entries = rows.map((r) =>
          catalogueEntry({
            orgId: r.org_id,
            orgName: r.org_name,
            name: r.name,
            visibility: r.visibility,
            description: r.description,
            labels: JSON.parse(r.labels) as string[],
            updatedAt: r.updated_at,
          }),
        );
        this.cache = { at: Date.now(), entries };
        return entries;
      } finally {
        this.load = undefined;
      }
    })();
    return this.load;
  }
}
