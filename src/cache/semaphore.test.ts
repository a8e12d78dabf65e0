import { describe, expect, it } from 'vitest';
import { FairSemaphore } from './semaphore.js';

/** A job that runs until its `finish` is called, recording when it started. */
function job(sem: FairSemaphore, group: string, started: string[], member?: string) {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const ran = sem.run(
    group,
    async () => {
      started.push(member === undefined ? group : `${group}/${member}`);
      await done;
    },
    member,
  );
  return { finish, ran };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('FairSemaphore', () => {
  it('caps each group below the total, so another group starts while the first one queues', async () => {
    const sem = new FairSemaphore(4, 2);
    const started: string[] = [];
    const a = Array.from({ length: 20 }, () => job(sem, 'a', started));
    await tick();
    expect(sem.running('a')).toBe(2);
    expect(sem.waiting('a')).toBe(18);
    const b = job(sem, 'b', started);
    await tick();
    expect(started.filter((g) => g === 'b')).toHaveLength(1);
    b.finish();
    await b.ran;
    for (const j of a) j.finish();
    await Promise.all(a.map((j) => j.ran));
    expect(sem.running()).toBe(0);
    expect(sem.waiting()).toBe(0);
  });

  it('hands freed slots to waiting groups in turn, not to the longest queue', async () => {
    const sem = new FairSemaphore(2, 2);
    const started: string[] = [];
    const a = Array.from({ length: 6 }, () => job(sem, 'a', started)); // 2 run, 4 wait
    await tick();
    const b = Array.from({ length: 2 }, () => job(sem, 'b', started));
    const c = Array.from({ length: 2 }, () => job(sem, 'c', started));
    await tick();
    expect(started).toEqual(['a', 'a']);
    // Free one slot at a time: the turn goes a (queued first), then b, then c, then a again...
    for (const j of a.slice(0, 2)) {
      j.finish();
      await j.ran;
      await tick();
    }
    expect(started.slice(2)).toEqual(['a', 'b']);
    for (const j of [...a.slice(2), ...b, ...c]) j.finish();
    await Promise.all([...a, ...b, ...c].map((j) => j.ran));
    expect(started.slice(2, 6)).toEqual(['a', 'b', 'c', 'a']);
    expect(sem.running()).toBe(0);
  });

  it('releases the slot when the work fails', async () => {
    const sem = new FairSemaphore(1, 1);
    await expect(sem.run('a', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await sem.run('a', async () => 'ok')).toBe('ok');
  });

  it("caps each member of a group below the group's cap, so one token's stalled uploads leave its org a slot", async () => {
    const sem = new FairSemaphore(16, 4, 3);
    const started: string[] = [];
    const t1 = Array.from({ length: 10 }, () => job(sem, 'org', started, 't1'));
    await tick();
    expect(sem.running('org', 't1')).toBe(3);
    expect(sem.running('org')).toBe(3);
    expect(sem.waiting('org', 't1')).toBe(7);
    const t2 = job(sem, 'org', started, 't2');
    await tick();
    expect(started).toEqual(['org/t1', 'org/t1', 'org/t1', 'org/t2']);
    expect(sem.running('org')).toBe(4);
    t2.finish();
    await t2.ran;
    for (const j of t1) j.finish();
    await Promise.all(t1.map((j) => j.ran));
    expect(sem.running()).toBe(0);
    expect(sem.waiting()).toBe(0);
  });

  it("hands a group's freed slots to its waiting members in turn, not to the longest queue", async () => {
    const sem = new FairSemaphore(2, 2, 2);
    const started: string[] = [];
    const a = Array.from({ length: 6 }, () => job(sem, 'org', started, 'a')); // 2 run, 4 wait
    await tick();
    const b = Array.from({ length: 2 }, () => job(sem, 'org', started, 'b'));
    const c = Array.from({ length: 2 }, () => job(sem, 'org', started, 'c'));
    await tick();
    expect(started).toEqual(['org/a', 'org/a']);
    for (const j of [...a, ...b, ...c]) j.finish();
    await Promise.all([...a, ...b, ...c].map((j) => j.ran));
    expect(started.slice(2, 7)).toEqual(['org/a', 'org/b', 'org/c', 'org/a', 'org/b']);
    expect(sem.running()).toBe(0);
  });

  it('a member at its cap does not hold up the other groups or members queued behind it', async () => {
    const sem = new FairSemaphore(3, 3, 1);
    const started: string[] = [];
    const a = Array.from({ length: 3 }, () => job(sem, 'x', started, 'a'));
    const b = job(sem, 'x', started, 'b');
    const y = job(sem, 'y', started, 'a');
    await tick();
    expect(started).toEqual(['x/a', 'x/b', 'y/a']);
    for (const j of [...a, b, y]) j.finish();
    await Promise.all([...a, b, y].map((j) => j.ran));
    expect(started).toHaveLength(5);
  });
});
