import { describe } from 'vitest';
import { hostNix, requireNix } from '../helpers/nix.js';
import { nixScenarios } from './scenarios.js';

const version = await requireNix(hostNix);
describe.skipIf(!version)(`real Nix: ${version ?? 'Nix 2.8 (not installed, skipped)'}`, () => nixScenarios(hostNix));
