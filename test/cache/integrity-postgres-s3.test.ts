import { describe } from 'vitest';
import { postgresS3 } from '../helpers/backends.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { integrityScenarios } from './integrity.case.js';

const backend = postgresS3();
describe.skipIf(!postgresAvailable() && !process.env.CI)(`tenant integrity: ${backend.name}`, () =>
  integrityScenarios(backend),
);
