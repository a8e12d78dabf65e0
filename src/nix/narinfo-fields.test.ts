import { describe, expect, it } from 'vitest';
import { MAX_EXTRA_FIELDS, formatNarInfo, parseNarInfo } from './narinfo.js';
import { fingerprintPath } from './signing.js';

const PROVENANCE = '{"drv":"0gz5z3cr2wsd0h0vgmr8zajiw5gns0i6-hello.drv","next":null,"output":"out","type":"build"}';
const BASE =
  'StorePath: /nix/store/52f4isfma8893bgv735840kkwzxvjgii-t-signed\n' +
  'URL: nar/0lfrjzhhsgz9i1q1mg0rhxkb9asw41g0cky3pb4npg4vbd7r5n42.nar.zst\n' +
  'Compression: zstd\n' +
  'FileHash: sha256:0lfrjzhhsgz9i1q1mg0rhxkb9asw41g0cky3pb4npg4vbd7r5n42\n' +
  'FileSize: 250\n' +
  'NarHash: sha256:1a1l1dnrvsw8fk196lwyhbgzlyh5d729pdmvk1s7mw12v6bdnfq5\n' +
  'NarSize: 888\n' +
  'References: \n' +
  'Sig: test-cache-1:yrBjZOoQP7DW3Zrrp8IwaIps7uh0V8bOYD8BrjgWWVymbUlAqs1k4Tx9pchviDrEVmb2goFRjXH7TU8LgJp5AA==\n';

describe('narinfo fields Floe does not interpret', () => {
  it('keeps Provenance and other unknown lines byte-for-byte, in order, after the fields Nix writes', () => {
    const text = BASE + `Provenance: ${PROVENANCE}\nX-Thing:  two spaces kept \nSystem: x86_64-linux\nX-Thing: again\n`;
    const info = parseNarInfo(text);
    expect(info.extraFields).toEqual([
      { name: 'Provenance', value: PROVENANCE },
      { name: 'X-Thing', value: ' two spaces kept ' },
      { name: 'System', value: 'x86_64-linux' },
      { name: 'X-Thing', value: 'again' },
    ]);
    expect(formatNarInfo(info)).toBe(text);
    expect(parseNarInfo(formatNarInfo(info))).toEqual(info);
  });

  it('an unknown field anywhere is served after CA; the signature fingerprint does not change', () => {
    const lines = BASE.split('\n').filter(Boolean);
    const ca = 'CA: fixed:r:sha256:1lr187v6dck1rjh2j6svpikcfz53wyl3qrlcbb405zlh13x0khhh';
    const moved = [lines[0], `Provenance: ${PROVENANCE}`, ...lines.slice(1), ca].join('\n') + '\n';
    const info = parseNarInfo(moved);
    const out = formatNarInfo(info);
    expect(out.endsWith(`${ca}\nProvenance: ${PROVENANCE}\n`)).toBe(true);
    const plain = parseNarInfo(BASE);
    expect(fingerprintPath(info)).toBe(fingerprintPath(plain));
    expect(plain.extraFields).toBeUndefined();
  });

  it('refuses what a Nix client would misread, and anything beyond the bounds, with a 400', () => {
    const bad = [
      [`Provenance: not json\n`, /Provenance.*JSON/],
      [`Provenance: ["type"]\n`, /JSON object with a string "type"/],
      [`Foo:bar: x\n`, /field name/],
      [`Foo Bar: x\n`, /field name/],
      [`X-A: tab\there\n`, /control characters/],
      [Array.from({ length: MAX_EXTRA_FIELDS + 1 }, (_, i) => `X-${i}: v\n`).join(''), /more than 32 unknown fields/],
      [`X-Big: ${'a'.repeat(40_000)}\nX-Big2: ${'a'.repeat(30_000)}\n`, /more than 65536 bytes/],
    ] as const;
    for (const [extra, message] of bad) {
      expect(() => parseNarInfo(BASE + extra), extra.slice(0, 30)).toThrow(message);
    }
    // The known fields keep their own rules (a second URL is not an extra field).
    expect(() => parseNarInfo(BASE + 'URL: nar/x.nar\n')).toThrow(/duplicate field URL/);
  });

  it('formatting checks the fields too (the batch API hands them over without a parse)', () => {
    const info = parseNarInfo(BASE);
    expect(() => formatNarInfo({ ...info, extraFields: [{ name: 'URL', value: 'x' }] })).toThrow(/not an extra field/);
    expect(() => formatNarInfo({ ...info, extraFields: [{ name: 'X', value: 'a\nURL: evil' }] })).toThrow(/control/);
  });
});
