/** Signatures of other sizes than Ed25519's (post-quantum, ECDSA): kept, bounded, never verified as Ed25519. */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { formatNarInfo, parseNarInfo } from './narinfo.js';
import { MAX_SIGNATURE_BASE64, parseSignature } from './signing.js';

const BASE = `StorePath: /nix/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
URL: nar/15zk4zszw9lgkdkkwy7w11m5vag11n5dhv2i6hj308qpxczvdddx.nar.xz
Compression: xz
FileHash: sha256:15zk4zszw9lgkdkkwy7w11m5vag11n5dhv2i6hj308qpxczvdddx
FileSize: 41232
NarHash: sha256:1mi14cqk363wv368ffiiy01knardmnlyphi6h9xv6dkjz44hk30i
NarSize: 205968
References: 9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31 w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
`;

describe('narinfo signatures of any size', () => {
  it('keeps a several-KB signature (ML-DSA-65: 3309 bytes) next to an Ed25519 one, byte for byte', () => {
    const pq = `pq-signer-1:${randomBytes(3309).toString('base64')}`;
    const ed = `cache.nixos.org-1:uP5KU8MCmyRnKGlN5oEv6xWJBI5EO/Pf5aFztZuLSz8BpCcZ1fdBnJkVXhBAlxkdm/CemsgQskhwvyd2yghTAg==`;
    const text = `${BASE}Sig: ${ed}\nSig: ${pq}\n`;
    const info = parseNarInfo(text);
    expect(info.sigs).toEqual([ed, pq]);
    expect(formatNarInfo(info)).toBe(text);
    // Verification stays Ed25519-only: the large one is not mistaken for one.
    expect(() => parseSignature(pq)).toThrow(/64 bytes/);
  });

  it('refuses what Nix >= 2.34 refuses, and signatures past the bound', () => {
    for (const [what, sig] of [
      ['empty base64', 'k-1:'],
      ['invalid base64', 'k-1:abc$'],
      ['base64 of a wrong length', 'k-1:abcde'],
      ['no key name', ':AAAA'],
      ['too long', `k-1:${'A'.repeat(MAX_SIGNATURE_BASE64 + 4)}`],
    ] as const) {
      expect(() => parseNarInfo(`${BASE}Sig: ${sig}\n`), what).toThrow(/Sig/);
    }
    const many = Array.from({ length: 65 }, (_, i) => `Sig: k-${i}:${randomBytes(64).toString('base64')}\n`).join('');
    expect(() => parseNarInfo(BASE + many)).toThrow(/more than 64 signatures/);
  });
});
