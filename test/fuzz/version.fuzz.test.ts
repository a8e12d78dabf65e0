/**
 * Release versions and version requirements (src/registry/version.ts), which come from URLs
 * (`/f/org/flake/<req>.tar.gz`), the API and publishers. Parsing refuses with InvalidInput only,
 * and matching anything that parsed never throws (a requirement that parses must be usable).
 */
import { describe, expect, it } from 'vitest';
import {
  type Requirement,
  type Version,
  compareVersions,
  parseRequirement,
  parseVersion,
  resolveRequirement,
  satisfies,
} from '../../src/registry/version.js';
import { corpus, fc, fuzzParams, fuzzTimeout, outcome } from './fuzz.js';

const arbNumber = fc.oneof(
  fc.nat({ max: 20 }).map(String),
  fc.nat().map(String),
  fc.constantFrom('9007199254740990', '9007199254740991', '9007199254740992', '99999999999999999999', '00', '01'),
);
const arbIdent = fc.oneof(
  fc.constantFrom('alpha', 'beta', 'rc', '1', '0', 'x', 'rev-0123abc'),
  fc.string({ unit: fc.constantFrom(...'0123456789abcxyz-.'), minLength: 1, maxLength: 6 }),
);
const arbVersionText = fc
  .tuple(fc.constantFrom('', 'v'), arbNumber, arbNumber, arbNumber, fc.option(arbIdent), fc.option(arbIdent))
  .map(([v, a, b, c, pre, build]) => `${v}${a}.${b}.${c}${pre ? `-${pre}` : ''}${build ? `+${build}` : ''}`);
const arbPart = fc.oneof(arbNumber, fc.constantFrom('*', 'x'));
const arbTerm = fc
  .tuple(
    fc.constantFrom('', '^', '~', '=', '>', '>=', '<', '<=', '==', '=>', '~>'),
    fc.constantFrom('', ' ', 'v'),
    arbNumber,
    fc.option(arbPart),
    fc.option(arbPart),
    fc.option(arbIdent),
  )
  .map(
    ([op, sp, a, b, c, pre]) =>
      `${op}${sp}${a}${b !== null ? `.${b}` : ''}${b !== null && c !== null ? `.${c}` : ''}${pre ? `-${pre}` : ''}`,
  );
const arbRequirementText = fc.oneof(
  fc.array(arbTerm, { minLength: 1, maxLength: 3 }).map((t) => t.join(', ')),
  fc.constantFrom('*', 'x', '', ' ', ',', '1,', '>=', '^*'),
  fc.string({ maxLength: 40 }),
);

function checkPair(versionText: string, reqText: string): void {
  const v = outcome(() => parseVersion(versionText), 'invalid_input');
  const r = outcome(() => parseRequirement(reqText), 'invalid_input');
  if (!v.ok || !r.ok) return;
  // Must not throw for anything that parsed.
  const ok = satisfies(v.value, r.value);
  expect(typeof ok).toBe('boolean');
  expect(resolveRequirement([{ version: v.value }], r.value)).toEqual(ok ? { version: v.value } : undefined);
}

describe('version requirement fuzz', () => {
  it.each(
    corpus('version').flatMap((e) =>
      e.bytes
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => [e.name, line] as const),
    ),
  )('corpus %s: %s', (_name, line) => {
    const [version, req] = line.split('\t') as [string, string];
    checkPair(version, req ?? '*');
  });

  it(
    'arbitrary strings: a version/requirement or InvalidInput',
    () => {
      fc.assert(
        fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
          outcome(() => parseVersion(s), 'invalid_input');
          outcome(() => parseRequirement(s), 'invalid_input');
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'any requirement that parses can be matched against any version that parses',
    () => {
      fc.assert(fc.property(arbVersionText, arbRequirementText, checkPair), fuzzParams());
    },
    fuzzTimeout(),
  );

  it(
    'exact, lower and upper bounds agree with the version order',
    () => {
      fc.assert(
        fc.property(arbVersionText, arbVersionText, (a, b) => {
          const va = outcome(() => parseVersion(a));
          const vb = outcome(() => parseVersion(b));
          if (!va.ok || !vb.ok) return;
          const core = (v: Version) =>
            `${v.major}.${v.minor}.${v.patch}${v.prerelease.length ? `-${v.prerelease.join('.')}` : ''}`;
          const req = (t: string): Requirement | undefined => {
            const r = outcome(() => parseRequirement(t));
            return r.ok ? r.value : undefined;
          };
          const exact = req(`=${core(va.value)}`);
          if (exact) expect(satisfies(va.value, exact)).toBe(true);
          const atLeast = req(`>=${core(vb.value)}`);
          if (atLeast && va.value.prerelease.length === 0)
            expect(satisfies(va.value, atLeast)).toBe(compareVersions(va.value, vb.value) >= 0);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );
});
