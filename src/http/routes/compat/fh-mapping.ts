/**
 * PURE: FlakeHub's API shapes as `fh` reads them (DeterminateSystems/fh
 * fce8d029fc320626c220b93de6183320edee8c3f, src/cli/cmd/{mod,list,search,resolve}.rs,
 * status/mod.rs; see docs/compat/fh.md), made from Floe's releases and flake summaries.
 */
import { InvalidInput } from '../../../errors.js';
import type { FlakeSummary } from '../../../registry/search.js';
import type { Release, ReleaseMetadata } from '../../../registry/service.js';

/** `0.1.2+rev-abc` → `0.1.2`: build metadata is not part of what fh shows as the simple version. */
export function simplifiedVersion(text: string): string {
  const plus = text.indexOf('+');
  return plus < 0 ? text : text.slice(0, plus);
}

/**
 * fh sends the requirement of `/version/resolve/...` through `urlencoding::encode` and then
 * `path_segments_mut().push` (which encodes the `%` again); the router decoded once.
 */
export function decodeOnceMore(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new InvalidInput(
      'version requirement',
      `malformed percent-encoding in ${JSON.stringify(segment.slice(0, 80))}`,
    );
  }
}

export const searchResultOf = (f: FlakeSummary) => ({
  org: f.org,
  project: f.flake,
  description: f.description,
  labels: f.labels,
});
export const flakeOf = (f: FlakeSummary) => ({ org: f.org, project: f.flake, labels: f.labels });
export const projectOf = (f: FlakeSummary) => ({ organization_name: f.org, name: f.flake });

/** `list::Release`: what `fh list releases` prints. */
export function releaseRowOf(r: Release, updatedAt: string) {
  return {
    simplified_version: simplifiedVersion(r.version.text),
    version: r.version.text,
    revision: r.revision ?? '',
    published_at: r.createdAt,
    updated_at: updatedAt,
    commit_count: r.commitCount,
  };
}

export const versionOf = (r: Release) => ({
  version: r.version.text,
  simplified_version: simplifiedVersion(r.version.text),
});

/** `owner/repo` of a GitHub repository URL or pair, as FlakeHub names a flake's source. */
export function ownerRepoPair(repo: string | undefined, fallback: string): string {
  const m = repo ? /^(?:https?:\/\/github\.com\/)?([\w.-]+\/[\w.-]+?)(?:\.git)?\/?$/.exec(repo) : null;
  return m ? m[1]! : fallback;
}

/**
 * The release object of `GET /version/{org}/{flake}/{req}` (fh's `ProjectMetadata` and
 * `ProjectCanonicalNames`; Renovate's FlakeHub datasource reads the same fields).
 */
export interface ReleaseObjectInput {
  release: Release;
  metadata: ReleaseMetadata;
  visibility: string;
  updatedAt: string;
  downloadUrl: string;
  prettyDownloadUrl: string;
}

export function releaseObjectOf(o: ReleaseObjectInput) {
  const { release: r, metadata: m } = o;
  return {
    project: `${r.org}/${r.flake}`,
    version: r.version.text,
    simplified_version: simplifiedVersion(r.version.text),
    revision: r.revision ?? '',
    commit_count: r.commitCount,
    description: m.description ?? null,
    visibility: o.visibility,
    repo_url: m.repo ? (m.repo.includes('://') ? m.repo : `https://github.com/${m.repo}`) : null,
    source_subdirectory: m.source_subdirectory ?? null,
    mirrored: m.mirrored ?? false,
    yanked_at: r.yanked ? o.updatedAt : null,
    readme: m.readme ?? null,
    published_at: r.createdAt,
    updated_at: o.updatedAt,
    download_url: o.downloadUrl,
    pretty_download_url: o.prettyDownloadUrl,
    source_github_owner_repo_pair: ownerRepoPair(m.repo, `${r.org}/${r.flake}`),
    spdx_identifier: m.spdx_identifier ?? null,
    nar_hash: r.narHash,
    last_modified: r.lastModified,
  };
}

/** `TokenStatus`: fh prints `gh_name` as the user name and reads `expires_at` as unix seconds. */
export function cliStatusOf(subject: string, expiresAt: number | undefined, org: string | null) {
  return { gh_name: subject, expires_at: expiresAt ?? 0, org };
}

/** Whether the request asks for JSON (fh's default `Accept: application/json`). */
export function wantsJson(accept: string | undefined): boolean {
  return (accept ?? '').split(',').some((t) => t.trim().split(';')[0]!.trim().toLowerCase() === 'application/json');
}
