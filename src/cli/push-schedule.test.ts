import { describe, expect, it } from 'vitest';
import { PushSchedule, type ScheduledPath, dependencyOrder } from './push-schedule.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const limits = { jobs: 2, smallJobs: 8, smallBytes: 256 * KiB };
const node = (path: string, references: string[] = [], narSize = KiB): ScheduledPath => ({
  path,
  references,
  narSize,
});

/** A deterministic pseudo-random closure: each path refers to some earlier ones (a DAG, often with itself). */
function randomClosure(seed: number, n: number): ScheduledPath[] {
  let x = seed;
  const rand = () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
  const nodes: ScheduledPath[] = [];
  for (let i = 0; i < n; i++) {
    const refs = new Set<string>();
    if (rand() < 0.3) refs.add(`p${i}`);
    for (let k = 0; k < 3 && i > 0; k++) if (rand() < 0.6) refs.add(`p${Math.floor(rand() * i)}`);
    if (rand() < 0.1) refs.add('/outside/the/closure');
    nodes.push(
      node(`p${i}`, [...refs], rand() < 0.1 ? Math.floor(rand() * 64 * MiB) + MiB : Math.floor(rand() * 8 * KiB)),
    );
  }
  // Shuffled: nothing may depend on the closure arriving in order.
  return nodes.sort(() => rand() - 0.5);
}

describe('the push schedule', () => {
  it('orders the missing-queries dependencies first, even for a chain too deep for recursion', () => {
    const closure = randomClosure(7, 500);
    const order = dependencyOrder(closure);
    expect(new Set(order)).toEqual(new Set(closure.map((n) => n.path)));
    const at = new Map(order.map((p, i) => [p, i]));
    for (const n of closure)
      for (const r of n.references) if (at.has(r) && r !== n.path) expect(at.get(r)!).toBeLessThan(at.get(n.path)!);
    const chain = Array.from({ length: 100_000 }, (_, i) => node(`c${i}`, i > 0 ? [`c${i - 1}`] : []));
    expect(dependencyOrder(chain.reverse()).slice(0, 3)).toEqual(['c0', 'c1', 'c2']);
  });

  it('starts a path only once its references are in the cache, while later answers are still coming', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const closure = randomClosure(seed, 300);
      const s = new PushSchedule(closure, limits);
      const inCache = new Set<string>();
      const missing = new Set(closure.filter((_, i) => i % 3 !== 0).map((n) => n.path));
      const order = dependencyOrder(closure);
      const running: string[] = [];
      let startedBeforeAllAnswers = false;
      let answered = 0;
      let step = 0;
      const start = () => {
        for (const p of s.take()) {
          const n = closure.find((c) => c.path === p)!;
          expect(missing.has(p), `${p} was never said to be missing`).toBe(true);
          for (const r of n.references)
            if (r !== p && order.includes(r)) expect(inCache.has(r), `${p} started before ${r}`).toBe(true);
          running.push(p);
          if (answered < order.length) startedBeforeAllAnswers = true;
        }
        const large = running.filter((p) => closure.find((c) => c.path === p)!.narSize >= limits.smallBytes);
        expect(large.length).toBeLessThanOrEqual(limits.jobs);
        expect(running.length).toBeLessThanOrEqual(limits.smallJobs);
        expect(s.running).toBe(running.length);
      };
      while (answered < order.length || running.length > 0) {
        // Answers in batches of 40, interleaved with uploads finishing in a shuffled order.
        if (answered < order.length && (step++ % 3 === 0 || running.length === 0)) {
          for (const p of order.slice(answered, answered + 40)) {
            if (missing.has(p)) s.missing(p);
            else {
              inCache.add(p);
              s.present(p);
            }
          }
          answered = Math.min(order.length, answered + 40);
        } else {
          const done = running.splice((step * 7) % running.length, 1)[0]!;
          inCache.add(done);
          s.succeed(done);
        }
        start();
      }
      expect(s.stuck()).toEqual([]);
      expect(inCache.size).toBe(closure.length);
      expect(startedBeforeAllAnswers).toBe(true);
    }
  });

  it('starts the largest ready paths first, and many small ones beside a few large ones', () => {
    const closure = [
      node('small1'),
      node('big1', [], 10 * MiB),
      node('small2'),
      node('big3', [], 30 * MiB),
      node('big2', [], 20 * MiB),
      ...Array.from({ length: 20 }, (_, i) => node(`tiny${i}`)),
    ];
    const s = new PushSchedule(closure, limits);
    for (const n of closure) s.missing(n.path);
    const first = s.take();
    expect(first.slice(0, 2)).toEqual(['big3', 'big2']);
    expect(first).toHaveLength(limits.smallJobs);
    expect(first).not.toContain('big1');
    s.succeed('big3');
    expect(s.take()).toEqual(['big1']);
  });

  it('gives up what depends on a failure, also paths the server answers for only later', () => {
    const closure = [
      node('lib'),
      node('app', ['lib']),
      node('tool', ['app']),
      node('doc', ['app']),
      node('other'),
      node('top', ['tool', 'other']),
    ];
    const s = new PushSchedule(closure, limits);
    s.missing('lib');
    s.missing('app');
    s.missing('other');
    expect(s.take().sort()).toEqual(['lib', 'other']);
    s.succeed('lib');
    expect(s.take()).toEqual(['app']);
    expect(s.fail('app')).toEqual([]); // tool, doc and top are not answered for yet
    expect(s.missing('tool')).toBe(true);
    s.present('doc'); // the server holds it after all (someone else pushed it): not a failure
    s.succeed('other');
    expect(s.missing('top')).toBe(true);
    expect(s.take()).toEqual([]);
    expect(s.running).toBe(0);
    expect(s.unknown).toBe(0);
    expect(s.stuck()).toEqual([]);
  });

  it('reports paths that can never start (a reference cycle)', () => {
    const s = new PushSchedule([node('a', ['b']), node('b', ['a']), node('c')], limits);
    for (const p of ['a', 'b', 'c']) s.missing(p);
    expect(s.take()).toEqual(['c']);
    s.succeed('c');
    expect(s.take()).toEqual([]);
    expect(s.stuck().sort()).toEqual(['a', 'b']);
  });
});
