import { describe } from 'vitest';
import { modernNix, requireNix } from '../helpers/nix.js';
import { integrityScenarios } from './integrity.js';

const version = await requireNix(modernNix);
describe.skipIf(!version)(
  `tenant integrity with real Nix: ${version ?? 'current Nix (nix-modern not available, skipped)'}`,
  () => integrityScenarios(modernNix),
);
