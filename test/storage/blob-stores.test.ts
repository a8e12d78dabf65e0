import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe } from 'vitest';
import { FsBlobStore } from '../../src/storage/blob/fs.js';
import { S3BlobStore } from '../../src/storage/blob/s3.js';
import { countFiles } from '../helpers/backends.js';
import { startS3, type TestS3 } from '../helpers/s3.js';
import { blobStoreContract } from './blob-store.case.js';

describe('FsBlobStore', () => {
  let dir: string;
  blobStoreContract({
    async open() {
      dir = await mkdtemp(path.join(os.tmpdir(), 'floe-blobs-'));
      return FsBlobStore.open(dir);
    },
    pending: () => countFiles(path.join(dir, 'tmp')),
    close: () => rm(dir, { recursive: true, force: true }),
  });
});

describe('S3BlobStore (s3rver)', () => {
  let dir: string;
  let s3: TestS3;
  let store: S3BlobStore;
  blobStoreContract({
    async open() {
      s3 = await startS3();
      dir = await mkdtemp(path.join(os.tmpdir(), 'floe-spool-'));
      const env = s3.env('contract/');
      process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
      process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
      store = await S3BlobStore.open({
        bucket: s3.bucket,
        prefix: 'contract/',
        endpoint: s3.endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        spoolDir: dir,
        presignSeconds: 0,
      });
      return store;
    },
    pending: () => countFiles(dir),
    async close() {
      store.close();
      await s3.stop();
      await rm(dir, { recursive: true, force: true });
    },
  });
});
