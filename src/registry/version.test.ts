import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import semver from 'semver';
import {
  type Version,
  parseRequirement,
  parseVersion,
  admittedKeyPatterns,
  requirementBounds,
  resolveRequirement,
  rollingVersion,
  satisfies,
  versionSortKey,
} from './version.js';

const sat = (v: string, r: string) => satisfies(parseVersion(v), parseRequirement(r));

describe('versions', () => {
  it('parse semver, strip one leading v, keep build metadata', () => {
    expect(parseVersion('v1.2.3').text).toBe('1.2.3');
    expect(parseVersion('0.1.1924+rev-' + 'e'.repeat(40)).patch).toBe(1924);
    expect(() => parseVersion('1.2')).toThrow(/semantic version/);
    expect(() => parseVersion('latest')).toThrow();
  });
  it('rolling versions', () => {
    expect(rollingVersion(1, 42, 'a'.repeat(40))).toBe(`0.1.42+rev-${'a'.repeat(40)}`);
    expect(() => rollingVersion(1, 42, 'abc')).toThrow(/commit hash/);
  });
});

describe('requirements (Cargo semantics)', () => {
  const table: Array<[string, string, boolean]> = [
    ['1.4.0', '1', true],
    ['2.0.0', '1', false],
    ['1.2.0', '1.2', true],
    ['1.9.9', '1.2', true],
    ['1.1.9', '1.2', false],
    ['0.2.5', '0.2.3', true],
    ['0.3.0', '0.2.3', false],
    ['0.0.3', '^0.0.3', true],
    ['0.0.4', '^0.0.3', false],
    ['1.2.9', '~1.2', true],
    ['1.3.0', '~1.2', false],
    ['1.9.0', '~1', true],
    ['1.2.3', '=1.2.3', true],
    ['1.2.4', '=1.2.3', false],
    ['1.2.4', '=1.2', true],
    ['1.5.0', '>=1, <2', true],
    ['2.0.0', '>=1, <2', false],
    ['0.9.0', '>=1, <2', false],
    ['1.3.0', '>1.2', true],
    ['1.2.9', '>1.2', false],
    ['1.2.9', '<=1.2', true],
    ['1.3.0', '<=1.2', false],
    ['3.4.5', '*', true],
    ['1.2.7', '1.2.*', true],
    ['1.3.0', '1.2.*', false],
    [`0.1.1924+rev-${'a'.repeat(40)}`, '0.1', true],
    [`0.1.1924+rev-${'a'.repeat(40)}`, '0.1.*', true],
    [`0.2405.3+rev-${'a'.repeat(40)}`, '~0.2405', true],
    ['2.0.0-rc.1', '2', false],
    ['2.0.0-rc.1', '*', false],
    ['2.0.0-rc.2', '>=2.0.0-rc.1', true],
    ['2.0.1-rc.1', '>=2.0.0-rc.1', false],
  ];
  for (const [v, r, ok] of table)
    it(`${v} ${ok ? 'satisfies' : 'does not satisfy'} ${r}`, () => expect(sat(v, r)).toBe(ok));

  it('resolves to the highest match; rolling releases by commit count', () => {
    const vs = [
      '0.1.10+rev-' + 'a'.repeat(40),
      '0.1.12+rev-' + 'b'.repeat(40),
      '0.1.9+rev-' + 'c'.repeat(40),
      '1.0.0',
    ].map((t) => ({ version: parseVersion(t) }));
    expect(resolveRequirement(vs, parseRequirement('0.1'))!.version.patch).toBe(12);
    expect(resolveRequirement(vs, parseRequirement('*'))!.version.text).toBe('1.0.0');
    expect(resolveRequirement(vs, parseRequirement('2'))).toBeUndefined();
  });
  it('rejects garbage with a message', () => {
    expect(() => parseRequirement('')).toThrow();
    expect(() => parseRequirement('latest')).toThrow(/cannot read/);
    expect(() => parseRequirement('>=*')).toThrow(/operator needs a version/);
  });
});

describe('sort keys (resolution by index)', () => {
  const num = fc.oneof(
    fc.constantFrom(0, 1, 2, 9, 10, 11, 99, 100),
    fc.nat(2 ** 40),
    fc.constant(Number.MAX_SAFE_INTEGER),
  );
  const ident = fc.oneof(
    fc.constantFrom(
      '0',
      '1',
      '2',
      '9',
      '10',
      '11',
      '100',
      'alpha',
      'alpha1',
      'alphabet',
      'beta',
      'rc',
      'RC',
      'a-b',
      'a',
      'A',
      'z',
      '-',
      '--',
      '0a',
      '1a',
    ),
    fc.nat(5000).map(String),
  );
  const version = fc
    .tuple(
      num,
      num,
      num,
      fc.array(ident, { maxLength: 4 }),
      fc.option(fc.constantFrom('rev-abc', 'build.7'), { nil: undefined }),
    )
    .map(([a, b, c, pre, build]) =>
      parseVersion(`${a}.${b}.${c}${pre.length ? `-${pre.join('.')}` : ''}${build ? `+${build}` : ''}`),
    );
  const sign = (n: number) => (n > 0 ? 1 : n < 0 ? -1 : 0);
  const keyCompare = (a: Version, b: Version) => {
    const [x, y] = [versionSortKey(a), versionSortKey(b)];
    return x < y ? -1 : x > y ? 1 : 0;
  };

  it('plain string order of the keys is semver precedence (build metadata ignored)', () => {
    fc.assert(
      fc.property(version, version, (a, b) => keyCompare(a, b) === sign(semver.compare(a.text, b.text))),
      { numRuns: 5000 },
    );
    const ordered = [
      '1.0.0-0',
      '1.0.0-1',
      '1.0.0-9',
      '1.0.0-10',
      '1.0.0-A',
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-alphabet',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
      '1.0.1',
      '1.10.0',
      '2.0.0',
    ];
    const keys = ordered.map((t) => versionSortKey(parseVersion(t)));
    expect([...keys].sort()).toEqual(keys);
    expect(keys.every((k) => /^[0-9a-f]+$/.test(k))).toBe(true);
  });

  const requirement = fc.oneof(
    fc.constantFrom(
      '*',
      '0.1',
      '0.1.*',
      '1',
      '1.2',
      '^1.2',
      '~1.2',
      '=1.2.3',
      '=1.2',
      '>=1, <2',
      '>1.2',
      '<=1.2',
      '<1.0.0',
      '>=2.0.0-rc.1',
      '=1.0.0-alpha',
      '>=1.0.0-0, <1.0.1',
      '~0.0',
      '^0.0.3',
      '>1.2.3, <=1.2.3',
      '>0.1.1-beta',
    ),
    fc
      .tuple(
        fc.constantFrom('', '^', '~', '=', '>', '>=', '<', '<='),
        fc.nat(3),
        fc.nat(3),
        fc.nat(3),
        fc.constantFrom('', '-rc.1', '-0', '-alpha'),
      )
      .map(([op, a, b, c, pre]) => `${op}${a}.${b}.${c}${pre}`),
  );
  const smallVersion = fc
    .tuple(
      fc.nat(3),
      fc.nat(3),
      fc.nat(3),
      fc.array(fc.constantFrom('0', '1', 'rc', 'alpha', 'beta'), { maxLength: 2 }),
    )
    .map(([a, b, c, pre]) => parseVersion(`${a}.${b}.${c}${pre.length ? `-${pre.join('.')}` : ''}`));

  it("a version is in a requirement's key range exactly when it satisfies the comparators", () => {
    fc.assert(
      fc.property(requirement, smallVersion, (r, v) => {
        const req = parseRequirement(r);
        const { lower, upper } = requirementBounds(req);
        const k = versionSortKey(v);
        const inRange =
          (!lower || (lower.inclusive ? k >= lower.key : k > lower.key)) &&
          (!upper || (upper.inclusive ? k <= upper.key : k < upper.key));
        const prereleaseAllowed =
          v.prerelease.length === 0 || req.prereleaseTriples.has(`${v.major}.${v.minor}.${v.patch}`);
        // The same rule as the SQL LIKE patterns state it ('%' any run, no '_' in hex).
        const like = (pattern: string) => new RegExp(`^${pattern.replace(/%/g, '.*')}$`).test(k);
        return (
          satisfies(v, req) === (inRange && prereleaseAllowed) &&
          prereleaseAllowed === admittedKeyPatterns(req).some(like)
        );
      }),
      { numRuns: 5000 },
    );
  });
});
