import { describe } from 'vitest';
import { postgresS3 } from '../helpers/backends.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { debugInfoScenarios } from './debuginfo.case.js';

const backend = postgresS3();
describe.skipIf(!postgresAvailable() && !process.env.CI)(`debuginfo: ${backend.name}`, () =>
  debugInfoScenarios(backend),
);
