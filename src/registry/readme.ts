/**
 * READMEs are rendered to HTML once, when a release is published, and kept in the release's
 * metadata JSON: the flake page serves stored HTML instead of running markdown-it for every
 * anonymous view (a pathological README cost seconds per render).
 *
 * The stored value names the release it was rendered for. Release ids are minted by the server at
 * publish time, after the client sent its metadata, so a client-supplied `floe_readme` field
 * (kept by the passthrough schema in releases published before this existed) can never match and
 * is never served as HTML.
 */
export const MAX_README_BYTES = 256 * 1024;

/** The key in a release's metadata JSON that holds the rendered README. */
export const RENDERED_README_KEY = 'floe_readme';

/** Markdown in, safe HTML out; never throws (it falls back to escaped text). Off the event loop. */
export type RenderReadme = (markdown: string) => Promise<string>;

export interface RenderedReadme {
  release: string;
  html: string;
}

/** The stored HTML of this release's README, if it was rendered by the server for this release. */
export function storedReadmeHtml(metadata: Record<string, unknown>, releaseId: string): string | undefined {
  const v = metadata[RENDERED_README_KEY] as Partial<RenderedReadme> | undefined;
  return v !== null && typeof v === 'object' && v.release === releaseId && typeof v.html === 'string'
    ? v.html
    : undefined;
}

export function withRenderedReadme<T extends Record<string, unknown>>(
  metadata: T,
  releaseId: string,
  html: string,
): T & { [RENDERED_README_KEY]: RenderedReadme } {
  return { ...metadata, [RENDERED_README_KEY]: { release: releaseId, html } };
}

/** What a client sent, without a field only the server may write. */
export function withoutRenderedReadme<T extends Record<string, unknown>>(metadata: T): T {
  if (!(RENDERED_README_KEY in metadata)) return metadata;
  const { [RENDERED_README_KEY]: _dropped, ...rest } = metadata;
  return rest as T;
}
