/** A throwaway PostgreSQL cluster on 127.0.0.1 (initdb + pg_ctl), one fresh database per caller. */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './server.js';

function findBin(name: string): string | undefined {
  const onPath = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (onPath) return onPath;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  for (const v of readdirSync(root).sort().reverse()) {
    const p = path.join(root, v, 'bin', name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export function postgresAvailable(): boolean {
  return findBin('initdb') !== undefined && findBin('pg_ctl') !== undefined;
}

export interface TestPostgres {
  /** A new, empty database; returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the cluster but keeps its data and port, as an outage or a restart does. */
  pause(): Promise<void>;
  /** Starts a paused cluster again on the same port. */
  resume(): Promise<void>;
  /** Ends every session on `database` from the server side (failover, pgbouncer restart); returns how many. */
  terminateSessions(database: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<TestPostgres> {
  const initdb = findBin('initdb');
  const pgCtl = findBin('pg_ctl');
  if (!initdb || !pgCtl)
    throw new Error('PostgreSQL is not installed (initdb/pg_ctl not found); apt-get install postgresql');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'floe-pg-'));
  chmodSync(dir, 0o777);
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  // initdb refuses to run as root: run the cluster as the postgres user then.
  const run = (cmd: string, args: string[]) => {
    if (asRoot) {
      const quoted = [cmd, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
      execFileSync('su', ['postgres', '-s', '/bin/sh', '-c', quoted], { stdio: 'pipe' });
    } else {
      execFileSync(cmd, args, { stdio: 'pipe' });
    }
  };
  run(initdb, ['-D', dataDir, '-A', 'trust', '-U', 'floe', '--no-sync']);
  const start = () =>
    run(pgCtl, [
      '-D',
      dataDir,
      '-l',
      path.join(dir, 'log'),
      '-w',
      '-o',
      `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`,
      'start',
    ]);
  start();
  const base = `postgres://floe@127.0.0.1:${port}`;
  return {
    async createDatabase(name: string) {
      const client = new pg.Client({ connectionString: `${base}/postgres` });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE "${name}"`);
      } finally {
        await client.end();
      }
      return `${base}/${name}`;
    },
    async pause() {
      run(pgCtl, ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
    },
    async resume() {
      start();
    },
    async terminateSessions(database: string) {
      const client = new pg.Client({ connectionString: `${base}/postgres` });
      await client.connect();
      try {
        const r = await client.query(
          'select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
          [database],
        );
        return r.rowCount ?? 0;
      } finally {
        await client.end();
      }
    },
    async stop() {
      try {
        run(pgCtl, ['-D', dataDir, '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
