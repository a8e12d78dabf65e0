/** Several worker processes on PostgreSQL + S3 (their notices travel by LISTEN/NOTIFY). */
import { describe } from 'vitest';
import { postgresAvailable, startPostgres } from '../helpers/postgres.js';
import { startS3 } from '../helpers/s3.js';
import { describeWorkers } from './workers.case.js';

const enabled = postgresAvailable() || Boolean(process.env.CI);

describe.skipIf(!enabled)('PostgreSQL + S3', () => {
  describeWorkers('PostgreSQL + S3', async () => {
    const pg = await startPostgres();
    const s3 = await startS3();
    const env = { FLOE_DATABASE_URL: await pg.createDatabase('workers'), ...s3.env('workers/') };
    return {
      env,
      async stop() {
        await s3.stop();
        await pg.stop();
      },
    };
  });
});
