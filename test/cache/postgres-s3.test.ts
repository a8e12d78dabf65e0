import { describe } from 'vitest';
import { postgresS3 } from '../helpers/backends.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { cacheHttpScenarios } from './cache-http.case.js';

const backend = postgresS3();
describe.skipIf(!postgresAvailable() && !process.env.CI)(`cache over HTTP: ${backend.name}`, () =>
  cacheHttpScenarios(backend),
);
