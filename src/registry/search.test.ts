import { describe, expect, it } from 'vitest';
import { type CatalogueEntry, catalogueEntry, searchCatalogue } from './search.js';

const entry = (orgName: string, name: string, extra: Partial<Parameters<typeof catalogueEntry>[0]> = {}) =>
  catalogueEntry({
    orgId: `id-${orgName}`,
    orgName,
    name,
    visibility: 'public',
    description: null,
    labels: [],
    updatedAt: '2026-01-01T00:00:00Z',
    ...extra,
  });

const all = () => true;

describe('catalogue search', () => {
  const entries: CatalogueEntry[] = [
    entry('acme', 'hello-tools', { description: 'Says hello' }),
    entry('acme', 'hello'),
    entry('other', 'greeter', { labels: ['hello'] }),
    entry('other', 'mosaic', { description: 'a hello world, tiled' }),
    entry('zeta', 'unrelated'),
  ];

  it('ranks exact name over name prefix over label over description', () => {
    expect(searchCatalogue(entries, { query: 'hello' }, all).map((f) => `${f.org}/${f.flake}:${f.score}`)).toEqual([
      'acme/hello:100',
      'acme/hello-tools:55',
      'other/greeter:10',
      'other/mosaic:5',
    ]);
  });

  it('needs every term, ignores case, and sorts ties by org then name', () => {
    expect(searchCatalogue(entries, { query: 'HELLO says' }, all).map((f) => f.flake)).toEqual(['hello-tools']);
    expect(searchCatalogue(entries, {}, all).map((f) => `${f.org}/${f.flake}`)).toEqual([
      'acme/hello',
      'acme/hello-tools',
      'other/greeter',
      'other/mosaic',
      'zeta/unrelated',
    ]);
  });

  it('keeps to one org when asked, drops what the caller may not see, and bounds the limit', () => {
    expect(searchCatalogue(entries, { org: 'other' }, all).map((f) => f.flake)).toEqual(['greeter', 'mosaic']);
    const seen: string[] = [];
    const visible = (e: CatalogueEntry) => {
      seen.push(e.name);
      return e.orgName !== 'acme';
    };
    expect(searchCatalogue(entries, { query: 'hello' }, visible).map((f) => f.flake)).toEqual(['greeter', 'mosaic']);
    // Asked only about entries that matched the query (the authorizer is not called for the rest).
    expect(seen).not.toContain('unrelated');
    expect(searchCatalogue(entries, { limit: 0 }, all)).toHaveLength(1);
    expect(searchCatalogue(entries, { limit: 2 }, all)).toHaveLength(2);
  });
});
