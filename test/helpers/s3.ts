/**
 * A local S3-compatible server (s3rver) on 127.0.0.1, in its own process like a real one (and so
 * that a caller blocking its event loop, as the benchmark does while wrk runs, cannot stall it),
 * talked to with the real AWS SDK.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type ChildProcess, spawn } from 'node:child_process';
import { REPO_ROOT, freePort } from './server.js';

export interface TestS3 {
  endpoint: string;
  bucket: string;
  /** Environment for `floe serve` to use this bucket. */
  env(prefix: string): Record<string, string>;
  countObjects(prefix: string): Promise<number>;
  /** Writes an object directly, behind Floe's back (orphans for GC tests). */
  putObject(key: string, body: Buffer): Promise<void>;
  /** Stops the server but keeps its objects and port (an outage). */
  pause(): Promise<void>;
  /** Starts a paused server again on the same port and directory. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3(bucket = 'floe-test'): Promise<TestS3> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'floe-s3-'));
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  });
  let child!: ChildProcess;
  const launch = async () => {
    child = spawn(
      process.execPath,
      [
        path.join(REPO_ROOT, 'node_modules/s3rver/bin/s3rver.js'),
        '-d',
        dir,
        '-a',
        '127.0.0.1',
        '-p',
        String(port),
        '--silent',
        '--configure-bucket',
        bucket,
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`s3rver exited with ${child.exitCode}: ${stderr}`);
      try {
        await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1 }));
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`s3rver did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const kill = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  };
  await launch();
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
        const res = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
        );
        count += res.KeyCount ?? 0;
        token = res.NextContinuationToken;
      } while (token);
      return count;
    },
    async putObject(key: string, body: Buffer) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    },
    pause: kill,
    resume: launch,
    async stop() {
      client.destroy();
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
