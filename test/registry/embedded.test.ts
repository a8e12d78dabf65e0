import { describe } from 'vitest';
import { embedded } from '../helpers/backends.js';
import { hostNix, modernNix, requireNix } from '../helpers/nix.js';
import { registryScenarios } from './registry.case.js';

const nixVersions = [
  [hostNix, await requireNix(hostNix)],
  [modernNix, await requireNix(modernNix)],
] as const;
describe(`registry: ${embedded.name}`, () =>
  registryScenarios(
    embedded,
    nixVersions.map(([n, v]) => [n, v]),
  ));
