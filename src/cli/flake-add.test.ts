import { describe, expect, it } from 'vitest';
import { addFlakeInput, chooseInputUrl } from './flake-add.js';
import { parseNixVersion } from '../nix/lockable-tarball.js';

describe('addFlakeInput', () => {
  it('adds to an inputs block', () => {
    const out = addFlakeInput(
      '{\n  inputs = {\n    nixpkgs.url = "x";\n  };\n  outputs = _: {};\n}\n',
      'tools',
      'https://f/acme/tools/0.1',
    );
    expect(out).toBe(
      '{\n  inputs = {\n    tools.url = "https://f/acme/tools/0.1";\n    nixpkgs.url = "x";\n  };\n  outputs = _: {};\n}\n',
    );
  });
  it('adds an inputs.<name>.url line when there is no block', () => {
    expect(addFlakeInput('{ outputs = _: {}; }', 'tools', 'u')).toBe('{\n  inputs.tools.url = "u"; outputs = _: {}; }');
  });
  it('refuses duplicates and bad names', () => {
    expect(() => addFlakeInput('{ inputs.tools.url = "a"; }', 'tools', 'u')).toThrow(/already has/);
    expect(() => addFlakeInput('{ }', 'bad name', 'u')).toThrow(/not a valid/);
  });
});

describe('chooseInputUrl', () => {
  const base = {
    ref: 'acme/tools/0.1',
    requirementUrl: 'https://f/f/acme/tools/0.1.tar.gz',
    pinnedUrl: 'https://f/f/pinned/acme/tools/0.1.1/0190-id/source.tar.gz',
    version: '0.1.1',
  };
  it('pins for a Nix that ignores Link, saying why and how to update', () => {
    const c = chooseInputUrl({ ...base, pin: undefined, nix: parseNixVersion('nix (Nix) 2.8.0') });
    expect(c.url).toBe(base.pinnedUrl);
    expect(c.notes.join('\n')).toMatch(/Nix 2\.8\.0 ignores the Link header/);
    expect(c.notes.join('\n')).toMatch(/NAR hash mismatch/);
    expect(c.notes.join('\n')).toMatch(/floe resolve acme\/tools\/0\.1/);
  });
  it('keeps the requirement URL for a Nix that locks the Link URL, silently', () => {
    for (const v of ['nix (Nix) 2.26.3', 'nix (Nix) 2.13.5', 'nix (Lix, like Nix) 2.91.1'])
      expect(chooseInputUrl({ ...base, pin: undefined, nix: parseNixVersion(v) })).toEqual({
        url: base.requirementUrl,
        notes: [],
      });
  });
  it('--pin and --no-pin override; an unknown Nix keeps the requirement URL with a warning', () => {
    expect(chooseInputUrl({ ...base, pin: true, nix: undefined }).url).toBe(base.pinnedUrl);
    const noPin = chooseInputUrl({ ...base, pin: false, nix: parseNixVersion('nix (Nix) 2.8.0') });
    expect(noPin.url).toBe(base.requirementUrl);
    expect(noPin.notes.join('\n')).toMatch(/--no-pin with Nix 2\.8\.0.*NAR hash mismatch/);
    const unknown = chooseInputUrl({ ...base, pin: undefined, nix: undefined });
    expect(unknown.url).toBe(base.requirementUrl);
    expect(unknown.notes.join('\n')).toMatch(/could not run `nix --version`.*floe add --pin/);
  });
});
