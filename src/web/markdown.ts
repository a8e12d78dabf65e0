/**
 * READMEs rendered safely: markdown-it with raw HTML disabled (tags in the source come out as
 * text), its link validation (no javascript:, vbscript:, file: or non-image data: URLs), and
 * links marked nofollow/noopener. Nothing from a README reaches the page unescaped.
 */
import MarkdownIt from 'markdown-it';

const md = new MarkdownIt({ html: false, linkify: true, typographer: false });

const defaultLinkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, _env, self) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx]!.attrSet('rel', 'nofollow noopener noreferrer');
  return defaultLinkOpen(tokens, idx, options, env, self);
};

const MAX_README_CHARS = 200_000;

export function renderMarkdown(text: string): string {
  return md.render(text.length > MAX_README_CHARS ? `${text.slice(0, MAX_README_CHARS)}\n\n…` : text);
}
