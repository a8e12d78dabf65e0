import { describe } from 'vitest';
import { postgresS3 } from '../helpers/backends.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { retentionScenarios } from './retention.case.js';

const backend = postgresS3();
describe.skipIf(!postgresAvailable() && !process.env.CI)(`independence, GC and quotas: ${backend.name}`, () =>
  retentionScenarios(backend),
);
