import { describe } from 'vitest';
import { modernNix, requireNix } from '../helpers/nix.js';
import { nixScenarios } from './scenarios.js';

const version = await requireNix(modernNix);
describe.skipIf(!version)(`real Nix: ${version ?? 'current Nix (nix-modern not available, skipped)'}`, () =>
  nixScenarios(modernNix),
);
