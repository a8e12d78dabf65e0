import { describe } from 'vitest';
import { postgresS3 } from '../helpers/backends.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { hostNix, requireNix } from '../helpers/nix.js';
import { registryScenarios } from './registry.case.js';

// Real-Nix locking runs once per backend with Nix 2.8 here; both Nix versions run on the embedded backend.
const backend = postgresS3();
const nixVersions = [[hostNix, await requireNix(hostNix)]] as const;
describe.skipIf(!postgresAvailable() && !process.env.CI)(`registry: ${backend.name}`, () =>
  registryScenarios(
    backend,
    nixVersions.map(([n, v]) => [n, v]),
  ),
);
