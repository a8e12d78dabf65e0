import { describe, expect, it } from 'vitest';
import { DenialTally, OUTSIDE_CALLERS } from './denial-tally.js';

const key = (target: string, actor = 'anonymous') => ({
  orgId: 'o1',
  actor,
  tokenId: null,
  action: 'cache.read',
  target,
});
const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:30.000Z';
const LATER = '2026-01-01T00:01:10.000Z';
const END = '9999-01-01T00:00:00.000Z';

describe('denial tally', () => {
  it('writes the first denial of a key in full and counts the rest', () => {
    const t = new DenialTally();
    expect(t.count(key('slice a/x'), 'no', T0, true)).toBe(true);
    for (let i = 0; i < 999; i++) expect(t.count(key('slice a/x'), 'no', T1, true)).toBe(false);
    const [s, ...rest] = t.drain(END);
    expect(rest).toEqual([]);
    expect(s).toMatchObject({
      actor: 'anonymous',
      target: 'slice a/x',
      outcome: 'deny',
      detail: { count: 999, since: T0, summary: true },
    });
    expect(s!.reason).toMatch(/^999 more requests refused since/);
    expect(t.size).toBe(0);
  });

  it('keeps one tally per actor, action and target', () => {
    const t = new DenialTally();
    expect(t.count(key('slice a/x'), 'no', T0, true)).toBe(true);
    expect(t.count(key('slice a/y'), 'no', T0, true)).toBe(true);
    expect(t.count(key('slice a/x', 'acme:ci'), 'no', T0, true)).toBe(true);
    expect(t.size).toBe(3);
    // Nothing repeated: nothing to summarize.
    expect(t.drain(END)).toEqual([]);
  });

  it('counts without a first entry when the caller may not write one (outside callers, a full queue)', () => {
    const t = new DenialTally();
    expect(t.count({ ...key('slice a/x'), actor: OUTSIDE_CALLERS }, 'no', T0, false)).toBe(false);
    expect(t.count({ ...key('slice a/x'), actor: OUTSIDE_CALLERS }, 'no', T0, false)).toBe(false);
    const [s] = t.drain(END);
    expect(s!.detail.count).toBe(2);
    expect(s!.reason).toMatch(/^2 requests by callers outside this org/);
  });

  it('drains only tallies older than the cutoff', () => {
    const t = new DenialTally();
    t.count(key('old'), 'no', T0, false);
    t.count(key('new'), 'no', LATER, false);
    expect(t.drain(T1).map((s) => s.target)).toEqual(['old']);
    expect(t.size).toBe(1);
    expect(t.drain(END).map((s) => s.target)).toEqual(['new']);
  });

  it('reports counts so far on demand and keeps counting, without a second full entry', () => {
    const t = new DenialTally();
    expect(t.count(key('x'), 'no', T0, true)).toBe(true);
    t.count(key('x'), 'no', T0, true);
    t.count(key('x'), 'no', T0, true);
    expect(t.drain(T0, true).map((s) => s.detail.count)).toEqual([2]);
    // Still the same minute: counted, not written again.
    expect(t.count(key('x'), 'no', T1, true)).toBe(false);
    expect(t.drain(T0, true).map((s) => s.detail.count)).toEqual([1]);
    expect(t.drain(T0, true)).toEqual([]);
    expect(t.size).toBe(1);
    expect(t.drain(LATER)).toEqual([]);
    expect(t.size).toBe(0);
  });

  it('stays bounded: past the limit new keys fold into one tally per org, still counted', () => {
    const t = new DenialTally(10);
    for (let i = 0; i < 10; i++) t.count(key(`slice a/${i}`), 'no', T0, false);
    for (let i = 10; i < 5000; i++) expect(t.count(key(`slice a/${i}`), 'no', T0, true)).toBe(false);
    expect(t.size).toBe(11);
    const all = t.drain(END);
    expect(all.reduce((n, s) => n + s.detail.count, 0)).toBe(5000);
    expect(all.find((s) => s.actor === 'various callers')!.detail.count).toBe(4990);
  });
});
