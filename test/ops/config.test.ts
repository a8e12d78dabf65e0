/**
 * The configuration file: every FLOE_* setting of src/config.ts has a key, values are checked at
 * start with errors naming the file's key, variables win over the file, `--print-config` shows the
 * effective settings without secrets, and a real `floe serve` runs from a file alone.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLOE_BIN, REPO_ROOT, freePort } from '../helpers/server.js';
import { SERVER_SETTINGS } from '../../src/config-file.js';

const exec = promisify(execFile);
type Run = { code?: number; stdout: string; stderr: string };
/** Runs floe with only the variables given (no FLOE_* from the test's own environment). */
const floe = (args: string[], env: Record<string, string> = {}): Promise<Run> =>
  exec(process.execPath, [FLOE_BIN, ...args], { env: { PATH: process.env.PATH!, HOME: os.tmpdir(), ...env } }).catch(
    (e: Run) => e,
  );

/** The X-Floe-Worker that answered a request on a connection of its own. */
const workerOf = (url: string) =>
  new Promise<string>((resolve, reject) =>
    get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(String(res.headers['x-floe-worker'])));
    }).on('error', reject),
  );

let dir: string;
const write = async (name: string, value: unknown) => {
  const file = path.join(dir, name);
  await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
};
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'floe-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('floe serve --config', () => {
  it('has a key for every FLOE_* setting the server reads, and no other', async () => {
    const source = await readFile(path.join(REPO_ROOT, 'src/config.ts'), 'utf8');
    const read = new Set([...source.matchAll(/env\.(FLOE_[A-Z0-9_]+)/g)].map((m) => m[1]!));
    expect([...SERVER_SETTINGS].sort()).toEqual([...read].sort());
  });

  it('prints the effective settings: file values, variables winning, secrets redacted', async () => {
    const file = await write('floe.json', {
      listen: '0.0.0.0:9999',
      public_url: 'https://cache.example.com',
      max_nar_size: '2G',
      trusted_proxies: ['10.0.0.0/8', 'loopback'],
      database_url: 'postgres://floe:hunter2secret@db.internal/floe?sslmode=require',
      gc_interval: '6h',
      metrics_public: true,
      data_dir: path.join(dir, 'data'),
      workers: 3,
      verify_threads: 2,
    });
    const r = await floe(['serve', '--config', file, '--print-config'], {
      FLOE_GC_INTERVAL: '1h',
      FLOE_VERIFY_THREADS: '0',
      FLOE_LOG_LEVEL: 'warn',
    });
    expect(r.code, r.stderr).toBeUndefined();
    const shown = JSON.parse(r.stdout);
    expect(shown).toMatchObject({
      listen: { host: '0.0.0.0', port: 9999 },
      publicUrl: 'https://cache.example.com',
      trustedProxies: ['10.0.0.0/8', 'loopback'],
      publicMetrics: true,
      dataDir: path.join(dir, 'data'),
      logLevel: 'warn',
      gc: { intervalSeconds: 3600 },
      limits: { maxNarBytes: 2 * 2 ** 30 },
      cacheKeyName: null,
      workers: 3,
      verifyThreads: 0,
    });
    expect(shown.databaseUrl).toBe('postgres://floe:***@db.internal/floe?sslmode=require');
    expect(r.stdout).not.toContain('hunter2secret');
    // The flag wins over both; FLOE_CONFIG names the file too.
    const viaEnv = await floe(['serve', '--listen', '127.0.0.1:7000', '--print-config'], { FLOE_CONFIG: file });
    expect(JSON.parse(viaEnv.stdout).listen).toEqual({ host: '127.0.0.1', port: 7000 });
    // An empty variable unsets what the file says.
    const unset = await floe(['serve', '--config', file, '--print-config'], { FLOE_DATABASE_URL: '' });
    expect(JSON.parse(unset.stdout).databaseUrl).toBeNull();
  });

  it('refuses bad files with errors naming the file and the key', async () => {
    const unknown = await floe([
      'serve',
      '--config',
      await write('typo.json', { lisen: '0.0.0.0:1' }),
      '--print-config',
    ]);
    expect(unknown).toMatchObject({ code: 1, stderr: expect.stringMatching(/typo\.json: unknown setting "lisen"/) });
    const badValue = await floe([
      'serve',
      '--config',
      await write('size.json', { max_nar_size: 'lots' }),
      '--print-config',
    ]);
    expect(badValue).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/size\.json: max_nar_size: expected a size like 512M/),
    });
    const badType = await floe([
      'serve',
      '--config',
      await write('type.json', { ingest_slots: { n: 1 } }),
      '--print-config',
    ]);
    expect(badType).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/type\.json: ingest_slots: expected a string, a number/),
    });
    const notJson = await floe(['serve', '--config', await write('broken.json', 'listen = "x"'), '--print-config']);
    expect(notJson).toMatchObject({ code: 1, stderr: expect.stringMatching(/broken\.json: not valid JSON/) });
    const missing = await floe(['serve', '--config', path.join(dir, 'nope.json'), '--print-config']);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot read .*nope\.json: ENOENT/) });
    // A bad variable over a good file is the variable's fault.
    const env = await floe(['serve', '--config', await write('ok.json', { max_nar_size: '1G' }), '--print-config'], {
      FLOE_MAX_NAR_SIZE: 'x',
    });
    expect(env).toMatchObject({ code: 1, stderr: expect.stringMatching(/FLOE_MAX_NAR_SIZE: expected a size/) });
  });

  it('serves from a file alone, with as many worker processes as it says', async () => {
    const port = await freePort();
    const file = await write('serve.json', {
      listen: `127.0.0.1:${port}`,
      data_dir: path.join(dir, 'served'),
      log_level: 'warn',
      workers: 3, // not this machine's core count (the default)
    });
    const child = spawn(process.execPath, [FLOE_BIN, 'serve', '--config', file], {
      env: { PATH: process.env.PATH!, HOME: os.tmpdir(), FLOE_TEST_WORKER_HEADER: '1' },
      stdio: 'ignore',
    });
    try {
      let ok = false;
      for (let i = 0; i < 200 && !ok && child.exitCode === null; i++) {
        ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (!ok) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ok).toBe(true);
      expect((await readFile(path.join(dir, 'served', 'admin-token'), 'utf8')).length).toBeGreaterThan(20);
      // One connection per request: whichever worker is free accepts it, so every worker gets some.
      const workers = new Set<string>();
      for (let i = 0; i < 300 && workers.size < 3; i++) {
        workers.add(await workerOf(`http://127.0.0.1:${port}/healthz`));
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(workers.size, [...workers].join(' ')).toBe(3);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
