import { describe, expect, it } from 'vitest';
import { addFlakeInput } from './flake-add.js';

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
