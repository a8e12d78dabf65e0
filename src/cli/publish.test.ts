import { describe, expect, it } from 'vitest';
import { showToInventory } from './publish.js';

describe('showToInventory', () => {
  it('turns nix flake show --json into inventory nodes', () => {
    const shown = {
      packages: { 'x86_64-linux': { default: { type: 'derivation', name: 'hello', description: 'says hi' } } },
      nixosModules: { default: { type: 'nixos-module' } },
    };
    expect(showToInventory(shown)).toEqual({
      packages: {
        children: { 'x86_64-linux': { children: { default: { what: 'package', shortDescription: 'says hi' } } } },
      },
      nixosModules: { children: { default: { what: 'nixos-module' } } },
    });
  });
});
