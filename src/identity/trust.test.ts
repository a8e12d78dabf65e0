import { describe, expect, it } from 'vitest';
import { arnPatternMatches, trustSpecSchema } from './trust.js';

/** The matcher Floe used before: each `*` became `[^/:]*` in a backtracking RegExp. Exponential on some inputs, so only fed small ones here. */
function regexArnPatternMatches(pattern: string, arn: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/:]*')}$`,
  );
  return re.test(arn);
}

/** mulberry32: a seeded generator, so a failing case can be reproduced from its seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomString(rand: () => number, alphabet: string, maxLength: number): string {
  const n = Math.floor(rand() * (maxLength + 1));
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
  return s;
}

const awsTrust = (arnPatterns: unknown) => ({
  provider: 'aws',
  scopes: ['read'],
  accountId: '123456789012',
  arnPatterns,
});

describe('arnPatternMatches', () => {
  it('has the old RegExp semantics on random small patterns and ARNs', () => {
    const rand = seeded(20260101);
    let matches = 0;
    for (let i = 0; i < 30_000; i++) {
      // A tiny alphabet with both separators and regex metacharacters makes matches and near misses common.
      const pattern = randomString(rand, 'ab*/:.', 8);
      // Half the ARNs are derived from the pattern (stars replaced), so positive cases are frequent.
      const arn =
        rand() < 0.5 ? pattern.replace(/\*/g, () => randomString(rand, 'ab/:.', 3)) : randomString(rand, 'ab/:.', 9);
      const expected = regexArnPatternMatches(pattern, arn);
      if (expected) matches++;
      expect(arnPatternMatches(pattern, arn), JSON.stringify({ pattern, arn })).toBe(expected);
    }
    expect(matches).toBeGreaterThan(3_000); // the property saw plenty of positive cases
  });

  it('keeps stars inside one segment and compares everything else literally', () => {
    const p = 'arn:aws:iam::123456789012:role/ci-*';
    expect(arnPatternMatches(p, 'arn:aws:iam::123456789012:role/ci-deploy')).toBe(true);
    expect(arnPatternMatches(p, 'arn:aws:iam::123456789012:role/ci-')).toBe(true);
    expect(arnPatternMatches(p, 'arn:aws:iam::123456789012:role/ci-x/admin')).toBe(false);
    expect(arnPatternMatches(p, 'arn:aws:iam::123456789012:role/ci-x:y')).toBe(false);
    expect(arnPatternMatches('arn:aws:iam::123456789012:role/a.b', 'arn:aws:iam::123456789012:role/aXb')).toBe(false);
    expect(arnPatternMatches('arn:aws:iam::*:role/x', 'arn:aws:iam::123456789012:role/x')).toBe(true);
  });

  it('answers the pathological patterns that froze the RegExp at once', () => {
    const nearMiss = 'a'.repeat(40);
    const started = performance.now();
    expect(
      arnPatternMatches(
        'arn:aws:iam::123456789012:role/*a*a*a*a*a*a*a*a*a*b',
        `arn:aws:iam::123456789012:role/${nearMiss}`,
      ),
    ).toBe(false);
    // The largest pattern a trust accepts (16 stars) against a 2048-character ARN.
    const worst = `arn:aws:iam::123456789012:role/${'*a'.repeat(15)}*b`;
    expect(worst.length).toBeLessThanOrEqual(1024);
    expect(arnPatternMatches(worst, `arn:aws:iam::123456789012:role/${'a'.repeat(2000)}`)).toBe(false);
    expect(arnPatternMatches(worst, `arn:aws:iam::123456789012:role/${'a'.repeat(2000)}b`)).toBe(true);
    // A generous bound: the RegExp took seconds for the first case alone; this is microseconds.
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('aws trust validation', () => {
  it('accepts ordinary patterns', () => {
    expect(
      trustSpecSchema.safeParse(
        awsTrust(['arn:aws:iam::123456789012:role/ci-*', 'arn:aws:iam::123456789012:role/*/deploy-*']),
      ).success,
    ).toBe(true);
  });

  it('refuses patterns that are too long, have too many stars, or come in too large a list', () => {
    const tooLong = `arn:aws:iam::123456789012:role/${'a'.repeat(1000)}`;
    const tooManyStars = `arn:aws:iam::123456789012:role/${'*a'.repeat(17)}`;
    for (const [patterns, message] of [
      [[tooLong], /1024 characters/],
      [[tooManyStars], /16 "\*"/],
      [Array.from({ length: 101 }, (_, i) => `arn:aws:iam::123456789012:role/r${i}`), /100/],
    ] as const) {
      const r = trustSpecSchema.safeParse(awsTrust(patterns));
      expect(r.success).toBe(false);
      expect(r.error?.issues[0]?.message).toMatch(message);
    }
  });
});
