import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseHash } from '../nix/hash.js';
import { formatNarInfo } from '../nix/narinfo.js';
import { encodeNix32 } from '../nix/nix32.js';
import { fingerprintPath, formatPublicKey, generateSigningKey, signFingerprint } from '../nix/signing.js';
import type { StorePathBase } from '../nix/store-path.js';
import { checkFetchedNar, parseTrustedKey, verifyUpstreamNarInfo } from './upstream-verify.js';

const upstreamKey = generateSigningKey('upstream-1');
const otherKey = generateSigningKey('upstream-1'); // same name, different key
const trusted = [parseTrustedKey(formatPublicKey(upstreamKey))];
const base = `${'1'.repeat(32)}-hello` as StorePathBase;
const dep = `${'2'.repeat(32)}-glibc` as StorePathBase;
const narHash = parseHash(`sha256:${encodeNix32(createHash('sha256').update('nar').digest())}`);

function narinfo(sigKey = upstreamKey, overrides: { storePath?: StorePathBase; narSize?: number } = {}) {
  const meta = { storePath: base, narHash, narSize: 120, references: [dep] };
  const sig = signFingerprint(sigKey, fingerprintPath(meta));
  return formatNarInfo({ ...meta, ...overrides, url: 'nar/x.nar.xz', compression: 'xz', sigs: [sig] });
}

describe('verifyUpstreamNarInfo', () => {
  it('accepts a narinfo signed by a trusted key', () => {
    const v = verifyUpstreamNarInfo(narinfo(), base, trusted);
    expect(v).toMatchObject({ ok: true, signedBy: 'upstream-1' });
    if (v.ok) expect(v.info.references).toEqual([dep]);
  });
  it('refuses a signature by an untrusted key of the same name', () => {
    expect(verifyUpstreamNarInfo(narinfo(otherKey), base, trusted)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no valid signature/),
    });
  });
  it('refuses a narinfo whose signed fields were changed (NarSize)', () => {
    const text = narinfo().replace('NarSize: 120', 'NarSize: 121');
    expect(verifyUpstreamNarInfo(text, base, trusted).ok).toBe(false);
  });
  it('accepts a bare hash part (pull-through) only for that hash', () => {
    expect(verifyUpstreamNarInfo(narinfo(), base.slice(0, 32) as StorePathBase, trusted).ok).toBe(true);
    expect(verifyUpstreamNarInfo(narinfo(), dep.slice(0, 32) as StorePathBase, trusted).ok).toBe(false);
  });
  it('refuses a narinfo for another path than asked', () => {
    expect(verifyUpstreamNarInfo(narinfo(), dep, trusted)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not/),
    });
  });
  it('refuses garbage and unsigned narinfos', () => {
    expect(verifyUpstreamNarInfo('<html>', base, trusted).ok).toBe(false);
    const unsigned = narinfo()
      .split('\n')
      .filter((l) => !l.startsWith('Sig:'))
      .join('\n');
    expect(verifyUpstreamNarInfo(unsigned, base, trusted)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/signatures: none/),
    });
  });
  it('checks the fetched NAR against the signed hash and size', () => {
    expect(checkFetchedNar({ narHash, narSize: 120 }, { narHash, narSize: 120 })).toBeUndefined();
    expect(checkFetchedNar({ narHash, narSize: 120 }, { narHash, narSize: 121 })).toMatch(/size mismatch/);
    const other = parseHash(`sha256:${encodeNix32(createHash('sha256').update('evil').digest())}`);
    expect(checkFetchedNar({ narHash, narSize: 120 }, { narHash: other, narSize: 120 })).toMatch(/hash mismatch/);
  });
  it('parses trusted keys strictly', () => {
    expect(() => parseTrustedKey('cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=')).not.toThrow();
    expect(() => parseTrustedKey('nokey')).toThrow();
    expect(() => parseTrustedKey('k:AAAA')).toThrow();
  });
});
