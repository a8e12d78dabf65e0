/** Several worker processes on one embedded installation: SQLite + the blob directory. */
import { describeWorkers } from './workers.case.js';

describeWorkers('embedded SQLite + files', async () => ({ env: {}, stop: async () => undefined }));
