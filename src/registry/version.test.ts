import { describe, expect, it } from 'vitest';
import { parseRequirement, parseVersion, resolveRequirement, rollingVersion, satisfies } from './version.js';

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
    ['1.4.0', '1', true], ['2.0.0', '1', false], ['1.2.0', '1.2', true], ['1.9.9', '1.2', true], ['1.1.9', '1.2', false],
    ['0.2.5', '0.2.3', true], ['0.3.0', '0.2.3', false], ['0.0.3', '^0.0.3', true], ['0.0.4', '^0.0.3', false],
    ['1.2.9', '~1.2', true], ['1.3.0', '~1.2', false], ['1.9.0', '~1', true],
    ['1.2.3', '=1.2.3', true], ['1.2.4', '=1.2.3', false], ['1.2.4', '=1.2', true],
    ['1.5.0', '>=1, <2', true], ['2.0.0', '>=1, <2', false], ['0.9.0', '>=1, <2', false],
    ['1.3.0', '>1.2', true], ['1.2.9', '>1.2', false], ['1.2.9', '<=1.2', true], ['1.3.0', '<=1.2', false],
    ['3.4.5', '*', true], ['1.2.7', '1.2.*', true], ['1.3.0', '1.2.*', false],
    [`0.1.1924+rev-${'a'.repeat(40)}`, '0.1', true], [`0.1.1924+rev-${'a'.repeat(40)}`, '0.1.*', true], [`0.2405.3+rev-${'a'.repeat(40)}`, '~0.2405', true],
    ['2.0.0-rc.1', '2', false], ['2.0.0-rc.1', '*', false], ['2.0.0-rc.2', '>=2.0.0-rc.1', true], ['2.0.1-rc.1', '>=2.0.0-rc.1', false],
  ];
  for (const [v, r, ok] of table) it(`${v} ${ok ? 'satisfies' : 'does not satisfy'} ${r}`, () => expect(sat(v, r)).toBe(ok));

  it('resolves to the highest match; rolling releases by commit count', () => {
    const vs = ['0.1.10+rev-' + 'a'.repeat(40), '0.1.12+rev-' + 'b'.repeat(40), '0.1.9+rev-' + 'c'.repeat(40), '1.0.0'].map((t) => ({ version: parseVersion(t) }));
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
