import { describe } from 'vitest';
import { modernNix, requireNix } from '../helpers/nix.js';
import { protocolScenarios } from './protocol.js';

const version = await requireNix(modernNix);
describe.skipIf(!version)(
  `binary-cache protocol with real Nix: ${version ?? 'current Nix (not installed, skipped)'}`,
  () => protocolScenarios(modernNix),
);
