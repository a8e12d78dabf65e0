import { describe } from 'vitest';
import { postgresS3 } from '../helpers/backends.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { sourceScenarios } from './sources.case.js';

const backend = postgresS3();
describe.skipIf(!postgresAvailable() && !process.env.CI)(`release sources in the cache: ${backend.name}`, () =>
  sourceScenarios(backend),
);
