/**
 * Upgrades: `floe migrate --status` (and `floe serve --check`) lists what `floe serve` would run without running it (on the
 * data directory made by the previous release, test/fixtures/data-dir-2026-12-01), and a server
 * refuses, with a message saying what to do, a database a newer Floe has migrated.
 */
import Database from 'better-sqlite3';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, REPO_ROOT, startFloe } from '../helpers/server.js';

const exec = promisify(execFile);
const floe = (args: string[]) =>
  exec(process.execPath, [FLOE_BIN, ...args], {
    env: { ...process.env, FLOE_DATABASE_URL: '', FLOE_S3_BUCKET: '' },
  }).catch((e: { code: number; stdout: string; stderr: string }) => e);
const executed = (dataDir: string) => {
  const db = new Database(path.join(dataDir, 'floe.sqlite'), { readonly: true });
  try {
    return (db.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>).map(
      (r) => r.name,
    );
  } finally {
    db.close();
  }
};

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'floe-ops-upgrade-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('floe migrate --status', () => {
  it('lists the pending migrations of the previous release, runs none, and is up to date after a start', async () => {
    const dataDir = path.join(scratch, 'old');
    execFileSync('mkdir', ['-p', dataDir]);
    execFileSync('tar', ['-xzf', path.join(REPO_ROOT, 'test/fixtures/data-dir-2026-12-01.tar.gz'), '-C', dataDir]);
    const before = executed(dataDir);

    const status = await floe(['migrate', '--status', '--data-dir', dataDir]);
    expect(status.stderr).toMatch(/migration\(s\) would run at the next floe serve start/);
    const pending = status.stdout
      .split('\n')
      .filter((l) => l.startsWith('pending'))
      .map((l) => l.split(/\s+/)[1]);
    // Realisations came after that release; the foundation did not.
    expect(pending).toContain('2026-12-01-400-realisations');
    expect(status.stdout).toMatch(/^applied {2}2026-11-25-001-foundation$/m);
    expect(pending.length).toBeGreaterThan(0);
    expect(before).not.toEqual(expect.arrayContaining(pending));
    expect(executed(dataDir)).toEqual(before);
    // floe serve --check says the same, and does not start either.
    const check = await floe(['serve', '--check', '--data-dir', dataDir]);
    expect(check.stdout).toBe(status.stdout);
    expect(executed(dataDir)).toEqual(before);

    const server = await startFloe({ dataDir });
    await server.cleanup();
    expect(executed(dataDir)).toEqual(expect.arrayContaining(pending));
    const after = await floe(['migrate', '--status', '--data-dir', dataDir]);
    expect(after.stderr).toMatch(/up to date, nothing would run/);
    expect(after.stdout).not.toMatch(/^pending/m);
  });

  it('a data directory that does not exist yet: everything pending, nothing created', async () => {
    const dataDir = path.join(scratch, 'none');
    const status = await floe(['migrate', '--status', '--data-dir', dataDir]);
    expect(status.stdout).toMatch(/^pending {2}2026-11-25-001-foundation$/m);
    expect(status.stdout).not.toMatch(/^applied/m);
    expect(status.stderr).toMatch(/not created yet/);
    await expect(exec('test', ['-e', dataDir])).rejects.toThrow();
  });
});

describe('a schema newer than the code', () => {
  it('floe serve refuses to start, naming the unknown migration and what to do; --status says the same', async () => {
    const server = await startFloe({ dataDir: path.join(scratch, 'newer') });
    await server.stop();
    const db = new Database(path.join(server.dataDir, 'floe.sqlite'));
    db.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run(
      '2099-01-01-999-from-the-future',
      new Date().toISOString(),
    );
    db.close();

    const start = await server.restart().then(
      () => 'started',
      (e: Error) => e.message,
    );
    expect(start).toMatch(/exited with 1/);
    expect(start).toMatch(
      /cannot start: the database was upgraded by a newer Floe: it ran migration 2099-01-01-999-from-the-future/,
    );
    expect(start).toMatch(/Run the newer version/);
    // Nothing was migrated or changed on the way out.
    expect(executed(server.dataDir)).toContain('2099-01-01-999-from-the-future');

    const status = await floe(['migrate', '--status', '--data-dir', server.dataDir]);
    expect(status).toMatchObject({ code: 1 });
    expect(status.stdout).toMatch(/^unknown {2}2099-01-01-999-from-the-future {2}\(run by a newer Floe\)$/m);
    expect(status.stderr).toMatch(/this version cannot serve this database/);
    expect(await floe(['serve', '--check', '--data-dir', server.dataDir])).toMatchObject({ code: 1 });
    await server.cleanup();
  });
});

describe('upgrading releases', () => {
  it('releases published before resolution by index get their sort key and resolve as before', async () => {
    const dataDir = path.join(scratch, 'releases');
    execFileSync('mkdir', ['-p', dataDir]);
    execFileSync('tar', ['-xzf', path.join(REPO_ROOT, 'test/fixtures/data-dir-2026-12-01.tar.gz'), '-C', dataDir]);
    const db = new Database(path.join(dataDir, 'floe.sqlite'));
    try {
      const org = db.prepare("select id from orgs where name = 'acme'").get() as { id: string };
      const now = new Date().toISOString();
      db.prepare("insert into flakes values ('f-old', ?, 'old', null, 'public', null, '[]', ?, ?)").run(
        org.id,
        now,
        now,
      );
      const release = db.prepare(
        "insert into releases values (?, 'f-old', ?, ?, null, null, 'sha256-x', 0, 'tarball-x.tar.gz', 1, '{}', 'ci', ?, ?)",
      );
      for (const [v, yanked] of [
        ['1.0.0', null],
        ['1.2.0', null],
        ['1.3.0', now],
        ['2.0.0-rc.1', null],
        ['1.10.0-beta', null],
      ] as const) {
        release.run(`r-${v}`, v, v, yanked, now);
      }
    } finally {
      db.close();
    }
    const server = await startFloe({ dataDir });
    try {
      const location = async (req: string) =>
        (await fetch(`${server.url}/f/acme/old/${encodeURIComponent(req)}`, { redirect: 'manual' })).headers.get(
          'location',
        );
      expect(await location('1')).toMatch(/\/old\/1\.2\.0\/r-1\.2\.0\//);
      expect(await location('=1.3.0')).toBeNull();
      expect(await location('>=2.0.0-rc.0')).toMatch(/\/old\/2\.0\.0-rc\.1\//);
      expect(await location('~1.10.0-alpha')).toMatch(/\/old\/1\.10\.0-beta\//);
    } finally {
      await server.cleanup();
    }
    const after = new Database(path.join(dataDir, 'floe.sqlite'), { readonly: true });
    try {
      const keys = after
        .prepare("select version, version_sort from releases where flake_id = 'f-old' order by version_sort")
        .all() as Array<{ version: string; version_sort: string | null }>;
      expect(keys.every((k) => k.version_sort !== null)).toBe(true);
      expect(keys.map((k) => k.version)).toEqual(['1.0.0', '1.2.0', '1.3.0', '1.10.0-beta', '2.0.0-rc.1']);
    } finally {
      after.close();
    }
  });
});
