import { describe } from 'vitest';
import { hostNix, requireNix } from '../helpers/nix.js';
import { sourceSubstitutionScenarios } from './sources.js';

const version = await requireNix(hostNix);
describe.skipIf(!version)(`release sources substituted by ${version ?? 'Nix 2.8 (not installed, skipped)'}`, () =>
  sourceSubstitutionScenarios(hostNix),
);
