import { describe } from 'vitest';
import { hostNix, requireNix } from '../helpers/nix.js';
import { integrityScenarios } from './integrity.js';

const version = await requireNix(hostNix);
describe.skipIf(!version)(`tenant integrity with real Nix: ${version ?? 'Nix 2.8 (not installed, skipped)'}`, () =>
  integrityScenarios(hostNix),
);
