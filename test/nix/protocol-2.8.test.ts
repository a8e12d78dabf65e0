import { describe } from 'vitest';
import { hostNix, requireNix } from '../helpers/nix.js';
import { protocolScenarios } from './protocol.js';

const version = await requireNix(hostNix);
describe.skipIf(!version)(`binary-cache protocol with real Nix: ${version ?? 'Nix 2.8 (not installed, skipped)'}`, () =>
  protocolScenarios(hostNix),
);
