/**
 * Storage backends the behaviour suites run against: the embedded default (SQLite + files) and
 * the scale-out setup (PostgreSQL + S3). Each `start()` gives a fresh server with empty storage.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { startFloe, type TestServer } from './server.js';
import { postgresAvailable, startPostgres, type TestPostgres } from './postgres.js';
import { startS3, type TestS3 } from './s3.js';

export interface Backend {
  name: string;
  /** What `floe serve` must report as its storage, so a suite cannot silently run on the wrong one. */
  storagePattern: RegExp;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A fresh server (own database and blob namespace). `env` adds to its environment. */
  start(env?: Record<string, string>): Promise<TestServer & { backendEnv: Record<string, string> }>;
  /** Committed NAR blobs. */
  countBlobs(server: TestServer): Promise<number>;
  /** Uploads spooled or half-written, not committed. */
  countTemp(server: TestServer): Promise<number>;
  /** Puts a blob into the store behind Floe's back (an orphan no table knows). */
  putBlob(server: TestServer, key: string, bytes: Buffer): Promise<void>;
}

export async function countFiles(dir: string): Promise<number> {
  let n = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) n += entry.isDirectory() ? await countFiles(path.join(dir, entry.name)) : 1;
  return n;
}

export const embedded: Backend = {
  name: 'embedded (SQLite + files)',
  storagePattern: /SQLite .*NARs in files in/,
  async setup() {},
  async teardown() {},
  async start(env = {}) {
    return Object.assign(await startFloe({ env }), { backendEnv: {} });
  },
  countBlobs: (s) => countFiles(path.join(s.dataDir, 'blobs')),
  countTemp: (s) => countFiles(path.join(s.dataDir, 'tmp')),
  async putBlob(s, key, bytes) {
    await mkdir(path.join(s.dataDir, 'blobs', key.slice(0, 2)), { recursive: true });
    await writeFile(path.join(s.dataDir, 'blobs', key.slice(0, 2), key), bytes);
  },
};

/** `s3Host` lets the bucket live on another host name than Floe (as in production). */
export function postgresS3(opts: { s3Host?: string } = {}): Backend {
  let pg: TestPostgres | undefined;
  let s3: TestS3 | undefined;
  const prefixes = new Map<TestServer, string>();
  return {
    name: 'scale-out (PostgreSQL + S3)',
    storagePattern: /PostgreSQL postgres:\/\/.*NARs in S3 bucket/,
    async setup() {
      if (!postgresAvailable() && process.env.CI)
        throw new Error('PostgreSQL is required under CI=true (.ci/run installs it)');
      pg = await startPostgres();
      s3 = await startS3();
    },
    async teardown() {
      await s3?.stop();
      await pg?.stop();
    },
    async start(env = {}) {
      const id = `t${randomBytes(6).toString('hex')}`;
      const backendEnv: Record<string, string> = {
        FLOE_DATABASE_URL: await pg!.createDatabase(id),
        ...s3!.env(`${id}/`),
      };
      if (opts.s3Host) backendEnv.FLOE_S3_ENDPOINT = backendEnv.FLOE_S3_ENDPOINT!.replace('127.0.0.1', opts.s3Host);
      const server = await startFloe({ env: { ...backendEnv, ...env } });
      prefixes.set(server, `${id}/`);
      return Object.assign(server, { backendEnv });
    },
    countBlobs: (s) => s3!.countObjects(prefixes.get(s)!),
    countTemp: (s) => countFiles(path.join(s.dataDir, 's3-spool')),
    putBlob: (s, key, bytes) => s3!.putObject(`${prefixes.get(s)!}${key}`, bytes),
  };
}
