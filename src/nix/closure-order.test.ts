import { describe, expect, it } from 'vitest';
import { ClosureOrder, inClosureOrder, referrersFirst } from './closure-order.js';

describe('closure order', () => {
  it('starts a path only after its references in the set succeeded; outside references count as present', () => {
    const order = new ClosureOrder([
      ['app', ['lib', 'glibc', 'app']],
      ['lib', ['glibc']],
      ['glibc', ['outside']],
    ]);
    expect(order.take(10)).toEqual(['glibc']);
    expect(order.take(10)).toEqual([]);
    order.succeed('glibc');
    expect(order.take(10)).toEqual(['lib']);
    order.succeed('lib');
    expect(order.take(10)).toEqual(['app']);
  });

  it('a failure gives up its dependents transitively, and nothing else', () => {
    const order = new ClosureOrder([
      ['a', ['b']],
      ['b', ['c']],
      ['c', []],
      ['d', []],
    ]);
    expect(order.take(10)).toEqual(['c', 'd']);
    expect(order.fail('c').sort()).toEqual(['a', 'b']);
    order.succeed('d');
    expect(order.take(10)).toEqual([]);
    expect(order.remaining).toEqual([]);
  });

  it('runs with a concurrency limit, reports given-up paths and cycles', async () => {
    let running = 0;
    let peak = 0;
    const seen: string[] = [];
    const givenUp: string[] = [];
    const nodes = [
      ...Array.from({ length: 6 }, (_, i) => [`leaf${i}`, []] as const),
      ['top', ['leaf0', 'leaf1', 'leaf2', 'leaf3', 'leaf4', 'leaf5']] as const,
      ['bad', []] as const,
      ['needsBad', ['bad']] as const,
      ['x', ['y']] as const,
      ['y', ['x']] as const,
    ];
    const stuck = await inClosureOrder(
      nodes,
      2,
      async (path) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setImmediate(r));
        running--;
        seen.push(path);
        return path !== 'bad';
      },
      (p) => givenUp.push(p),
    );
    expect(peak).toBe(2);
    expect(seen.indexOf('top')).toBeGreaterThan(Math.max(...[0, 1, 2, 3, 4, 5].map((i) => seen.indexOf(`leaf${i}`))));
    expect(givenUp).toEqual(['needsBad']);
    expect(stuck.sort()).toEqual(['x', 'y']);
  });

  it('paths known to have failed before the run give up their dependents', async () => {
    const givenUp: string[] = [];
    const ran: string[] = [];
    await inClosureOrder(
      [
        ['a', ['gone']],
        ['b', []],
      ],
      4,
      async (p) => {
        ran.push(p);
        return true;
      },
      (p) => givenUp.push(p),
      ['gone'],
    );
    expect(givenUp).toEqual(['a']);
    expect(ran).toEqual(['b']);
  });
});

describe('referrersFirst', () => {
  it('removes referrers before what they reference, so every prefix leaves a closed set', () => {
    const nodes = [
      ['lib', ['lib']],
      ['app', ['lib', 'tool', 'outside']],
      ['tool', ['lib']],
      ['alone', []],
    ] as const;
    const order = referrersFirst(nodes);
    expect([...order].sort()).toEqual(['alone', 'app', 'lib', 'tool']);
    for (let i = 0; i <= order.length; i++) {
      const left = new Set(order.slice(i));
      for (const [p, refs] of nodes)
        if (left.has(p)) for (const r of refs) if (r !== 'outside') expect(left.has(r), `${p} -> ${r}`).toBe(true);
    }
  });

  it('places a cycle (never in a Nix store) last instead of losing it', () => {
    expect(
      referrersFirst([
        ['a', ['b']],
        ['b', ['a']],
        ['c', []],
      ]),
    ).toEqual(['c', 'a', 'b']);
  });
});
