import { afterAll, beforeAll, describe } from 'vitest';
import { postgresS3 } from '../helpers/backends.js';
import { postgresAvailable } from '../helpers/postgres.js';
import { sliceDeleteGcScenarios } from './slice-delete-gc.case.js';

const backend = postgresS3();
describe.skipIf(!postgresAvailable() && !process.env.CI)(
  `slice delete --force in batches, then GC: ${backend.name}`,
  () => {
    beforeAll(() => backend.setup(), 120_000);
    afterAll(() => backend.teardown());
    sliceDeleteGcScenarios(backend);
  },
);
