/**
 * Credentials from outside: Authorization headers (src/identity/credentials.ts and
 * http/credential.ts), the unverified issuer reader of external identity tokens (identity/oidc.ts),
 * and Floe's own tokens (identity/tokens.ts `TokenService.verify`, on real SQLite with real keys).
 * Header parsing never throws; everything else refuses with Unauthenticated and nothing else; and
 * a mutated Floe token never verifies as anything but the token it came from.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestCredential } from '../../src/http/credential.js';
import { parseAuthorization } from '../../src/identity/credentials.js';
import { unverifiedIssuer } from '../../src/identity/oidc.js';
import { KeyRing } from '../../src/identity/server-keys.js';
import { TokenService } from '../../src/identity/tokens.js';
import { openStorage } from '../../src/storage/open.js';
import type { Storage } from '../../src/storage/types.js';
import { corpus, fc, fuzzParams, fuzzTimeout, outcome, outcomeAsync } from './fuzz.js';

const b64url = (s: string | Uint8Array) => Buffer.from(s).toString('base64url');

const arbHeader = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc
    .tuple(
      fc.constantFrom('Bearer', 'bearer', 'BASIC', 'Basic', 'Digest', ''),
      fc.constantFrom(' ', '  ', '\t', ''),
      fc.string({ unit: 'binary', maxLength: 60 }),
    )
    .map(([s, sp, v]) => `${s}${sp}${v}`),
  fc
    .tuple(
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.constantFrom(':', ''),
      fc.string({ unit: 'binary', maxLength: 40 }),
    )
    .map(([u, c, p]) => `Basic ${Buffer.from(`${u}${c}${p}`).toString('base64')}`),
  fc.constantFrom(
    'Basic',
    'Basic ',
    'Bearer ',
    'Basic Og==',
    'Basic ===',
    `Basic ${Buffer.from('floe_abc:').toString('base64')}`,
  ),
);

/** JWT-shaped strings: JSON or not, an `iss` of any type, segments of any count. */
const arbJson = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc
    .record(
      { iss: fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.array(fc.string())) },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc.string(),
);
const arbJwtLike = fc.oneof(
  fc
    .tuple(arbJson, arbJson, fc.uint8Array({ maxLength: 64 }))
    .map(([h, p, s]) => `${b64url(h)}.${b64url(p)}.${b64url(s)}`),
  fc
    .array(fc.string({ unit: fc.constantFrom(...'abcXYZ019-_.=+/ '), maxLength: 20 }), { maxLength: 5 })
    .map((parts) => parts.join('.')),
  fc.string({ unit: 'binary', maxLength: 100 }),
);

describe('credential parsing fuzz', () => {
  it.each(
    corpus('credentials').flatMap((e) =>
      e.bytes
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => [e.name, l] as const),
    ),
  )('corpus %s: %s', (_name, header) => {
    const r = parseAuthorization(header);
    expect(['none', 'credential', 'token-in-user-name']).toContain(r.kind);
    outcome(() => requestCredential(header), 'unauthenticated');
    outcome(() => unverifiedIssuer(header.replace(/^\S+ /, '')), 'unauthenticated');
  });

  it(
    'Authorization headers: parsing never throws, a credential is what the client sent',
    () => {
      fc.assert(
        fc.property(arbHeader, (header) => {
          const r = parseAuthorization(header);
          expect(['none', 'credential', 'token-in-user-name']).toContain(r.kind);
          if (r.kind === 'credential') {
            expect(r.credential).not.toBe('');
            if (/^bearer /i.test(header)) expect(r.credential).toBe(header.slice(7).trim());
          }
          const c = outcome(() => requestCredential(header), 'unauthenticated');
          if (c.ok) expect(c.value).toBe(r.kind === 'credential' ? r.credential : undefined);
          else expect(r.kind).toBe('token-in-user-name');
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'the unverified issuer of any string: the string `iss` of a JWT payload, or Unauthenticated',
    () => {
      fc.assert(
        fc.property(arbJwtLike, (token) => {
          const r = outcome(() => unverifiedIssuer(token), 'unauthenticated');
          if (r.ok) {
            expect(typeof r.value).toBe('string');
            expect(r.value).not.toBe('');
            expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')).iss).toBe(r.value);
          }
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );
});

describe('Floe token verification fuzz (real SQLite, real keys)', () => {
  let storage: Storage;
  let dir: string;
  let tokens: TokenService;
  let minted: { token: string; id: string };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'floe-fuzz-tokens-'));
    storage = await openStorage({ dataDir: dir });
    const keys = await KeyRing.open(storage.db, { nixKeyName: 'fuzz-1' });
    tokens = new TokenService(storage.db, keys, 'http://floe.test');
    minted = await tokens.mint({ subject: 'fuzz', ttlSeconds: 3600, grant: { role: 'server-admin' } });
  });
  afterAll(async () => {
    await storage?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('the minted token verifies (so the refusals below are about the mutations)', async () => {
    expect(await tokens.verify(minted.token)).toMatchObject({ kind: 'server-admin', tokenId: minted.id });
  });

  it(
    'arbitrary and JWT-shaped strings are refused with Unauthenticated',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            arbJwtLike,
            arbJwtLike.map((t) => `floe_${t}`),
          ),
          async (token) => {
            const r = await outcomeAsync(() => tokens.verify(token), 'unauthenticated');
            expect(r.ok).toBe(false);
          },
        ),
        fuzzParams(2),
      );
    },
    fuzzTimeout(40),
  );

  it(
    'a mutated Floe token is refused, or is the same token (non-canonical base64url of the same bytes)',
    async () => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=';
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.nat(), fc.constantFrom(...alphabet), fc.constantFrom('set', 'insert', 'delete')), {
            minLength: 1,
            maxLength: 3,
          }),
          async (edits) => {
            let t = minted.token;
            for (const [at, ch, how] of edits) {
              const i = at % t.length;
              t =
                how === 'set'
                  ? t.slice(0, i) + ch + t.slice(i + 1)
                  : how === 'insert'
                    ? t.slice(0, i) + ch + t.slice(i)
                    : t.slice(0, i) + t.slice(i + 1);
            }
            if (t === minted.token) return;
            const r = await outcomeAsync(() => tokens.verify(t), 'unauthenticated');
            if (r.ok) {
              // Only the padding bits of a segment's last character may change: the same header, claims and signature.
              expect(r.value).toMatchObject({ kind: 'server-admin', tokenId: minted.id });
              const segments = (s: string) =>
                s
                  .slice('floe_'.length)
                  .split('.')
                  .map((x) => Buffer.from(x, 'base64url').toString('hex'));
              expect(segments(t)).toEqual(segments(minted.token));
            }
          },
        ),
        fuzzParams(2),
      );
    },
    fuzzTimeout(40),
  );
});
