import { describe, expect, it } from 'vitest';
import { jsonDepth } from './body.js';
import { queryInt, queryTime } from './validate.js';

describe('queryInt', () => {
  it('takes whole numbers within the range, absent or empty as undefined', () => {
    expect(queryInt('limit', undefined, { min: 1, max: 10 })).toBeUndefined();
    expect(queryInt('limit', '', { min: 1, max: 10 })).toBeUndefined();
    expect(queryInt('limit', '7', { min: 1, max: 10 })).toBe(7);
    expect(queryInt('after', '0', { min: 0, max: 10 })).toBe(0);
  });
  it('refuses everything else as invalid input naming the parameter', () => {
    for (const bad of ['abc', '1.5', '1e3', 'NaN', 'Infinity', ' 1', '0x10', '-1', '11', '99999999999999999999']) {
      expect(() => queryInt('limit', bad, { min: 0, max: 10 }), bad).toThrow(
        /limit: expected a whole number from 0 to 10/,
      );
    }
  });
});

describe('queryTime', () => {
  it('normalizes dates and times to ISO-8601 and refuses what Date cannot represent', () => {
    expect(queryTime('since', '2026-01-02')).toBe('2026-01-02T00:00:00.000Z');
    expect(queryTime('since', undefined)).toBeUndefined();
    for (const bad of ['2026-13-45', 'yesterday', '+275760-09-14'])
      expect(() => queryTime('since', bad), bad).toThrow(/since: expected an ISO date or time/);
  });
});

describe('jsonDepth', () => {
  it('counts nesting of arrays and objects; scalars are 0', () => {
    expect(jsonDepth(1)).toBe(0);
    expect(jsonDepth(null)).toBe(0);
    expect(jsonDepth({})).toBe(1);
    expect(jsonDepth({ a: [1, { b: [] }], c: 2 })).toBe(4);
  });
  it('measures values far too deep for recursion, and stops early when asked', () => {
    const deep = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`) as unknown;
    expect(jsonDepth(deep)).toBe(200_000);
    expect(jsonDepth(deep, 100)).toBe(101);
  });
});
