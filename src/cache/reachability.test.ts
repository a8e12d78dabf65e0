import { describe, expect, it } from 'vitest';
import {
  type GcPath,
  type GcPolicy,
  isRecentRoot,
  pathKey,
  planNars,
  planOrphans,
  planPaths,
  storePathsIn,
} from './reachability.js';

const H = (c: string) => c.repeat(32);
const day = 86_400_000;
const now = 100 * day;
const p = (slice: string, hash: string, refs: string[], ageMs: number, org = 'o1'): GcPath => ({
  slice,
  org,
  hash,
  refs,
  createdAt: now - ageMs,
  narHash: `nar-${hash}`,
});
const policy = (retention: number | null, graceMs = 3_600_000): GcPolicy => ({
  now,
  graceMs,
  retentionMs: new Map([['o1', retention]]),
});

describe('planPaths', () => {
  // top -> mid -> leaf, all old; stray is old and unreferenced
  const graph = [
    p('s1', H('a'), [H('b')], 50 * day),
    p('s1', H('b'), [H('c'), H('b')], 50 * day),
    p('s1', H('c'), [], 50 * day),
    p('s1', H('d'), [], 50 * day),
  ];

  it('keeps everything reachable from a root through references, collects the rest', () => {
    const plan = planPaths(graph, new Set([pathKey('s1', H('a'))]), policy(7 * day));
    expect([...plan.keep].map((p) => pathKey(p.slice, p.hash)).sort()).toEqual(
      [pathKey('s1', H('a')), pathKey('s1', H('b')), pathKey('s1', H('c'))].sort(),
    );
    expect(plan.collect.map((x) => x.hash)).toEqual([H('d')]);
  });

  it('a root in one slice keeps nothing in another slice', () => {
    const two = [...graph, p('s2', H('c'), [], 50 * day)];
    const plan = planPaths(two, new Set([pathKey('s1', H('a'))]), policy(7 * day));
    expect(plan.collect.map((x) => `${x.slice}/${x.hash[0]}`).sort()).toEqual(['s1/d', 's2/c']);
  });

  it('recent pushes are roots and keep their closure; no retention keeps everything', () => {
    const g = [...graph, p('s1', H('e'), [H('d')], 1 * day)];
    expect(
      planPaths(g, new Set(), policy(7 * day))
        .collect.map((x) => x.hash[0])
        .sort(),
    ).toEqual(['a', 'b', 'c']);
    expect(planPaths(g, new Set(), policy(null)).collect).toEqual([]);
  });

  it('the grace period wins over a shorter retention', () => {
    const g = [p('s1', H('a'), [], 30 * 60_000)];
    expect(planPaths(g, new Set(), policy(0, 3_600_000)).collect).toEqual([]);
    expect(planPaths(g, new Set(), policy(0, 60_000)).collect).toHaveLength(1);
  });

  it('roots naming paths that are not there are ignored', () => {
    expect(planPaths(graph, new Set([pathKey('s9', H('z'))]), policy(0)).roots).toBe(0);
  });

  it('retention is per org', () => {
    const pol: GcPolicy = {
      now,
      graceMs: 0,
      retentionMs: new Map([
        ['o1', day],
        ['o2', 100 * day],
      ]),
    };
    expect(isRecentRoot({ org: 'o1', createdAt: now - 2 * day }, pol)).toBe(false);
    expect(isRecentRoot({ org: 'o2', createdAt: now - 2 * day }, pol)).toBe(true);
    expect(isRecentRoot({ org: 'o3', createdAt: 0 }, pol)).toBe(true);
  });
});

describe('planNars and planOrphans', () => {
  it('collects NARs no row needs, only past the grace period', () => {
    const nars = [
      { narHash: 'used', lastUsed: 0 },
      { narHash: 'old', lastUsed: now - 2 * 3_600_000 },
      { narHash: 'fresh', lastUsed: now - 60_000 },
    ];
    expect(planNars(nars, new Set(['used']), { now, graceMs: 3_600_000 }).map((n) => n.narHash)).toEqual(['old']);
  });
  it('collects unknown blobs of Floe key shapes past the grace period, nothing else', () => {
    const nar = (c: string) => `${c.repeat(52)}.nar.zst`;
    const tarball = `tarball-${'a'.repeat(64)}.tar.gz`;
    const blobs = [
      { key: nar('0'), modifiedAt: 0 },
      { key: nar('1'), modifiedAt: 0 },
      { key: nar('2'), modifiedAt: now },
      { key: tarball, modifiedAt: 0 },
      { key: 'backup.tar.gz', modifiedAt: 0 },
      { key: `${'e'.repeat(52)}.nar.zst`, modifiedAt: 0 }, // e is not a nix32 digit
    ];
    expect(planOrphans(blobs, new Set([nar('0')]), { now, graceMs: 1000 }).map((b) => b.key)).toEqual([
      nar('1'),
      tarball,
    ]);
  });
});

describe('storePathsIn', () => {
  it('finds store paths anywhere in a release inventory, nothing else', () => {
    const base = `${'0'.repeat(31)}1-hello-2.12`;
    const meta = {
      outputs: {
        inventory: {
          packages: {
            children: { 'x86_64-linux': { children: { default: { outputs: { out: `/nix/store/${base}` } } } } },
          },
        },
      },
      description: '/nix/store/not-a-path',
      n: 3,
    };
    expect([...storePathsIn(meta)]).toEqual([base]);
  });
});
