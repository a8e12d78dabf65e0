/**
 * The flake registry: releases published from trusted CI, resolved by version requirement, served
 * as immutable tarballs. Reads return undefined for both "missing" and "not allowed" (a private
 * flake does not exist for those who may not read it). Listings and search are search.ts.
 * Over 350 lines: staging, publishing, resolving and yanking releases share the flake rows, the
 * publisher check and the tarball store, so they change together.
 */
import type { AuditEvent } from '../audit/log.js';
import type { RequestFacts } from '../policy/actions.js';
import { DeployScopes } from './deploy.js';
import { outputStorePath } from './inventory.js';
import { randomUUID } from 'node:crypto';
import { finished } from 'node:stream/promises';
import { z } from 'zod';
import { Conflict, Forbidden, InvalidInput, NotFound, NotFoundWithReason, TooLarge } from '../errors.js';
import type { CacheService } from '../cache/service.js';
import { hashPartOf, parseStorePath } from '../nix/store-path.js';
import type { Principal } from '../identity/principal.js';
import type { FlakeResource } from '../policy/actions.js';
import type { Authorizer } from '../policy/authorize.js';
import type { Org, OrgService } from '../org/service.js';
import { isUniqueViolation, parseName } from '../org/service.js';
import type { BlobRead, Storage } from '../storage/types.js';
import { type CatalogueQuery, FlakeCatalogue, type FlakeSummary, searchCatalogue } from './search.js';
import { DEFAULT_TARBALL_LIMITS, type VerifiedTarball, verifyFlakeTarball } from './tarball.js';
import { announceSources, sourceRow, storeSourceNar } from './sources.js';
import {
  MAX_README_BYTES,
  type RenderReadme,
  storedReadmeHtml,
  withRenderedReadme,
  withoutRenderedReadme,
} from './readme.js';
import {
  type Version,
  admittedKeyPatterns,
  compareVersions,
  parseRequirement,
  parseVersion,
  requirementBounds,
  resolveRequirement,
  versionSortKey,
} from './version.js';
import type { Selectable } from 'kysely';
import type { Schema } from '../storage/types.js';
import { type Visibility, VISIBILITIES } from '../wire/access.js';

export type { Visibility } from '../wire/access.js';

/** Release metadata as flakehub-push sends it (unknown fields are kept, not trusted). */
export const releaseMetadataSchema = z
  .object({
    commit_count: z.number().int().nonnegative().nullable().optional(),
    description: z.string().max(10_000).nullable().optional(),
    readme: z.string().max(1_000_000).nullable().optional(),
    repo: z.string().max(200).optional(),
    revision: z
      .string()
      .regex(/^[0-9a-f]{40}$/, 'a 40-character git commit hash')
      .nullable()
      .optional(),
    visibility: z.enum([...VISIBILITIES, 'hidden']),
    source_subdirectory: z.string().max(500).optional(),
    spdx_identifier: z.string().max(200).nullable().optional(),
    labels: z
      .array(
        z.string().regex(/^[a-z0-9-]{1,50}$/, 'labels are lower-case letters, digits and "-", at most 50 characters'),
      )
      .max(25)
      .optional(),
    outputs: z.unknown().optional(),
    raw_flake_metadata: z.unknown().optional(),
    mirrored: z.boolean().optional(),
  })
  .passthrough();
export type ReleaseMetadata = z.infer<typeof releaseMetadataSchema>;

export interface Release {
  id: string;
  org: string;
  flake: string;
  version: Version;
  revision: string | null;
  commitCount: number | null;
  narHash: string;
  lastModified: number;
  tarballKey: string;
  tarballSize: number;
  yanked: boolean;
  createdAt: string;
}

// Lives in errors.ts (slice names use it too); re-exported for the registry's importers.
export { NotFoundWithReason } from '../errors.js';

export interface FlakeDetails {
  org: string;
  flake: string;
  visibility: Visibility;
  description: string | null;
  labels: string[];
  createdAt: string;
  updatedAt: string;
  releases: Array<Release & { metadata: ReleaseMetadata; publishedBy: string }>;
}

interface FlakeRow {
  id: string;
  org_id: string;
  name: string;
  source_binding: string | null;
  visibility: Visibility;
  description: string | null;
  labels: string;
}

const UPLOAD_TTL_MS = 30 * 60_000;

/** Rows per resolution query; more are read only when the prerelease rule skips a whole page. */
const RESOLVE_PAGE = 16;

function releaseOf(r: Selectable<Schema['releases']>, org: string, flake: string): Release {
  return {
    id: r.id,
    org,
    flake,
    version: parseVersion(r.version),
    revision: r.revision,
    commitCount: r.commit_count,
    narHash: r.nar_hash,
    lastModified: Number(r.last_modified),
    tarballKey: r.tarball_key,
    tarballSize: Number(r.tarball_size),
    yanked: r.yanked_at !== null,
    createdAt: r.created_at,
  };
}

function versionKey(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}${v.prerelease.length ? `-${v.prerelease.join('.')}` : ''}`;
}

/** The repository a CI identity stands for, by immutable id. */
function sourceBindingOf(p: Principal): string | undefined {
  if (p.kind !== 'token' || !p.identity) return undefined;
  const c = p.identity.claims;
  if (p.identity.provider === 'github' && typeof c.repository_id === 'string')
    return `github:${p.identity.issuer}:${c.repository_id}`;
  if (p.identity.provider === 'gitlab' && typeof c.project_id === 'string')
    return `gitlab:${p.identity.issuer}:${c.project_id}`;
  return undefined;
}

export class RegistryService {
  constructor(
    private readonly storage: Storage,
    private readonly orgs: OrgService,
    private readonly authorizer: Authorizer,
    private readonly cache: CacheService,
    private readonly audit: { append(e: AuditEvent): void } = { append() {} },
    private readonly renderReadme?: RenderReadme,
  ) {
    this.catalogue = new FlakeCatalogue(storage.db);
  }

  private readonly catalogue: FlakeCatalogue;

  /**
   * `<org>/<flake>/<req>#<attr>` to the output's store path, from the outputs inventory published
   * with the release (no evaluation). Only for callers who may read that path in the cache.
   */
  async resolveOutput(
    p: Principal,
    orgName: string,
    flakeName: string,
    requirement: string,
    attr: string,
  ): Promise<{ release: Release; storePath: string }> {
    // A deploy-only token may resolve exactly the outputs it names (to fetch their closures).
    const release = await this.resolve(
      p,
      orgName,
      flakeName,
      requirement,
      DeployScopes.grants(p, orgName, flakeName, attr) ? { deployFlake: true } : {},
    );
    if (!release) throw new NotFound();
    // A deploy-only token learns nothing about releases its requirement does not cover.
    if (p.kind === 'token' && p.deploy && !DeployScopes.grantsRelease(p, orgName, flakeName, attr, release.version))
      throw new NotFound();
    const row = await this.storage.db
      .selectFrom('releases')
      .select('metadata')
      .where('id', '=', release.id)
      .executeTakeFirstOrThrow();
    const storePath = outputStorePath(row.metadata, attr);
    if (storePath === undefined)
      throw new NotFoundWithReason(
        `${orgName}/${flakeName} ${release.version.text} has no output ${attr} with a store path (publish with output paths included)`,
      );
    const base = parseStorePath(storePath);
    if ((await this.cache.findNarInfo(p, { kind: 'unified' }, hashPartOf(base))) === undefined) {
      throw new NotFoundWithReason(
        `${attr} of ${orgName}/${flakeName} ${release.version.text} is ${storePath}, but that closure is not in the cache (or not readable with your token)`,
      );
    }
    return { release, storePath };
  }

  private resource(org: { id: string; name: string }, flake: { name: string; visibility: Visibility }): FlakeResource {
    return {
      type: 'flake',
      org: { id: org.id, name: org.name },
      flake: { name: flake.name, visibility: flake.visibility },
    };
  }

  private async requirePublisher(
    p: Principal,
    orgName: string,
    flakeName: string,
  ): Promise<{ org: Org; flake: FlakeRow | undefined }> {
    parseName('slice', flakeName.toLowerCase());
    const org = await this.orgs.findOrg(orgName);
    if (!org) throw new Forbidden(`not allowed to publish to ${orgName}`);
    const flake = (await this.storage.db
      .selectFrom('flakes')
      .selectAll()
      .where('org_id', '=', org.id)
      .where('name', '=', flakeName)
      .executeTakeFirst()) as FlakeRow | undefined;
    const d = this.authorizer.authorize(
      p,
      'flake.publish',
      this.resource(org, { name: flakeName, visibility: flake?.visibility ?? 'private' }),
    );
    if (!d.allowed) throw new Forbidden(`not allowed to publish ${orgName}/${flakeName}: ${d.reason}`);
    const binding = sourceBindingOf(p);
    if (flake?.source_binding && binding && flake.source_binding !== binding) {
      throw new Forbidden(
        `${orgName}/${flakeName} is published from another repository; this identity cannot publish it`,
      );
    }
    return { org, flake };
  }

  /** flakehub-push step 1: checks the caller may publish and records what will be uploaded. */
  /** `readMetadata` reads the request body: called only once the caller may publish. */
  async stage(
    p: Principal,
    req: {
      org: string;
      flake: string;
      version: string;
      size: number;
      sha256: string;
      readMetadata: () => Promise<unknown>;
    },
  ): Promise<{ id: string }> {
    const { org, flake } = await this.requirePublisher(p, req.org, req.flake);
    const version = parseVersion(req.version);
    const meta = this.parseMetadata(await req.readMetadata());
    if (!Number.isSafeInteger(req.size) || req.size <= 0)
      throw new InvalidInput('tarball size', 'must be a positive integer');
    if (req.size > DEFAULT_TARBALL_LIMITS.maxCompressedBytes)
      throw new TooLarge(`tarball larger than ${DEFAULT_TARBALL_LIMITS.maxCompressedBytes} bytes`);
    if (!/^[0-9a-f]{64}$/.test(req.sha256)) throw new InvalidInput('tarball sha256', 'expected a SHA-256 digest');
    if (flake) await this.assertVersionFree(flake.id, version, req.org, req.flake);
    const id = randomUUID();
    await this.storage.db
      .insertInto('release_uploads')
      .values({
        id,
        org_id: org.id,
        flake: req.flake,
        version: version.text,
        size: req.size,
        sha256: req.sha256,
        metadata: JSON.stringify(meta),
        tarball_key: null,
        created_by: stagedBy(p),
        expires_at: new Date(Date.now() + UPLOAD_TTL_MS).toISOString(),
      })
      .execute();
    return { id };
  }

  /** flakehub-push step 2: the tarball bytes, for a staged upload (the unguessable id is the capability). */
  /**
   * flakehub-push step 2. The unguessable upload id is the capability, so it is checked before the
   * body is read (`readBody(n)` reads at most n bytes): nobody else can make the server take in a
   * tarball, and the holder no more than the size it staged.
   */
  async receiveTarball(uploadId: string, readBody: (maxBytes: number) => Promise<Buffer>): Promise<void> {
    const up = await this.storage.db
      .selectFrom('release_uploads')
      .selectAll()
      .where('id', '=', uploadId)
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    if (!up) throw new NotFound();
    const bytes = await readBody(Number(up.size));
    if (bytes.length !== Number(up.size))
      throw new InvalidInput('tarball', `size ${bytes.length} differs from the staged ${up.size}`);
    const verified = await verifyFlakeTarball(bytes);
    if (verified.sha256 !== up.sha256) throw new InvalidInput('tarball', 'SHA-256 differs from the staged checksum');
    const key = await this.storeTarball(bytes, verified);
    await this.storage.db.updateTable('release_uploads').set({ tarball_key: key }).where('id', '=', uploadId).execute();
  }

  /** flakehub-push step 3: makes the release exist. */
  async publishStaged(p: Principal, uploadId: string): Promise<Release> {
    // Expired = gone, as for the tarball PUT (GC may already have taken the tarball).
    const up = await this.storage.db
      .selectFrom('release_uploads')
      .selectAll()
      .where('id', '=', uploadId)
      .where('expires_at', '>', new Date().toISOString())
      .executeTakeFirst();
    if (!up) throw new NotFound();
    // The id travels through URLs and logs of CI jobs: holding it must not let another identity publish what someone else staged.
    if (up.created_by !== stagedBy(p))
      throw new Forbidden('this upload was staged by another identity; only the one that staged it can publish it');
    if (!up.tarball_key) throw new InvalidInput('upload', 'the tarball was not uploaded yet');
    const org = await this.storage.db
      .selectFrom('orgs')
      .select(['id', 'name'])
      .where('id', '=', up.org_id)
      .executeTakeFirstOrThrow();
    const read = await this.storage.blobs.get(up.tarball_key);
    if (!read) throw new NotFound();
    const bytes = await collect(read);
    const release = await this.publish(p, {
      org: org.name,
      flake: up.flake,
      version: up.version,
      tarball: bytes,
      metadata: JSON.parse(up.metadata),
    });
    await this.storage.db.deleteFrom('release_uploads').where('id', '=', uploadId).execute();
    return release;
  }

  /** Publishes in one call (Floe's own API and the last step of the flakehub-push protocol). */
  async publish(
    p: Principal,
    req: { org: string; flake: string; version: string; tarball: Buffer; metadata: unknown },
  ): Promise<Release> {
    const { org } = await this.requirePublisher(p, req.org, req.flake);
    const version = parseVersion(req.version);
    const meta = this.parseMetadata(req.metadata);
    const verified = await verifyFlakeTarball(req.tarball);
    const key = await this.storeTarball(req.tarball, verified);
    // The tree as a NAR, for Nix substituting the locked input from /cache (sources.ts).
    const source = await storeSourceNar(this.storage, verified.nar);
    const visibility: Visibility = meta.visibility === 'hidden' ? 'unlisted' : meta.visibility;
    const now = new Date().toISOString();
    const binding = sourceBindingOf(p) ?? null;
    const id = randomUUID();
    const stored =
      meta.readme && this.renderReadme ? withRenderedReadme(meta, id, await this.renderReadme(meta.readme)) : meta;
    try {
      await this.storage.db.transaction().execute(async (trx) => {
        let flake = await trx
          .selectFrom('flakes')
          .selectAll()
          .where('org_id', '=', org.id)
          .where('name', '=', req.flake)
          .executeTakeFirst();
        if (!flake) {
          await trx
            .insertInto('flakes')
            .values({
              id: randomUUID(),
              org_id: org.id,
              name: req.flake,
              source_binding: binding,
              visibility,
              description: meta.description ?? null,
              labels: JSON.stringify(meta.labels ?? []),
              created_at: now,
              updated_at: now,
            })
            .execute();
          flake = await trx
            .selectFrom('flakes')
            .selectAll()
            .where('org_id', '=', org.id)
            .where('name', '=', req.flake)
            .executeTakeFirstOrThrow();
        } else {
          await trx
            .updateTable('flakes')
            .set({
              visibility,
              description: meta.description ?? flake.description,
              labels: JSON.stringify(meta.labels ?? JSON.parse(flake.labels)),
              updated_at: now,
              source_binding: flake.source_binding ?? binding,
            })
            .where('id', '=', flake.id)
            .execute();
        }
        await trx
          .insertInto('releases')
          .values({
            id,
            flake_id: flake.id,
            version: version.text,
            version_key: versionKey(version),
            version_sort: versionSortKey(version),
            revision: meta.revision ?? null,
            commit_count: meta.commit_count ?? null,
            nar_hash: verified.narHash,
            last_modified: verified.lastModified,
            tarball_key: key,
            tarball_size: verified.size,
            metadata: JSON.stringify(stored),
            published_by: p.kind === 'anonymous' ? 'anonymous' : p.subject,
            yanked_at: null,
            created_at: now,
          })
          .execute();
        await trx.insertInto('release_sources').values(sourceRow(id, source)).execute();
      });
      this.catalogue.invalidate();
      await announceSources(this.storage, [source.hashPart]);
      this.audit.append({
        principal: p,
        action: 'flake.publish',
        target: `${org.name}/${req.flake}@${version.text}`,
        orgId: org.id,
        detail: { releaseId: id, revision: meta.revision ?? null, visibility, tarballSha256: verified.sha256 },
      });
    } catch (err) {
      if (isUniqueViolation(err))
        throw new Conflict(
          `${req.org}/${req.flake} ${version.text} (or another build of ${versionKey(version)}) is already published; releases are immutable`,
        );
      throw err;
    }
    return {
      id,
      org: org.name,
      flake: req.flake,
      version,
      revision: meta.revision ?? null,
      commitCount: meta.commit_count ?? null,
      narHash: verified.narHash,
      lastModified: verified.lastModified,
      tarballKey: key,
      tarballSize: verified.size,
      yanked: false,
      createdAt: now,
    };
  }

  /** Releases of a flake the caller may read, newest first; undefined when missing or denied. */
  async releases(
    p: Principal,
    orgName: string,
    flakeName: string,
    facts: RequestFacts = {},
  ): Promise<Release[] | undefined> {
    const flake = await this.readableFlake(p, orgName, flakeName, facts);
    if (!flake) return undefined;
    const rows = await this.storage.db.selectFrom('releases').selectAll().where('flake_id', '=', flake.id).execute();
    return rows.map((r) => releaseOf(r, orgName, flakeName)).sort((a, b) => compareVersions(b.version, a.version));
  }

  /** The flake's id when it exists and the caller may read it. */
  private async readableFlake(
    p: Principal,
    orgName: string,
    flakeName: string,
    facts: RequestFacts,
  ): Promise<{ id: string } | undefined> {
    const row = await this.storage.db
      .selectFrom('flakes')
      .innerJoin('orgs', 'orgs.id', 'flakes.org_id')
      .select(['flakes.id', 'flakes.visibility', 'orgs.id as org_id', 'orgs.name as org_name'])
      .where('orgs.name', '=', orgName)
      .where('flakes.name', '=', flakeName)
      .executeTakeFirst();
    if (!row) return undefined;
    if (
      !this.authorizer.authorize(
        p,
        'flake.read',
        this.resource({ id: row.org_id, name: row.org_name }, { name: flakeName, visibility: row.visibility }),
        facts,
      ).allowed
    )
      return undefined;
    return { id: row.id };
  }

  /**
   * A flake as its page shows it: listing fields, releases (newest first) and the metadata each
   * release was published with. Undefined when missing or denied, like every read.
   */
  async details(p: Principal, orgName: string, flakeName: string): Promise<FlakeDetails | undefined> {
    const releases = await this.releases(p, orgName, flakeName);
    if (!releases) return undefined;
    const row = await this.storage.db
      .selectFrom('flakes')
      .innerJoin('orgs', 'orgs.id', 'flakes.org_id')
      .select([
        'flakes.id',
        'flakes.visibility',
        'flakes.description',
        'flakes.labels',
        'flakes.created_at',
        'flakes.updated_at',
      ])
      .where('orgs.name', '=', orgName)
      .where('flakes.name', '=', flakeName)
      .executeTakeFirstOrThrow();
    const metas = await this.storage.db
      .selectFrom('releases')
      .select(['id', 'metadata', 'published_by'])
      .where('flake_id', '=', row.id)
      .execute();
    const byId = new Map(
      metas.map((m) => [m.id, { metadata: JSON.parse(m.metadata) as ReleaseMetadata, publishedBy: m.published_by }]),
    );
    return {
      org: orgName,
      flake: flakeName,
      visibility: row.visibility,
      description: row.description,
      labels: JSON.parse(row.labels) as string[],
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      releases: releases.map((r) => ({
        ...r,
        metadata: byId.get(r.id)?.metadata ?? { visibility: row.visibility },
        publishedBy: byId.get(r.id)?.publishedBy ?? '',
      })),
    };
  }

  /**
   * The newest non-yanked release matching the requirement, by index: the highest sort key in the
   * requirement's range that the prerelease rule admits, read a page at a time (the first row
   * matches; paging is the safety net), so a flake with many releases costs one short indexed query. Rows without a key
   * (published by an older replica mid-upgrade) are few and matched in memory.
   */
  async resolve(
    p: Principal,
    orgName: string,
    flakeName: string,
    requirement: string,
    facts: RequestFacts = {},
  ): Promise<Release | undefined> {
    const req = parseRequirement(requirement);
    const flake = await this.readableFlake(p, orgName, flakeName, facts);
    if (!flake) return undefined;
    const { lower, upper } = requirementBounds(req);
    const patterns = admittedKeyPatterns(req);
    const unkeyed = await this.storage.db
      .selectFrom('releases')
      .selectAll()
      .where('flake_id', '=', flake.id)
      .where('version_sort', 'is', null)
      .where('yanked_at', 'is', null)
      .execute();
    const fromUnkeyed = resolveRequirement(
      unkeyed.map((r) => releaseOf(r, orgName, flakeName)),
      req,
    );
    let below: string | undefined;
    for (;;) {
      let q = this.storage.db
        .selectFrom('releases')
        .selectAll()
        .where('flake_id', '=', flake.id)
        .where('yanked_at', 'is', null)
        .where('version_sort', 'is not', null);
      if (lower) q = q.where('version_sort', lower.inclusive ? '>=' : '>', lower.key);
      if (upper) q = q.where('version_sort', upper.inclusive ? '<=' : '<', upper.key);
      if (below !== undefined) q = q.where('version_sort', '<', below);
      q = q.where((eb) => eb.or(patterns.map((pattern) => eb('version_sort', 'like', pattern))));
      const page = await q.orderBy('version_sort', 'desc').limit(RESOLVE_PAGE).execute();
      const best = resolveRequirement(
        page.map((r) => releaseOf(r, orgName, flakeName)),
        req,
      );
      if (best || page.length < RESOLVE_PAGE) {
        return resolveRequirement(
          [best, fromUnkeyed].filter((r) => r !== undefined),
          req,
        );
      }
      below = page[page.length - 1]!.version_sort!;
    }
  }

  /**
   * What a flake page says about one release (its metadata, the flake's visibility and update
   * time) without reading the flake's other releases. `release` comes from an authorized read.
   */
  async releaseDetails(
    release: Release,
  ): Promise<
    { metadata: ReleaseMetadata; publishedBy: string; visibility: Visibility; updatedAt: string } | undefined
  > {
    const row = await this.storage.db
      .selectFrom('releases')
      .innerJoin('flakes', 'flakes.id', 'releases.flake_id')
      .select(['releases.metadata', 'releases.published_by', 'flakes.visibility', 'flakes.updated_at'])
      .where('releases.id', '=', release.id)
      .executeTakeFirst();
    if (!row) return undefined;
    const metadata = JSON.parse(row.metadata) as ReleaseMetadata;
    return { metadata, publishedBy: row.published_by, visibility: row.visibility, updatedAt: row.updated_at };
  }

  /** One release by id (pinned URLs), yanked or not: existing locks keep working. */
  async release(p: Principal, orgName: string, flakeName: string, id: string): Promise<Release | undefined> {
    const flake = await this.readableFlake(p, orgName, flakeName, {});
    if (!flake) return undefined;
    const row = await this.storage.db
      .selectFrom('releases')
      .selectAll()
      .where('flake_id', '=', flake.id)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && releaseOf(row, orgName, flakeName);
  }

  /**
   * A release's README as HTML: rendered at publish time; releases published before that are
   * rendered once (concurrent views share the render) and the result stored.
   */
  async readmeHtml(release: { id: string; metadata: ReleaseMetadata }): Promise<string | undefined> {
    if (!release.metadata.readme) return undefined;
    const stored = storedReadmeHtml(release.metadata, release.id);
    if (stored !== undefined || !this.renderReadme) return stored;
    let render = this.readmeRenders.get(release.id);
    if (!render) {
      render = this.renderAndStoreReadme(release.id, release.metadata.readme).finally(() =>
        this.readmeRenders.delete(release.id),
      );
      this.readmeRenders.set(release.id, render);
    }
    return render;
  }

  private readonly readmeRenders = new Map<string, Promise<string>>();

  private async renderAndStoreReadme(releaseId: string, readme: string): Promise<string> {
    const html = await this.renderReadme!(readme.slice(0, MAX_README_BYTES));
    const row = await this.storage.db
      .selectFrom('releases')
      .select('metadata')
      .where('id', '=', releaseId)
      .executeTakeFirst();
    if (row)
      await this.storage.db
        .updateTable('releases')
        .set({
          metadata: JSON.stringify(withRenderedReadme(JSON.parse(row.metadata) as ReleaseMetadata, releaseId, html)),
        })
        .where('id', '=', releaseId)
        .execute();
    return html;
  }

  async openTarball(release: Release): Promise<BlobRead | undefined> {
    return this.storage.blobs.get(release.tarballKey);
  }

  async yank(p: Principal, orgName: string, flakeName: string, version: string): Promise<void> {
    const { org } = await this.requirePublisher(p, orgName, flakeName);
    const flake = await this.storage.db
      .selectFrom('flakes')
      .select('id')
      .where('org_id', '=', org.id)
      .where('name', '=', flakeName)
      .executeTakeFirst();
    if (!flake) throw new NotFound();
    const res = await this.storage.db
      .updateTable('releases')
      .set({ yanked_at: new Date().toISOString() })
      .where('flake_id', '=', flake.id)
      .where('version', '=', parseVersion(version).text)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new NotFound();
    this.audit.append({
      principal: p,
      action: 'flake.yank',
      target: `${orgName}/${flakeName}@${version}`,
      orgId: org.id,
    });
  }

  /**
   * Flakes the caller may see in listings and search: public ones, and private/unlisted ones of
   * the caller's own org when it may read them. Unlisted flakes never show to others.
   */
  async listFlakes(p: Principal, opts: CatalogueQuery = {}): Promise<FlakeSummary[]> {
    const memberOrg = p.kind === 'token' ? p.org.id : undefined;
    return searchCatalogue(
      await this.catalogue.entries(),
      opts,
      (e) =>
        e.visibility === 'public' ||
        (e.orgId === memberOrg &&
          this.authorizer.authorize(
            p,
            'flake.read',
            this.resource({ id: e.orgId, name: e.orgName }, { name: e.name, visibility: e.visibility }),
          ).allowed),
    );
  }

  private parseMetadata(input: unknown): ReleaseMetadata {
    const r = releaseMetadataSchema.safeParse(input);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new InvalidInput(`metadata${issue.path.length ? '.' + issue.path.join('.') : ''}`, issue.message);
    }
    const readmeBytes = r.data.readme ? Buffer.byteLength(r.data.readme) : 0;
    if (readmeBytes > MAX_README_BYTES)
      throw new TooLarge(
        `metadata.readme: the README is ${readmeBytes} bytes; at most ${MAX_README_BYTES} (256 KiB) are accepted`,
      );
    return withoutRenderedReadme(r.data);
  }

  private async assertVersionFree(flakeId: string, version: Version, org: string, flake: string): Promise<void> {
    const taken = await this.storage.db
      .selectFrom('releases')
      .select('version')
      .where('flake_id', '=', flakeId)
      .where('version_key', '=', versionKey(version))
      .executeTakeFirst();
    if (taken) throw new Conflict(`${org}/${flake} ${taken.version} is already published; releases are immutable`);
  }

  private async storeTarball(bytes: Buffer, verified: VerifiedTarball): Promise<string> {
    const key = `tarball-${verified.sha256}.tar.gz`;
    if ((await this.storage.blobs.size(key)) !== undefined) return key;
    const writer = await this.storage.blobs.begin();
    try {
      writer.body.end(bytes);
      await finished(writer.body);
      await writer.commit(key);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return key;
  }
}

async function collect(read: BlobRead): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of read.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Who staged an upload: the same identity must publish it (a CI job's tokens share their subject). */
function stagedBy(p: Principal): string {
  return p.kind === 'anonymous'
    ? 'anonymous'
    : p.kind === 'token'
      ? `${p.org.id}:${p.subject}`
      : `server-admin:${p.subject}`;
}
