/** A local S3-compatible server (s3rver) on 127.0.0.1, talked to with the real AWS SDK. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
// @ts-expect-error s3rver ships no types
import S3rver from 's3rver';
import { freePort } from './server.js';

export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** Environment for `floe serve` to use this bucket. */
  env(prefix: string): Record<string, string>;
  countObjects(prefix: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startS3(bucket = 'floe-test'): Promise<TestS3> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'floe-s3-'));
  const port = await freePort();
  const server = new S3rver({ port, address: '127.0.0.1', directory: dir, silent: true, configureBuckets: [{ name: bucket }] });
  await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  return {
    endpoint,
    bucket,
    env: (prefix: string) => ({
      FLOE_S3_BUCKET: bucket,
      FLOE_S3_ENDPOINT: endpoint,
      FLOE_S3_PREFIX: prefix,
      FLOE_S3_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    }),
    async countObjects(prefix: string) {
      let count = 0;
      let token: string | undefined;
      do {
        const res = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
        count += res.KeyCount ?? 0;
        token = res.NextContinuationToken;
      } while (token);
      return count;
    },
    async stop() {
      client.destroy();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
