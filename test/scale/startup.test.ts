/** `floe serve` says which backends it uses, and refuses to start with a clear error when one is unusable. */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, freePort } from '../helpers/server.js';
import { postgresAvailable, startPostgres, type TestPostgres } from '../helpers/postgres.js';
import { startS3, type TestS3 } from '../helpers/s3.js';

const exec = promisify(execFile);

async function serve(env: Record<string, string>): Promise<{ code: number; stderr: string }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'floe-startup-'));
  try {
    await exec(
      process.execPath,
      [FLOE_BIN, 'serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${await freePort()}`],
      {
        env: { ...process.env, FLOE_LOG_LEVEL: 'error', FLOE_WORKERS: '1', ...env },
        timeout: 30_000,
      },
    );
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

describe.skipIf(!postgresAvailable() && !process.env.CI)('start-up checks', () => {
  let pg: TestPostgres;
  let s3: TestS3;
  beforeAll(async () => {
    pg = await startPostgres();
    s3 = await startS3();
  });
  afterAll(async () => {
    await s3?.stop();
    await pg?.stop();
  });

  it('refuses an unreachable PostgreSQL, naming it without its password', async () => {
    const r = await serve({ FLOE_DATABASE_URL: `postgres://floe:sekrit@127.0.0.1:${await freePort()}/nope` });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot connect to PostgreSQL at postgres:\/\/floe:\*\*\*@127\.0\.0\.1/);
    expect(r.stderr).not.toContain('sekrit');
  });

  it('refuses a missing bucket', async () => {
    const r = await serve({
      FLOE_DATABASE_URL: await pg.createDatabase('startup_bucket'),
      ...s3.env(''),
      FLOE_S3_BUCKET: 'no-such-bucket',
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot use S3 bucket "no-such-bucket"/);
  });

  it('refuses half an S3 configuration and a non-postgres database URL', async () => {
    const half = await serve({ FLOE_S3_ENDPOINT: s3.endpoint });
    expect(half.code).not.toBe(0);
    expect(half.stderr).toMatch(/FLOE_S3_BUCKET: must be set when FLOE_S3_ENDPOINT is set/);
    const mysql = await serve({ FLOE_DATABASE_URL: 'mysql://x' });
    expect(mysql.code).not.toBe(0);
    expect(mysql.stderr).toMatch(/FLOE_DATABASE_URL: expected a postgres/);
  });
});
