import { describe, expect, it } from 'vitest';
import { isLocalImage, readmeAsText, renderMarkdown } from './markdown.js';

describe('README images', () => {
  it('only relative URLs and inline data images count as local', () => {
    for (const src of ['docs/shot.png', './a.png', '../a.png', '/static/a.png', '?x', 'data:image/png;base64,AAAA'])
      expect(isLocalImage(src), src).toBe(true);
    for (const src of [
      'https://evil.example/a.png',
      'http://evil.example/a.png',
      '//evil.example/a.png',
      '/\\evil.example/a.png',
      '\\\\evil.example/a.png',
      'HTTPS://evil.example/',
      'ftp://x/a.png',
      'http:evil.example/a.png',
    ]) {
      expect(isLocalImage(src), src).toBe(false);
    }
  });
  it('renders other origins as links with the alt text, escaped', () => {
    expect(renderMarkdown('![a <b> "c"](https://evil.example/p.png)')).toBe(
      '<p><a href="https://evil.example/p.png" rel="nofollow noopener noreferrer" class="external-image">a &lt;b&gt; &quot;c&quot;</a></p>\n',
    );
    expect(renderMarkdown('![](https://evil.example/p.png)')).toContain('>image</a>');
    expect(renderMarkdown('![shot](docs/shot.png)')).toBe('<p><img src="docs/shot.png" alt="shot"></p>\n');
  });
  it('the text fallback escapes everything', () => {
    expect(readmeAsText('<script>&')).toBe('<pre class="readme-source">&lt;script&gt;&amp;</pre>\n');
  });
});
