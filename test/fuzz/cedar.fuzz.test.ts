/**
 * Org policy uploads (src/policy/cedar.ts parsePolicyFile / validatePolicyFile), which any org
 * admin sends. Arbitrary and mutated policy text gives a validation result (problems with
 * positions inside the file), never an exception out of the WASM module; and a file that
 * validates without problems always compiles into a policy set that evaluates.
 */
import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/identity/principal.js';
import type { Resource } from '../../src/policy/actions.js';
import { CedarPolicySet, type ParsedPolicies, validatePolicyFile } from '../../src/policy/cedar.js';
import { corpus, fc, fuzzParams, fuzzTimeout } from './fuzz.js';

const seeds = corpus('cedar').map((e) => ({ name: e.name, text: e.bytes.toString('utf8') }));

function checkPolicyText(text: string, orgName?: string): ParsedPolicies {
  let res: ParsedPolicies;
  try {
    res = validatePolicyFile(text, orgName);
  } catch (err) {
    throw new Error(`validatePolicyFile threw on ${JSON.stringify(text.slice(0, 200))}: ${(err as Error).stack}`);
  }
  const lines = text.split('\n').length;
  for (const p of res.problems) {
    expect(typeof p.message).toBe('string');
    if (p.line !== undefined) {
      expect(p.line).toBeGreaterThanOrEqual(1);
      expect(p.line).toBeLessThanOrEqual(lines);
    }
  }
  if (res.problems.length === 0 && Object.keys(res.policies).length > 0) {
    const set = new CedarPolicySet('fuzz-scratch', res.policies);
    const caller: Principal = { kind: 'server-admin', tokenId: 't', subject: 's' };
    const resource: Resource = {
      type: 'slice',
      org: { id: 'o', name: orgName ?? 'acme' },
      slice: { id: 's', name: 'default', public: false },
    };
    const d = set.evaluate(caller, 'cache.read', resource, {}, true, Date.now());
    expect(typeof d.allowed).toBe('boolean');
  }
  return res;
}

/** Tokens of the Cedar grammar and of Floe's schema, to get past the parser into validation. */
const TOKENS = [
  'permit',
  'forbid',
  '(',
  ')',
  '{',
  '}',
  ',',
  ';',
  'principal',
  'action',
  'resource',
  'when',
  'unless',
  '==',
  '!=',
  'in',
  'has',
  'like',
  '&&',
  '||',
  '!',
  '.',
  '<',
  '>',
  '+',
  '*',
  '-',
  'Floe::Action::"cache.read"',
  'Floe::Action::"cache.write"',
  'Floe::Slice::"acme/ops"',
  'Floe::Org::"acme"',
  'Floe::Org::"globex"',
  'Floe::Flake::"acme/x"',
  'context.country',
  'context.ip',
  'principal.claims',
  'principal.org',
  'ip("10.0.0.0/8")',
  '.isInRange',
  '"DE"',
  '"\\u{0}"',
  '"\\',
  '9223372036854775807',
  '-9223372036854775808',
  'true',
  'if',
  'then',
  'else',
  '@id("x")',
  '@id("floe:x")',
  '?principal',
  '//',
  '/*',
  '\n',
  ' ',
];
const arbTokens = fc.array(fc.constantFrom(...TOKENS), { maxLength: 40 }).map((t) => t.join(' '));
const arbMutatedSeed = fc
  .tuple(
    fc.constantFrom(...seeds.filter((s) => s.name.startsWith('valid-')).map((s) => s.text)),
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.nat({ max: 8 }),
        fc.oneof(fc.constantFrom(...TOKENS), fc.string({ unit: 'binary', maxLength: 4 })),
      ),
      { minLength: 1, maxLength: 4 },
    ),
  )
  .map(([text, edits]) => {
    let t = text;
    for (const [at, del, ins] of edits) {
      const i = at % (t.length + 1);
      t = t.slice(0, i) + ins + t.slice(i + del);
    }
    return t;
  });

describe('Cedar policy upload fuzz', () => {
  it.each(seeds.map((s) => [s.name, s.text] as const))('corpus %s', (name, text) => {
    const res = checkPolicyText(text, 'acme');
    if (name.startsWith('valid-')) expect(res.problems).toEqual([]);
    else expect(res.problems.length).toBeGreaterThan(0);
  });

  it(
    'arbitrary text: a result, never an exception',
    () => {
      fc.assert(
        fc.property(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.option(fc.constantFrom('acme', 'globex')),
          (t, org) => void checkPolicyText(t, org ?? undefined),
        ),
        fuzzParams(2),
      );
    },
    fuzzTimeout(40),
  );

  it(
    'token soup from the Cedar grammar and Floe schema: a result, never an exception',
    () => {
      fc.assert(
        fc.property(arbTokens, (t) => void checkPolicyText(t, 'acme')),
        fuzzParams(2),
      );
    },
    fuzzTimeout(40),
  );

  it(
    'mutated valid policy files: a result, and what validates compiles and evaluates',
    () => {
      fc.assert(
        fc.property(arbMutatedSeed, (t) => void checkPolicyText(t, 'acme')),
        fuzzParams(2),
      );
    },
    fuzzTimeout(40),
  );
});
