/**
 * narinfo parse/format (src/nix/narinfo.ts) on outside text: uploads from any client, upstream
 * caches. Parse only ever refuses with InvalidInput; what we format parses back to the same value;
 * and no formatted line can have been injected by a control character in a value.
 */
import { describe, expect, it } from 'vitest';
import { type NarInfo, formatNarInfo, parseNarInfo } from '../../src/nix/narinfo.js';
import { arbCa, arbNarInfo, arbSha256, arbSig, arbStorePathBase } from './arbitraries.js';
import { corpus, fc, fuzzParams, fuzzTimeout, outcome } from './fuzz.js';

const KEYS = [
  'StorePath',
  'URL',
  'Compression',
  'FileHash',
  'FileSize',
  'NarHash',
  'NarSize',
  'References',
  'Deriver',
  'Sig',
  'CA',
];
/** What a served line may look like: a known key or a plain extra field name, and a value without control characters. */
const FORMATTED_LINE = new RegExp(`^(${KEYS.join('|')}|[A-Za-z][A-Za-z0-9_.-]{0,63}): [^\\x00-\\x1f\\x7f]*$`);

/** The whole contract on one input: refuse with InvalidInput, or parse into something we can serve safely. */
function checkText(text: string): void {
  const parsed = outcome(() => parseNarInfo(text), 'invalid_input');
  if (!parsed.ok) return;
  const formatted = outcome(() => formatNarInfo(parsed.value), 'invalid_input');
  if (!formatted.ok) return;
  checkFormatted(formatted.value, parsed.value);
}

/** Digests as hex: a hex-encoded hash parses into a Buffer, a nix32 one into a Uint8Array. */
function comparable(info: NarInfo): unknown {
  const hex = (h: { algo: string; digest: Uint8Array } | undefined) =>
    h && `${h.algo}:${Buffer.from(h.digest).toString('hex')}`;
  return { ...info, narHash: hex(info.narHash), fileHash: hex(info.fileHash) };
}

function checkFormatted(out: string, info: NarInfo): void {
  expect(out.endsWith('\n')).toBe(true);
  const lines = out.slice(0, -1).split('\n');
  for (const line of lines) expect(line).toMatch(FORMATTED_LINE);
  // Every value lands on the line of its own key: nothing injected another field.
  const keys = lines.map((l) => l.slice(0, l.indexOf(':')));
  expect(keys.filter((k) => k === 'Sig').length).toBe(info.sigs.length);
  const known = keys.filter((k) => KEYS.includes(k) && k !== 'Sig');
  expect(new Set(known).size).toBe(known.length);
  // Unknown fields are kept as lines of their own, in order, after every known one.
  expect(keys.slice(keys.length - (info.extraFields?.length ?? 0))).toEqual(
    (info.extraFields ?? []).map((f) => f.name),
  );
  expect(comparable(parseNarInfo(out))).toEqual(comparable(info));
  expect(formatNarInfo(parseNarInfo(out))).toBe(out);
}

/** Lines that look like a narinfo's, with values from the whole of Unicode and control characters. */
const arbHostileValue = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({
    unit: fc.constantFrom('\n', '\r', '\x00', '\x0b', '\x0c', '\x1b', '\x7f', '\u2028', '\u0085', ' ', ':', 'a'),
    maxLength: 10,
  }),
  arbStorePathBase.map((b) => `/nix/store/${b}`),
  arbStorePathBase,
  arbSha256.map((h) => `sha256:${Buffer.from(h.digest).toString('hex')}`),
  arbSig,
  arbCa,
  fc.nat().map(String),
);
const arbLine = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(...KEYS, 'Unknown', 'storepath', ''),
      fc.constantFrom(': ', ':', ' : ', ': \x0b'),
      arbHostileValue,
    )
    .map(([k, sep, v]) => `${k}${sep}${v}`),
  fc.string({ unit: 'binary', maxLength: 80 }),
);
const arbNarInfoLike = fc.array(arbLine, { maxLength: 14 }).map((lines) => lines.map((l) => `${l}\n`).join(''));

/** A valid narinfo with one field's value replaced, or a line added, dropped or duplicated. */
const arbMutatedNarInfo = fc
  .tuple(arbNarInfo, fc.nat(), arbLine, fc.constantFrom('replace', 'insert', 'drop', 'duplicate', 'raw'))
  .map(([info, at, line, how]) => {
    const lines = formatNarInfo(info).slice(0, -1).split('\n');
    const i = at % lines.length;
    if (how === 'replace') lines[i] = `${lines[i]!.slice(0, lines[i]!.indexOf(': ') + 2)}${line}`;
    else if (how === 'insert') lines.splice(i, 0, line);
    else if (how === 'drop') lines.splice(i, 1);
    else if (how === 'duplicate') lines.splice(i, 0, lines[i]!);
    else return lines.join('\n') + line;
    return `${lines.join('\n')}\n`;
  });

describe('narinfo fuzz', () => {
  it.each(corpus('narinfo').map((e) => [e.name, e.bytes.toString('utf8')] as const))('corpus %s', (_name, text) => {
    checkText(text);
  });

  it('the valid corpus entries parse and round-trip byte for byte', () => {
    for (const e of corpus('narinfo').filter((e) => e.name.startsWith('valid-'))) {
      const text = e.bytes.toString('utf8');
      expect(formatNarInfo(parseNarInfo(text)), e.name).toBe(text);
    }
  });

  it(
    'format(info) parses back to info for every generated valid narinfo',
    () => {
      fc.assert(
        fc.property(arbNarInfo, (info) => {
          checkFormatted(formatNarInfo(info), info);
        }),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );

  it(
    'arbitrary text: InvalidInput or a narinfo whose formatted lines are all well-formed',
    () => {
      fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 400 }), checkText), fuzzParams());
      fc.assert(fc.property(arbNarInfoLike, checkText), fuzzParams());
    },
    fuzzTimeout(),
  );

  it(
    'mutated valid narinfos: InvalidInput or a narinfo whose formatted lines are all well-formed',
    () => {
      fc.assert(fc.property(arbMutatedNarInfo, checkText), fuzzParams());
    },
    fuzzTimeout(),
  );

  it(
    'a control character in any value never reaches the formatted output',
    () => {
      const control = fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c));
      fc.assert(
        fc.property(
          arbNarInfo,
          fc.constantFrom('url', 'compression', 'ca', 'sig'),
          control,
          fc.nat(),
          (info, field, c, at) => {
            const inject = (s: string) => s.slice(0, at % (s.length + 1)) + c + s.slice(at % (s.length + 1));
            const bad: NarInfo =
              field === 'sig'
                ? { ...info, sigs: [...info.sigs, inject('k:x')] }
                : field === 'ca'
                  ? { ...info, ca: inject(info.ca ?? 'x') }
                  : { ...info, [field]: inject(info[field]) };
            const r = outcome(() => formatNarInfo(bad), 'invalid_input');
            expect(r.ok).toBe(false);
          },
        ),
        fuzzParams(),
      );
    },
    fuzzTimeout(),
  );
});
