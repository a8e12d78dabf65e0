/**
 * READMEs rendered safely: markdown-it with raw HTML disabled (tags in the source come out as
 * text), its link validation (no javascript:, vbscript:, file: or non-image data: URLs), and
 * links marked nofollow/noopener. Nothing from a README reaches the page unescaped.
 *
 * Images load only from this server (relative URLs) or inline data: a README pointing an image at
 * another origin would make every reader's browser report to that origin (a private flake's page
 * beaconing who reads it). Those images become plain links; the page's CSP (`img-src 'self' data:`)
 * refuses them as well.
 *
 * Rendering is CPU work proportional to a README's size and shape (markdown-it is superlinear on
 * some inputs): it runs in a worker thread (readme-renderer.ts), once per release, never on the
 * event loop of a request.
 */
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, typographer: false });

const defaultLinkOpen =
  md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx]!.attrSet('rel', 'nofollow noopener noreferrer');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

const defaultImage = md.renderer.rules.image!;
md.renderer.rules.image = (tokens, idx, options, env, self) => {
  const token = tokens[idx]!;
  const src = token.attrGet('src') ?? '';
  if (isLocalImage(src)) return defaultImage(tokens, idx, options, env, self);
  const alt = self.renderInlineAsText(token.children ?? [], options, env) || 'image';
  return `<a href="${md.utils.escapeHtml(src)}" rel="nofollow noopener noreferrer" class="external-image">${md.utils.escapeHtml(alt)}</a>`;
};

const PAGE_BASE = 'https://floe.invalid/flakes/org/flake';

/** Relative to this server (resolved as a browser would: `//host` and `/\host` are other origins) or inline data. */
export function isLocalImage(src: string): boolean {
  if (/^data:image\//i.test(src)) return true;
  try {
    return new URL(src, PAGE_BASE).origin === new URL(PAGE_BASE).origin;
  } catch {
    return false;
  }
}

/** Sanity bound only: publishing refuses READMEs over MAX_README_BYTES (registry/readme.ts). */
const MAX_README_CHARS = 300_000;

export function renderMarkdown(text: string): string {
  return md.render(text.length > MAX_README_CHARS ? `${text.slice(0, MAX_README_CHARS)}\n\n…` : text);
}

/** What a README looks like when it cannot be rendered in time: its text, escaped. */
export function readmeAsText(text: string): string {
  return `<pre class="readme-source">${md.utils.escapeHtml(text.slice(0, MAX_README_CHARS))}</pre>\n`;
}
