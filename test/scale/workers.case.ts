/**
 * `floe serve --workers 2`, run once per backend: every request below goes through its own
 * connection (whichever worker is free accepts it), and a check counts only once
 * it has been answered by every worker, told apart by the X-Floe-Worker header that
 * FLOE_TEST_WORKER_HEADER turns on.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, basicAuth, createToken, startFloe, type TestServer } from '../helpers/server.js';
import { fakePath, type FakePath } from '../helpers/paths.js';
import { parseNarInfo } from '../../src/nix/narinfo.js';

/**
 * A process as the kernel knows it: its pid with its start time (/proc/<pid>/stat, field 22), so
 * that a pid reused by another process once the first has gone (pid_max is 32768 here, and CI
 * spawns thousands of processes beside this test) is not taken for the first one still running.
 */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
const stillRunning = (p: { pid: number; start: string | undefined }) =>
  p.start !== undefined && processStart(p.pid) === p.start;

const WORKERS = 2;

interface Answer {
  status: number;
  worker: string;
  body: Buffer;
}

/** One request; `agent` false = a connection of its own, closed after the answer. */
function send(
  server: TestServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer,
  agent: Agent | false = false,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}${path}`,
      { method, headers: agent ? headers : { ...headers, Connection: 'close' }, agent },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            worker: String(res.headers['x-floe-worker'] ?? ''),
            body: Buffer.concat(parts),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Asks until every worker has answered; returns each worker's last answer. */
async function fromEveryWorker(ask: () => Promise<Answer>): Promise<Map<string, Answer>> {
  const seen = new Map<string, Answer>();
  for (let i = 0; i < 200 && seen.size < WORKERS; i++) {
    const a = await ask();
    expect(a.worker).toMatch(/^\d+$/);
    seen.set(a.worker, a);
  }
  expect(seen.size).toBe(WORKERS);
  return seen;
}

/** `promise`, or a failure naming the step that never finished (instead of the test's own timeout). */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function batchBody(p: FakePath, references: string[] = []): Buffer {
  const meta = { storePath: `/nix/store/${p.base}`, narHash: p.narHash, narSize: p.narSize, references };
  return Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), p.nar]);
}

export function describeWorkers(
  name: string,
  backend: () => Promise<{ env: Record<string, string>; stop(): Promise<void> }>,
  opts: { sigterm?: boolean } = {},
): void {
  describe(`floe serve --workers ${WORKERS} (${name})`, () => {
    let server: TestServer;
    let stopBackend: (() => Promise<void>) | undefined;
    let backendEnv: Record<string, string> = {};
    let rw: string;
    let read: string;

    const push = (p: FakePath, references: string[] = [], token = rw) =>
      send(server, 'PUT', '/api/v1/cache/paths', { Authorization: `Bearer ${token}` }, batchBody(p, references));
    const narinfo = (hash: string, token = read) =>
      send(server, 'GET', `/cache/${hash}.narinfo`, { Authorization: basicAuth(token) });
    const statuses = (answers: Map<string, Answer>) => [...answers.values()].map((a) => a.status);
    /** Waits until the replacement of a killed worker joins: WORKERS workers again, none of them the victim. */
    const replaced = async (victim: string) => {
      let workers = new Set<string>();
      for (let i = 0; i < 100 && workers.size < WORKERS; i++) {
        workers = new Set([...workers, (await send(server, 'GET', '/healthz')).worker].filter((w) => w !== victim));
        if (workers.size < WORKERS) await new Promise((r) => setTimeout(r, 100));
      }
      expect(workers.size).toBe(WORKERS);
    };

    beforeAll(async () => {
      const b = await backend();
      stopBackend = () => b.stop();
      backendEnv = b.env;
      server = await startFloe({ env: { ...b.env, FLOE_WORKERS: String(WORKERS), FLOE_TEST_WORKER_HEADER: '1' } });
      expect((await api(server, server.adminToken, 'POST', '/api/v1/orgs', { name: 'acme' })).status).toBe(201);
      rw = (await createToken(server, 'acme', ['read', 'write'])).token;
      read = (await createToken(server, 'acme', ['read'])).token;
    });

    afterAll(async () => {
      await server?.cleanup();
      await stopBackend?.();
    });

    it('serves through every worker, all of them signing with the same org key', async () => {
      const keys = await fromEveryWorker(() => send(server, 'GET', '/.well-known/nix-cache-key?org=acme'));
      expect(new Set([...keys.values()].map((a) => a.body.toString())).size).toBe(1);
    });

    it('a path pushed through one worker is served by every worker at once, though each had memoized the miss', async () => {
      const p = fakePath('at-once');
      expect(statuses(await fromEveryWorker(() => narinfo(p.hashPart)))).toEqual(Array(WORKERS).fill(404));
      expect((await push(p)).status).toBe(201);
      expect(statuses(await fromEveryWorker(() => narinfo(p.hashPart)))).toEqual(Array(WORKERS).fill(200));
    });

    it('a token revoked through one worker is refused by every worker at once', async () => {
      const t = await createToken(server, 'acme', ['read']);
      const info = () => send(server, 'GET', '/cache/nix-cache-info', { Authorization: basicAuth(t.token) });
      expect(statuses(await fromEveryWorker(info))).toEqual(Array(WORKERS).fill(200));
      expect((await api(server, server.adminToken, 'DELETE', `/api/v1/tokens/${t.id}`)).status).toBe(200);
      // No pause: the revocation reached every worker before the DELETE was answered.
      expect(statuses(await fromEveryWorker(info))).toEqual(Array(WORKERS).fill(400));
    });

    it('garbage collection racing pushes through every worker keeps every pushed path whole, in one audit chain', async () => {
      const base = fakePath('gc-base');
      expect((await push(base)).status).toBe(201);
      let pushing = true;
      const collections = (async () => {
        let runs = 0;
        while (pushing || runs < 2) {
          const r = await send(
            server,
            'POST',
            '/api/v1/gc',
            { Authorization: `Bearer ${server.adminToken}`, 'Content-Type': 'application/json' },
            Buffer.from(JSON.stringify({ grace: 0 })),
          );
          expect(r.status, r.body.toString()).toBe(200);
          runs++;
        }
        return runs;
      })();
      const paths = Array.from({ length: 24 }, (_, i) =>
        fakePath(`gc-race-${i}`, { type: 'regular', contents: Buffer.alloc(64 * 1024 + i, i) }),
      );
      try {
        const answers = await Promise.all(paths.map((p) => push(p, [`/nix/store/${base.base}`])));
        for (const a of answers) expect(a.status, a.body.toString()).toBe(201);
      } finally {
        pushing = false;
      }
      expect(await collections).toBeGreaterThanOrEqual(2);
      for (const p of [base, ...paths]) {
        for (const a of (await fromEveryWorker(() => narinfo(p.hashPart))).values()) {
          expect(a.status).toBe(200);
          const info = parseNarInfo(a.body.toString());
          const nar = await send(server, 'GET', `/cache/${info.url}`, { Authorization: basicAuth(read) });
          expect(nar.status).toBe(200);
          expect(createHash('sha256').update(nar.body).digest()).toEqual(Buffer.from(info.fileHash!.digest));
        }
      }
      const verify = await api<{ ok: boolean; entries: number }>(
        server,
        server.adminToken,
        'GET',
        '/api/v1/audit/verify',
      );
      expect(verify.body.ok).toBe(true);
      expect(verify.body.entries).toBeGreaterThan(paths.length);
    });

    it('a worker killed (SIGKILL) mid-upload is replaced while the other keeps serving, and leaves no path', async () => {
      const stored = fakePath('stored');
      expect((await push(stored)).status).toBe(201);
      // One connection: the first request tells which worker holds it, the upload follows on it.
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const victim = (await send(server, 'GET', '/healthz', {}, undefined, agent)).worker;
      const big = fakePath('killed', { type: 'regular', contents: Buffer.alloc(8 << 20, 9) });
      const body = batchBody(big);
      const cut = await new Promise<string>((resolve) => {
        const req = request(`${server.url}/api/v1/cache/paths`, {
          method: 'PUT',
          agent,
          headers: { Authorization: `Bearer ${rw}`, 'Content-Length': String(body.length) },
        });
        req.on('response', (res) => resolve(`answered ${res.statusCode}`));
        req.on('error', () => resolve('cut'));
        req.write(body.subarray(0, body.length / 2), () => {
          setTimeout(() => process.kill(Number(victim), 'SIGKILL'), 200);
        });
      });
      agent.destroy();
      expect(cut).toBe('cut');
      // The other worker answers every new connection meanwhile.
      for (let i = 0; i < 6; i++) {
        const a = await narinfo(stored.hashPart);
        expect(a.status).toBe(200);
        expect(a.worker).not.toBe(victim);
      }
      await replaced(victim);
      expect(statuses(await fromEveryWorker(() => narinfo(big.hashPart)))).toEqual(Array(WORKERS).fill(404));
      expect((await push(big)).status).toBe(201);
      expect(statuses(await fromEveryWorker(() => narinfo(big.hashPart)))).toEqual(Array(WORKERS).fill(200));
      expect(server.logs()).toContain('worker stopped: starting a replacement');
    });

    it('connections opened as a worker dies are all answered, by the workers left', async () => {
      const p = fakePath('burst');
      expect((await push(p)).status).toBe(201);
      const victim = [...(await fromEveryWorker(() => send(server, 'GET', '/healthz'))).keys()][0]!;
      process.kill(Number(victim), 'SIGKILL');
      // Opened at once, while the primary may not know yet: none may be lost, none may hang.
      const answers = await Promise.all(
        Array.from({ length: 40 }, () =>
          Promise.race([
            narinfo(p.hashPart),
            new Promise<never>((_, reject) =>
              setTimeout(() => reject(new Error('no answer in 15 s: the connection was lost')), 15_000).unref(),
            ),
          ]),
        ),
      );
      for (const a of answers) {
        expect(a.status).toBe(200);
        expect(a.worker).not.toBe(victim);
      }
      await replaced(victim);
    });

    it.skipIf(opts.sigterm === false)(
      'SIGTERM drains every worker: uploads in flight on each finish, then all of them exit',
      async () => {
        // One slow upload per worker, each on its own connection.
        const uploads: Array<{ worker: string; done: Promise<number>; rest: () => void }> = [];
        const agents: Agent[] = [];
        for (let i = 0; i < 50 && new Set(uploads.map((u) => u.worker)).size < WORKERS; i++) {
          const agent = new Agent({ keepAlive: true, maxSockets: 1 });
          const worker = (await send(server, 'GET', '/healthz', {}, undefined, agent)).worker;
          if (uploads.some((u) => u.worker === worker)) {
            agent.destroy();
            continue;
          }
          agents.push(agent);
          const p = fakePath(`drain-${i}`, { type: 'regular', contents: Buffer.alloc(1 << 20, i) });
          const body = batchBody(p);
          // Expect: 100-continue: the 100 proves the worker has parsed the request before SIGTERM
          // (a connection whose request was not read yet is closed by a drain, as in any server).
          const headers = {
            Authorization: `Bearer ${rw}`,
            'Content-Length': String(body.length),
            Expect: '100-continue',
          };
          const req = request(`${server.url}/api/v1/cache/paths`, { method: 'PUT', agent, headers });
          const continued = new Promise<void>((resolve) => req.once('continue', () => resolve()));
          const done = new Promise<number>((resolve, reject) => {
            req.on('response', (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            });
            req.on('error', reject);
          });
          // Observed even if another upload's assertion fails first (no unhandled rejection).
          done.catch(() => undefined);
          req.flushHeaders();
          await within(20_000, `upload ${i}: 100 Continue from worker ${worker}`, continued);
          req.write(body.subarray(0, body.length / 2));
          uploads.push({ worker, done, rest: () => req.end(body.subarray(body.length / 2)) });
        }
        expect(uploads.length).toBe(WORKERS);
        const workerProcesses = uploads.map((u) => ({ pid: Number(u.worker), start: processStart(Number(u.worker)) }));
        for (const w of workerProcesses) expect(w.start, `worker ${w.pid} running before SIGTERM`).toBeDefined();
        const exited = new Promise<number | null>((r) => server.process.once('exit', (code) => r(code)));
        server.process.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 300));
        for (const u of uploads) u.rest();
        for (const u of uploads) expect(await within(30_000, `upload on worker ${u.worker}`, u.done)).toBe(201);
        for (const a of agents) a.destroy();
        expect(await within(30_000, 'the server exiting after SIGTERM', exited)).toBe(0);
        for (const w of workerProcesses) expect(stillRunning(w), `worker ${w.pid} still running`).toBe(false);
      },
    );

    it('workers whose primary was killed (SIGKILL) stop instead of lingering', async () => {
      const other = await startFloe({
        env: { ...backendEnv, FLOE_WORKERS: String(WORKERS), FLOE_TEST_WORKER_HEADER: '1' },
      });
      try {
        const pids = [...(await fromEveryWorker(() => send(other, 'GET', '/healthz'))).keys()].map(Number);
        const workers = pids.map((pid) => ({ pid, start: processStart(pid) }));
        for (const w of workers) expect(w.start, `worker ${w.pid} running`).toBeDefined();
        await other.stop('SIGKILL');
        const alive = () => workers.filter(stillRunning).map((w) => w.pid);
        for (let i = 0; i < 100 && alive().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
        expect(alive()).toEqual([]);
      } finally {
        await other.cleanup();
      }
    });
  });
}
