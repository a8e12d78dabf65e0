import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeNix32, encodeNix32 } from './nix32.js';
import { formatNix32Hash, formatSriHash, parseHash } from './hash.js';
import { parseStorePath, parseStorePathBase, parseStorePathHash } from './store-path.js';
import { formatNarInfo, parseNarInfo } from './narinfo.js';
import {
  fingerprintPath,
  formatPublicKey,
  formatSecretKey,
  parseSecretKey,
  signFingerprint,
  signingKeyFromSeed,
  verifyFingerprint,
} from './signing.js';
import { NarValidator, serializeNar } from './nar.js';
import { parseContentAddress } from './content-address.js';

const sha256 = (s: string | Buffer) => createHash('sha256').update(s).digest();

describe('nix32', () => {
  it('matches the reference vectors', () => {
    expect(encodeNix32(sha256('abc'))).toBe('1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s');
    expect(encodeNix32(sha256(''))).toBe('0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73');
  });
  it('round-trips random bytes of several sizes', () => {
    for (const size of [16, 20, 32, 64]) {
      for (let i = 0; i < 50; i++) {
        const bytes = createHash('sha512').update(`${size}-${i}`).digest().subarray(0, size);
        expect(Buffer.from(decodeNix32(encodeNix32(bytes), size))).toEqual(bytes);
      }
    }
  });
  it('rejects characters outside the alphabet and overflowing top digits', () => {
    expect(() => decodeNix32('e'.repeat(52), 32)).toThrow(/invalid character/);
    expect(() => decodeNix32('z' + '0'.repeat(51), 32)).toThrow(/does not fit/);
  });
});

describe('hashes', () => {
  it('parses nix32, base16, base64 and SRI forms to the same digest', () => {
    const nix32 = parseHash('sha256:09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm');
    const sri = parseHash('sha256-FePFYIlMuycIXPZbWi7LGEiMmZSX9FMbaQenWBzm1Sc=');
    expect(formatNix32Hash(sri)).toBe('sha256:09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm');
    expect(formatSriHash(nix32)).toBe('sha256-FePFYIlMuycIXPZbWi7LGEiMmZSX9FMbaQenWBzm1Sc=');
    const hex = Buffer.from(nix32.digest).toString('hex');
    expect(formatNix32Hash(parseHash(`sha256:${hex.toUpperCase()}`))).toBe(formatNix32Hash(nix32));
    expect(formatNix32Hash(parseHash(`sha256:${Buffer.from(nix32.digest).toString('base64')}`))).toBe(
      formatNix32Hash(nix32),
    );
  });
  it('rejects unprefixed and malformed hashes', () => {
    expect(() => parseHash('09ymwqf5i9q7d4dm7x4pjjcqqj0qrcp5lnznbh42gfsci5hcbqqm')).toThrow(/expected/);
    expect(() => parseHash('sha256:abc')).toThrow(/length/);
    expect(() => parseHash('blake9:abc')).toThrow(/unknown hash algorithm/);
  });
});

describe('store paths', () => {
  it('accepts valid paths and names', () => {
    expect(parseStorePath('/nix/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10')).toBe(
      'w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10',
    );
    expect(parseStorePathBase('w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-a+b=c?d_e.f')).toBeTruthy();
  });
  it('rejects bad hashes, names, store dirs and traversal', () => {
    expect(() => parseStorePathHash('eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee')).toThrow();
    expect(() => parseStorePath('/other/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello')).toThrow(/not in/);
    expect(() => parseStorePathBase('w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-../x')).toThrow();
    expect(() => parseStorePathBase('w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-.hidden')).toThrow(/start/);
    expect(() => parseStorePathBase('w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-' + 'a'.repeat(212))).toThrow();
    expect(() => parseStorePathBase('w9yy7v61ipb5rx6i35zq1mvc2iqfmps1')).toThrow();
  });
});

const HELLO_NARINFO = `StorePath: /nix/store/w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
URL: nar/15zk4zszw9lgkdkkwy7w11m5vag11n5dhv2i6hj308qpxczvdddx.nar.xz
Compression: xz
FileHash: sha256:15zk4zszw9lgkdkkwy7w11m5vag11n5dhv2i6hj308qpxczvdddx
FileSize: 41232
NarHash: sha256:1mi14cqk363wv368ffiiy01knardmnlyphi6h9xv6dkjz44hk30i
NarSize: 205968
References: 9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc-2.31 w9yy7v61ipb5rx6i35zq1mvc2iqfmps1-hello-2.10
Sig: cache.nixos.org-1:uP5KU8MCmyRnKGlN5oEv6xWJBI5EO/Pf5aFztZuLSz8BpCcZ1fdBnJkVXhBAlxkdm/CemsgQskhwvyd2yghTAg==
`;
const NIXOS_KEY = {
  name: 'cache.nixos.org-1',
  publicKey: Buffer.from('6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=', 'base64'),
};

describe('narinfo', () => {
  it('round-trips a real cache.nixos.org narinfo byte for byte', () => {
    expect(formatNarInfo(parseNarInfo(HELLO_NARINFO))).toBe(HELLO_NARINFO);
  });
  it('verifies the real signature with the fingerprint rule', () => {
    const info = parseNarInfo(HELLO_NARINFO);
    expect(verifyFingerprint(NIXOS_KEY, fingerprintPath(info), info.sigs[0]!)).toBe(true);
    const tampered = { ...info, narSize: info.narSize + 1 };
    expect(verifyFingerprint(NIXOS_KEY, fingerprintPath(tampered), info.sigs[0]!)).toBe(false);
  });
  it('verifies a second real signature (sorted self-reference)', () => {
    const fp = fingerprintPath({
      storePath: parseStorePathBase('gdh8165b7rg4y53v64chjys7mbbw89f9-hello-2.10'),
      narHash: parseHash('sha256:1ddv0iqq47j0awyw7a8dmm8bz71c6ifrliq53kmmsfzjxf3rwvb8'),
      narSize: 197528,
      references: ['gdh8165b7rg4y53v64chjys7mbbw89f9-hello-2.10', '7gx4kiv5m0i7d7qkixq2cwzbr10lvxwc-glibc-2.27'].map(
        (r) => parseStorePathBase(r),
      ),
    });
    expect(fp).toBe(
      '1;/nix/store/gdh8165b7rg4y53v64chjys7mbbw89f9-hello-2.10;sha256:1ddv0iqq47j0awyw7a8dmm8bz71c6ifrliq53kmmsfzjxf3rwvb8;197528;/nix/store/7gx4kiv5m0i7d7qkixq2cwzbr10lvxwc-glibc-2.27,/nix/store/gdh8165b7rg4y53v64chjys7mbbw89f9-hello-2.10',
    );
    expect(
      verifyFingerprint(
        NIXOS_KEY,
        fp,
        'cache.nixos.org-1:K0thQEG60rzAK8ZS9f1whb7eRlIshlMDJAm7xvX1oF284H+PTqlicv/wGW6BIj+wWWONHvUZ2MYc+KDArekjDA==',
      ),
    ).toBe(true);
  });
  it('defaults Compression to bzip2 and keeps empty References', () => {
    const info = parseNarInfo(
      HELLO_NARINFO.replace('Compression: xz\n', '').replace(/References: .*\n/, 'References: \n'),
    );
    expect(info.compression).toBe('bzip2');
    expect(info.references).toEqual([]);
    expect(formatNarInfo(info)).toContain('References: \n');
  });
  it('rejects what Nix would reject', () => {
    expect(() => parseNarInfo(HELLO_NARINFO.replace(/\n/g, '\r\n'))).toThrow(/CR/);
    expect(() => parseNarInfo(HELLO_NARINFO.trimEnd())).toThrow(/newline/);
    expect(() => parseNarInfo(HELLO_NARINFO.replace('NarSize: 205968', 'NarSize: 0'))).toThrow(/zero/);
    expect(() => parseNarInfo(HELLO_NARINFO.replace(/NarHash: .*\n/, ''))).toThrow(/missing NarHash/);
    expect(() => parseNarInfo(HELLO_NARINFO.replace('Sig: cache.nixos.org-1:uP5', 'Sig: cache.nixos.org-1:'))).toThrow(
      /Sig/,
    );
    expect(() => parseNarInfo(HELLO_NARINFO.replace('9df65igwjmf2wbw0gbrrgair6piqjgmi-glibc', 'bad-glibc'))).toThrow(
      /References/,
    );
    expect(() => parseNarInfo(HELLO_NARINFO + 'CA: bogus:thing\n')).toThrow(/CA/);
    expect(() => parseNarInfo(HELLO_NARINFO + 'NarSize: 1\n')).toThrow(/duplicate/);
  });
});

describe('signing keys', () => {
  it('reproduces the self-made cache vector (A.5)', () => {
    const key = signingKeyFromSeed('test-cache-1', sha256('test seed'));
    expect(formatPublicKey(key)).toBe('test-cache-1:aU2DNO47sD//6IEDUzdPXt2/LP1AphxRI/uufduNuKs=');
    const fp = fingerprintPath({
      storePath: parseStorePathBase('52f4isfma8893bgv735840kkwzxvjgii-t-signed'),
      narHash: parseHash('sha256:1a1l1dnrvsw8fk196lwyhbgzlyh5d729pdmvk1s7mw12v6bdnfq5'),
      narSize: 888,
      references: [],
    });
    expect(signFingerprint(key, fp)).toBe(
      'test-cache-1:yrBjZOoQP7DW3Zrrp8IwaIps7uh0V8bOYD8BrjgWWVymbUlAqs1k4Tx9pchviDrEVmb2goFRjXH7TU8LgJp5AA==',
    );
    expect(formatPublicKey(parseSecretKey(formatSecretKey(key)))).toBe(formatPublicKey(key));
  });
});

describe('content addresses', () => {
  it('accepts the forms Nix writes and rejects others', () => {
    expect(parseContentAddress('fixed:r:sha256:1lr187v6dck1rjh2j6svpikcfz53wyl3qrlcbb405zlh13x0khhh').method).toBe(
      'nar',
    );
    expect(parseContentAddress('text:sha256:1lr187v6dck1rjh2j6svpikcfz53wyl3qrlcbb405zlh13x0khhh').method).toBe('text');
    expect(() => parseContentAddress('fixed:r:sha257:abc')).toThrow();
  });
});

describe('NAR validation', () => {
  const hello = serializeNar({ type: 'regular', contents: 'hello\n' });
  const tree = serializeNar({
    type: 'directory',
    entries: {
      bar: { type: 'regular', contents: 'foo\n' },
      link: { type: 'symlink', target: 'bar' },
      sub: { type: 'directory', entries: { x: { type: 'regular', contents: '#!/bin/sh\n', executable: true } } },
    },
  });
  const feed = (nar: Buffer, chunk: number) => {
    const v = new NarValidator();
    for (let i = 0; i < nar.length; i += chunk) v.push(nar.subarray(i, i + chunk));
    return v.end();
  };

  it('serialises the reference vectors (A.1, A.2)', () => {
    expect(hello.length).toBe(120);
    expect(encodeNix32(sha256(hello))).toBe('04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw');
    expect(tree.length).toBe(880);
    expect(encodeNix32(sha256(tree))).toBe('177731pw1rrlwxcqzv4zhckrlda933f9bgv42saqd8f042irjzwk');
  });
  it('accepts valid archives fed in any chunking', () => {
    for (const chunk of [1, 3, 8, 100, 10_000]) {
      expect(feed(tree, chunk)).toEqual({ files: 2, directories: 2, symlinks: 1 });
      expect(feed(hello, chunk).files).toBe(1);
    }
  });
  it('rejects truncation, trailing data, bad padding, bad magic and unsorted entries', () => {
    expect(() => feed(tree.subarray(0, tree.length - 8), 7)).toThrow(/truncated/);
    expect(() => feed(Buffer.concat([tree, Buffer.alloc(8)]), 7)).toThrow(/trailing/);
    const badPad = Buffer.from(hello);
    badPad[8 + 13] = 1; // first padding byte after "nix-archive-1"
    expect(() => feed(badPad, 5)).toThrow(/padding/);
    expect(() => feed(Buffer.from('x'.repeat(64)), 5)).toThrow();
    const unsorted = Buffer.from(
      tree.toString('latin1').replace('\x03\0\0\0\0\0\0\0bar', '\x03\0\0\0\0\0\0\0zar'),
      'latin1',
    );
    expect(() => feed(unsorted, 9)).toThrow(/not sorted/);
    const dotdot = serializeNar({ type: 'directory', entries: { ab: { type: 'regular', contents: '' } } });
    const evil = Buffer.from(
      dotdot.toString('latin1').replace('\x02\0\0\0\0\0\0\0ab', '\x02\0\0\0\0\0\0\0..'),
      'latin1',
    );
    expect(() => feed(evil, 9)).toThrow(/not allowed/);
  });
});

describe('content-addressed store paths (vectors from Nix 2.8: nix-store --add-fixed, nix path-info --json)', () => {
  it('recursive sha256 (source) paths are recomputed from their CA and verified against NarHash', async () => {
    const {
      contentAddressedPath,
      isVerifiedContentAddressed,
      parseContentAddress: parse,
    } = await import('./content-address.js');
    const ca = 'fixed:r:sha256:0addczm9fjxkwraq3rf9z66ndy1w8scg7pi05xdyf4rjpl2h73gj';
    const storePath = parseStorePathBase('jsfv5k6d8l03jjs4135pibz6vj8lcfq3-d');
    expect(contentAddressedPath('d', parse(ca), [], false)).toBe(storePath);
    const narHash = parseHash('sha256-8o0DBb0yE+dbLyDe85hGPPhmjfnJ5YFV5rNLl+pnrSk=');
    expect(isVerifiedContentAddressed({ storePath, narHash, references: [], ca })).toBe(true);
    // Another NAR under the same CA claim, another name, or a forged CA: not verified.
    expect(
      isVerifiedContentAddressed({ storePath, narHash: parseHash(`sha256:${'0'.repeat(52)}`), references: [], ca }),
    ).toBe(false);
    expect(
      isVerifiedContentAddressed({
        storePath: parseStorePathBase('jsfv5k6d8l03jjs4135pibz6vj8lcfq3-e'),
        narHash,
        references: [],
        ca,
      }),
    ).toBe(false);
    expect(isVerifiedContentAddressed({ storePath, narHash, references: [], ca: undefined })).toBe(false);
    expect(
      isVerifiedContentAddressed({
        storePath,
        narHash,
        references: [parseStorePathBase('14pam5h71pv7v3nzjvbkzcnqz0nyfi3c-t.txt')],
        ca,
      }),
    ).toBe(false);
  });

  it('flat fixed-output paths are computed (but not verifiable from metadata alone)', async () => {
    const {
      contentAddressedPath,
      isVerifiedContentAddressed,
      parseContentAddress: parse,
    } = await import('./content-address.js');
    const ca = 'fixed:sha256:0cz729xf10lrw014jj2hlbxalgdpahxbg61gdg51jnryx8dqxrmr';
    const storePath = parseStorePathBase('14pam5h71pv7v3nzjvbkzcnqz0nyfi3c-t.txt');
    expect(contentAddressedPath('t.txt', parse(ca), [], false)).toBe(storePath);
    expect(
      isVerifiedContentAddressed({
        storePath,
        narHash: parseHash('sha256-1p1dAqqQ3yUR3UiA23QubW4ePc+6z/oB9/49zBrZy7M='),
        references: [],
        ca,
      }),
    ).toBe(false);
  });
});

describe('narinfo line injection', () => {
  it('refuses signature key names and fields with control characters', async () => {
    const { parseSignature } = await import('./signing.js');
    const sig = Buffer.alloc(64, 1).toString('base64');
    expect(() => parseSignature(`evil\nURL: nar/x.nar:${sig}`)).toThrow(/printable/);
    expect(() => parseSignature(`evil key:${sig}`)).toThrow(/printable/);
    expect(parseSignature(`good-1:${sig}`).keyName).toBe('good-1');
    const info = parseNarInfo(
      `StorePath: /nix/store/${'a'.repeat(32)}-x\nURL: nar/x.nar\nCompression: none\nNarHash: sha256:${'0'.repeat(52)}\nNarSize: 1\nReferences: \n`,
    );
    expect(() => formatNarInfo({ ...info, sigs: [`a\nURL: nar/evil:${sig}`] })).toThrow(/control characters/);
    expect(() => formatNarInfo({ ...info, url: 'nar/x\nURL: y' })).toThrow(/control characters/);
    expect(formatNarInfo(info)).toContain('URL: nar/x.nar\n');
  });
});
