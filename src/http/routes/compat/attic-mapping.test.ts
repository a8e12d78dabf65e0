import { describe, expect, it } from 'vitest';
import {
  atticCacheName,
  atticSubstituterPath,
  parseAtticCacheName,
  parsePreambleSize,
  uploadResultOf,
} from './attic-mapping.js';
import { derivedUuidV7 } from '../../../org/uuid-v7.js';
import { decodeOnceMore, ownerRepoPair, simplifiedVersion, wantsJson } from './fh-mapping.js';

describe('attic mapping', () => {
  it('reads the cache names attic can send, and only those', () => {
    expect(parseAtticCacheName('acme')).toEqual({ kind: 'slice', org: 'acme', slice: 'default' });
    expect(parseAtticCacheName('acme+ci')).toEqual({ kind: 'slice', org: 'acme', slice: 'ci' });
    expect(parseAtticCacheName('acme/ci')).toEqual({ kind: 'slice', org: 'acme', slice: 'ci' });
    const o = '0190b7a2-1c3d-7e4f-8a5b-6c7d8e9f0a1b';
    expect(parseAtticCacheName(`${o}:${o.toUpperCase()}`)).toEqual({ kind: 'project', orgUuid: o, projectUuid: o });
    for (const bad of ['', 'Acme', 'a+b+c', 'a/b/c', '../x', 'acme+', `${o}:nope`])
      expect(parseAtticCacheName(bad)).toBeUndefined();
    expect(atticCacheName('acme', 'default')).toBe('acme');
    expect(atticCacheName('acme', 'ci')).toBe('acme+ci');
  });

  it('maps only Attic substituter files of org+slice names onto slice URLs', () => {
    expect(atticSubstituterPath('/acme+ci/nix-cache-info')).toBe('/cache/acme/ci/nix-cache-info');
    expect(atticSubstituterPath('/acme+ci/nar/abc.nar.zst')).toBe('/cache/acme/ci/nar/abc.nar.zst');
    expect(atticSubstituterPath(`/acme+ci/${'a'.repeat(32)}.narinfo`)).toBe(`/cache/acme/ci/${'a'.repeat(32)}.narinfo`);
    for (const other of ['/acme/nix-cache-info', '/flakes/acme', '/acme+ci/../x', '/acme+ci/nar/a/b'])
      expect(atticSubstituterPath(other)).toBeUndefined();
  });

  it('bounds the preamble size and never says another tenant holds a NAR', () => {
    expect(parsePreambleSize(undefined, 10)).toBeUndefined();
    expect(parsePreambleSize('7', 10)).toBe(7);
    for (const bad of ['0', '11', '-1', '1e3', 'x']) expect(() => parsePreambleSize(bad, 10)).toThrow();
    expect(uploadResultOf('created', 5)).toEqual({ kind: 'Uploaded', file_size: 5, frac_deduplicated: 0 });
    expect(uploadResultOf('exists', 5).kind).toBe('Deduplicated');
  });

  it('derives valid, stable UUIDv7s that carry the creation time', () => {
    const ms = Date.parse('2026-01-02T03:04:05.678Z');
    const a = derivedUuidV7(ms, 'org:1');
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(derivedUuidV7(ms, 'org:1')).toBe(a);
    expect(derivedUuidV7(ms, 'org:2')).not.toBe(a);
    expect(parseInt(a.replace(/-/g, '').slice(0, 12), 16)).toBe(ms);
  });
});

describe('fh mapping', () => {
  it('simplifies versions, decodes the twice-encoded requirement, reads Accept and repo pairs', () => {
    expect(simplifiedVersion('0.1.5+rev-abc')).toBe('0.1.5');
    expect(simplifiedVersion('1.0.0-rc.1')).toBe('1.0.0-rc.1');
    expect(decodeOnceMore('%5E0.1')).toBe('^0.1');
    expect(() => decodeOnceMore('%zz')).toThrow();
    expect(wantsJson('application/json')).toBe(true);
    expect(wantsJson('text/html, application/json;q=0.9')).toBe(true);
    expect(wantsJson('*/*')).toBe(false);
    expect(wantsJson(undefined)).toBe(false);
    expect(ownerRepoPair('https://github.com/acme-gh/infra.git', 'x/y')).toBe('acme-gh/infra');
    expect(ownerRepoPair('acme-gh/infra', 'x/y')).toBe('acme-gh/infra');
    expect(ownerRepoPair(undefined, 'x/y')).toBe('x/y');
  });
});
