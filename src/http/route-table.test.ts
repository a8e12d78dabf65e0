import { describe, expect, it } from 'vitest';
import { compilePattern, matchPattern, splitCachePath } from './route-table.js';

describe('/cache path grammar', () => {
  it('splits the unified view from a slice prefix, and marks what can hold nothing', () => {
    expect(splitCachePath('/cache/abc.narinfo')).toEqual({ rest: ['abc.narinfo'], invalid: false, prefix: '/cache' });
    expect(splitCachePath('/cache/nar/x.nar.zst')).toMatchObject({ rest: ['nar', 'x.nar.zst'], prefix: '/cache' });
    expect(splitCachePath('/cache/acme/dev/nar/x')).toMatchObject({
      slice: { org: 'acme', slice: 'dev' },
      rest: ['nar', 'x'],
    });
    expect(splitCachePath('/cache/acme/x.narinfo').invalid).toBe(true);
    expect(splitCachePath('/cache').invalid).toBe(true);
    expect(splitCachePath('/cache/nar/..').invalid).toBe(true);
    expect(splitCachePath('/cache/acme/dev/').invalid).toBe(true);
  });

  it('matches literals and suffixed parameters segment by segment', () => {
    const narinfo = compilePattern(':hash.narinfo');
    expect(matchPattern(narinfo, ['abc.narinfo'])).toEqual({ hash: 'abc' });
    expect(matchPattern(narinfo, ['abc.ls'])).toBeUndefined();
    expect(matchPattern(narinfo, ['abc.narinfo', 'x'])).toBeUndefined();
    const doi = compilePattern('realisations/:id.doi');
    expect(matchPattern(doi, ['realisations', 'sha256:1!out.doi'])).toEqual({ id: 'sha256:1!out' });
    expect(matchPattern(doi, ['nar', 'x.doi'])).toBeUndefined();
  });
});
