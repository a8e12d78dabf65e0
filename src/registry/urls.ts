/** The URLs of a release that Nix fetches. Pure. */
import type { Release } from './service.js';

/**
 * The immutable URL of one release: it always serves the same bytes (versions are immutable and
 * yanked releases stay fetchable here), so a lock of it never drifts, whichever Nix made it.
 */
export function pinnedUrl(base: string, r: Pick<Release, 'org' | 'flake' | 'id' | 'version'>): string {
  return `${base}/f/pinned/${encodeURIComponent(r.org)}/${encodeURIComponent(r.flake)}/${encodeURIComponent(r.version.text)}/${r.id}/source.tar.gz`;
}
