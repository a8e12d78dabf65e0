/**
 * Small fields from API bodies, tokens and upstream caches: names (org/service.ts), token TTLs
 * (identity/tokens.ts), deploy grants (registry/deploy.ts), CIDR limits (policy/network.ts),
 * upstream trusted keys and signed upstream narinfos (cache/upstream-verify.ts). Each refuses with
 * InvalidInput or answers; an upstream narinfo is a verdict, never an exception, and a mutated
 * signed narinfo is accepted only if everything the signature covers is unchanged.
 */
import { describe, expect, it } from 'vitest';
import { parseTrustedKey, verifyUpstreamNarInfo } from '../../src/cache/upstream-verify.js';
import { parseTtl } from '../../src/identity/tokens.js';
import { formatNarInfo } from '../../src/nix/narinfo.js';
import { fingerprintPath, formatPublicKey, signFingerprint, signingKeyFromSeed } from '../../src/nix/signing.js';
import { hashPartOf } from '../../src/nix/store-path.js';
import { parseName } from '../../src/org/service.js';
import { cidrWithin, ipInAnyRange, isValidCidr } from '../../src/policy/network.js';
import { parseDeployGrant } from '../../src/registry/deploy.js';
import { arbNarInfo } from './arbitraries.js';
import { fc, fuzzParams, fuzzTimeout, mutated, outcome } from './fuzz.js';

const arbIpLike = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc
    .tuple(
      fc.oneof(fc.ipV4(), fc.ipV6(), fc.string({ maxLength: 20 })),
      fc.oneof(fc.integer({ min: -1, max: 200 }).map(String), fc.string({ maxLength: 4 })),
    )
    .map(([ip, bits]) => `${ip}/${bits}`),
  fc.string({ unit: fc.constantFrom(...'0123456789.:/abcdef%x '), maxLength: 30 }),
);

describe('small fields fuzz', () => {
  it(
    'names, TTLs and deploy grants: a value or InvalidInput',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.string({ unit: 'binary', maxLength: 80 }),
            fc.stringMatching(/^[a-z0-9_-]{0,70}$/),
            fc.stringMatching(/^[a-z]{0,8}\/[a-z]{0,8}(\/[0-9.^~*=<>, -]{0,12})?#[A-Za-z_.'-]{0,12}$/),
            fc.stringMatching(/^ ?[0-9]{0,12}[smhdwx]? ?$/),
          ),
          (s) => {
            for (const kind of ['org', 'slice', 'upstream', 'pin'] as const)
              outcome(() => parseName(kind, s), 'invalid_input');
            const ttl = outcome(() => parseTtl(s), 'invalid_input');
            if (ttl.ok) expect(Number.isSafeInteger(ttl.value) && ttl.value >= 1).toBe(true);
            outcome(() => parseDeployGrant(s, 'acme'), 'invalid_input');
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'CIDR checks answer for any strings',
    () => {
      fc.assert(
        fc.property(arbIpLike, fc.array(arbIpLike, { maxLength: 3 }), (s, list) => {
          expect(typeof isValidCidr(s)).toBe('boolean');
          const valid = list.filter(isValidCidr);
          if (isValidCidr(s)) expect(typeof cidrWithin(s, valid)).toBe('boolean');
          expect(typeof ipInAnyRange(s.split('/')[0]!, valid)).toBe('boolean');
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'upstream keys: a key of 32 bytes or InvalidInput',
    () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.string({ unit: 'binary', maxLength: 80 }),
            fc
              .tuple(fc.string({ maxLength: 10 }), fc.uint8Array({ minLength: 30, maxLength: 34 }))
              .map(([n, k]) => `${n}:${Buffer.from(k).toString('base64')}`),
          ),
          (s) => {
            const r = outcome(() => parseTrustedKey(s), 'invalid_input');
            if (r.ok) expect(r.value.publicKey.length).toBe(32);
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'signed upstream narinfos, mutated: a verdict, and acceptance only with the signed fields intact',
    () => {
      const key = signingKeyFromSeed('upstream-1', Buffer.alloc(32, 7));
      const trusted = [parseTrustedKey(formatPublicKey(key))];
      const arbSigned = arbNarInfo.map((info) => {
        const signed = { ...info, sigs: [signFingerprint(key, fingerprintPath(info))] };
        return { info: signed, text: formatNarInfo(signed) };
      });
      fc.assert(
        fc.property(
          arbSigned.chain((s) =>
            fc.tuple(
              fc.constant(s),
              fc.oneof(fc.constant(Buffer.from(s.text)), mutated(fc.constant(new Uint8Array(Buffer.from(s.text))))),
            ),
          ),
          ([{ info, text }, bytes]) => {
            const verdict = verifyUpstreamNarInfo(bytes.toString('utf8'), hashPartOf(info.storePath), trusted);
            if (bytes.toString('utf8') === text) expect(verdict.ok).toBe(true);
            if (verdict.ok) {
              expect(verdict.info.storePath).toBe(info.storePath);
              expect(Buffer.from(verdict.info.narHash.digest).equals(Buffer.from(info.narHash.digest))).toBe(true);
              expect(verdict.info.narSize).toBe(info.narSize);
              expect([...verdict.info.references].sort()).toEqual([...info.references].sort());
            }
          },
        ),
        fuzzParams(2),
      );
    },
    fuzzTimeout(20),
  );
});
