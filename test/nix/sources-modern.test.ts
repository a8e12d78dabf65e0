import { describe } from 'vitest';
import { modernNix, requireNix } from '../helpers/nix.js';
import { sourceSubstitutionScenarios } from './sources.js';

const version = await requireNix(modernNix);
describe.skipIf(!version)(
  `release sources substituted by ${version ?? 'current Nix (nix-modern not available, skipped)'}`,
  () => sourceSubstitutionScenarios(modernNix),
);
