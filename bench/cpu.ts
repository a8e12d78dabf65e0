/**
 * CPU time the server spends per request on the read hot paths: narinfo hits, narinfo misses,
 * NAR downloads (CPU seconds per GiB served), and hits with 100 org policies. Wall-clock rates on
 * a shared machine move with whatever else runs there; the server's own CPU time per request
 * (utime + stime of every thread, from /proc/<pid>/stat, around a wrk run) moves much less. It
 * still drifts with the machine's load (caches, the other hyperthread), so every server under
 * test is measured in turn, round after round, and the median of the rounds is reported: nginx
 * (one worker, the same files from disk) as the baseline, then each Floe build.
 *
 * `BENCH_ONLY=cpu`. FLOE_BENCH_BIN=a/bin/floe.js,b/bin/floe.js compares builds (default: this
 * checkout); BENCH_CPU_CASES picks measurements (hit,hit1,miss,nar,policies); BENCH_CPU_ROUNDS;
 * FLOE_BENCH_NODE_FLAGS passes flags to the servers' node (`--cpu-prof --cpu-prof-dir=DIR`: the
 * profile of the measured server is written when it exits, after the measurements).
 */
import { wrkScript } from './wrk.js';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeNix32 } from '../src/nix/nix32.js';
import { serializeNar } from '../src/nix/nar.js';
import { parseNarInfo } from '../src/nix/narinfo.js';
import { FLOE_BIN, freePort } from '../test/helpers/server.js';
import { benchPolicies } from './policy.js';
import { startNodeFloor } from './node-floor.js';
import { serveForBench } from './serve.js';

const CLOCK_TICKS_PER_SECOND = 100;
const BINS = (process.env.FLOE_BENCH_BIN ?? FLOE_BIN).split(',');
const NODE_FLAGS = (process.env.FLOE_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const CASES = new Set((process.env.BENCH_CPU_CASES ?? 'hit,hit1,miss,nar,policies').split(','));
const ROUNDS = Number(process.env.BENCH_CPU_ROUNDS ?? 3);
const PATHS = 1000;

/** User and system CPU time of every thread of `pid`, in seconds (Linux). */
export function cpuTimes(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / CLOCK_TICKS_PER_SECOND, system: Number(fields[12]) / CLOCK_TICKS_PER_SECOND };
}

const WRK_SCRIPT = wrkScript(`done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d\\n", summary.requests, summary.bytes, summary.errors.status))
end`);

/** A server under test: where it listens, the process whose CPU is counted, what to ask it. */
interface Target {
  label: string;
  url: string;
  pid: number;
  auth: string;
  files: Record<'hits' | 'misses' | 'nar', string>;
  applyPolicies?: () => Promise<void>;
  stop(): Promise<void>;
}

/** The access log is on, as in production (to /dev/null here). */
const serve = async (bin: string, dataDir: string, nodeFlags: readonly string[]) =>
  serveForBench(dataDir, { FLOE_LOG_LEVEL: 'info', FLOE_PUBLIC_URL: 'http://floe-cpu.invalid' }, { bin, nodeFlags });

function stopper(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    });
}

type SeededFloe = Target & { narinfos: Map<string, string>; narBytes: Buffer };

/** A Floe build with an org, a read-write token, 1000 small paths and one large NAR. */
async function floeTarget(bin: string, dir: string, narMib: number): Promise<SeededFloe> {
  const dataDir = path.join(dir, 'data');
  // Seeded through a first server; a fresh one, which has done nothing else, is measured (and profiled).
  let { url, child } = await serve(bin, dataDir, []);
  const admin = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  const call = async (method: string, p: string, body: unknown) => {
    const res = await fetch(`${url}${p}`, {
      method,
      headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
    return res.json() as Promise<Record<string, string>>;
  };
  try {
    await call('POST', '/api/v1/orgs', { name: 'cpu' });
    const token = (await call('POST', '/api/v1/tokens', { org: 'cpu', scopes: ['read', 'write'] })).token!;
    const auth = `Basic ${Buffer.from(`:${token}`).toString('base64')}`;
    const upload = async (hash: string, name: string, nar: Buffer) => {
      const meta = {
        storePath: `/nix/store/${hash}-${name}`,
        narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
        narSize: nar.length,
        references: [],
      };
      const res = await fetch(`${url}/api/v1/cache/paths`, {
        method: 'PUT',
        headers: { Authorization: auth },
        body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), nar])),
      });
      if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
    };
    const hashes: string[] = [];
    for (let i = 0; i < PATHS; i += 50) {
      const batch = Array.from({ length: 50 }, (_, j) => ({
        hash: encodeNix32(randomBytes(20)),
        nar: serializeNar({ type: 'regular', contents: randomBytes(512) }),
        name: `p${i + j}`,
      }));
      await Promise.all(batch.map((b) => upload(b.hash, b.name, b.nar)));
      hashes.push(...batch.map((b) => b.hash));
    }
    const bigHash = encodeNix32(randomBytes(20));
    await upload(bigHash, 'big', serializeNar({ type: 'regular', contents: randomBytes(narMib << 20) }));
    const narinfos = new Map<string, string>();
    for (const h of [...hashes, bigHash]) {
      const res = await fetch(`${url}/cache/${h}.narinfo`, { headers: { Authorization: auth } });
      narinfos.set(h, await res.text());
    }
    // Fetched once here for the baselines' copies (one 64 MiB read per server, not one per baseline).
    const narUrl = `${url}/cache/${parseNarInfo(narinfos.get(bigHash)!).url}`;
    const narBytes = Buffer.from(await (await fetch(narUrl, { headers: { Authorization: auth } })).arrayBuffer());
    await stopper(child)();
    ({ url, child } = await serve(bin, dataDir, NODE_FLAGS));
    const files = writeFiles(dir, hashes, `/cache/${parseNarInfo(narinfos.get(bigHash)!).url}`);
    return {
      label: `floe ${path.basename(path.dirname(path.dirname(bin))) || bin}`,
      url,
      pid: child.pid!,
      auth,
      files,
      narinfos,
      narBytes,
      stop: stopper(child),
      applyPolicies: async () => {
        const put = () =>
          fetch(`${url}/api/v1/orgs/cpu/policies`, {
            method: 'PUT',
            headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ source: benchPolicies('cpu', 100) }),
          });
        // fetch may reuse the kept-alive connection of the readiness check, which the server closes
        // after its keep-alive timeout (65 s, about when the hit rounds end): "other side closed".
        const res = await put().catch(() => put());
        if (res.status !== 201) throw new Error(`applying 100 policies: ${res.status} ${await res.text()}`);
      },
    };
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

function writeFiles(dir: string, hashes: string[], narPath: string): Target['files'] {
  const write = (name: string, lines: string[]) => {
    const file = path.join(dir, `${name}.txt`);
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  };
  return {
    hits: write(
      'hits',
      hashes.map((h) => `/cache/${h}.narinfo`),
    ),
    misses: write(
      'misses',
      Array.from({ length: PATHS }, () => `/cache/${encodeNix32(randomBytes(20))}.narinfo`),
    ),
    nar: write('nar', [narPath]),
  };
}

/** nginx with one worker serving the same narinfo and NAR files from disk (sendfile), no auth. */
async function nginxTarget(dir: string, floe: SeededFloe): Promise<Target | undefined> {
  if (spawnSync('sh', ['-c', 'command -v nginx']).status !== 0) return undefined;
  const root = path.join(dir, 'static');
  mkdirSync(path.join(root, 'cache/nar'), { recursive: true });
  const hashes: string[] = [];
  for (const [h, text] of floe.narinfos) {
    writeFileSync(path.join(root, `cache/${h}.narinfo`), text);
    hashes.push(h);
  }
  const narPath = readFileSync(floe.files.nar, 'utf8').trim();
  writeFileSync(path.join(root, narPath), floe.narBytes);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  types { text/x-nix-narinfo narinfo; }
  server { listen 127.0.0.1:${port}; root ${root}; } }\n`,
  );
  const master = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  let worker: number | undefined;
  for (let i = 0; i < 200 && worker === undefined; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      if ((await fetch(`${url}${narPath}`, { method: 'HEAD' })).ok) {
        const children = readFileSync(`/proc/${master.pid}/task/${master.pid}/children`, 'utf8').trim();
        worker = Number(children.split(' ')[0]) || undefined;
      }
    } catch {
      /* starting */
    }
  }
  if (worker === undefined) {
    master.kill('SIGTERM');
    throw new Error('nginx did not start for the CPU benchmark');
  }
  // The same paths as Floe's, so misses are misses there too.
  const files = writeFiles(path.join(dir), hashes.slice(0, -1), narPath);
  files.misses = floe.files.misses;
  // SIGTERM lets the master stop its worker.
  return { label: 'nginx', url, pid: worker, auth: '', files, stop: stopper(master) };
}

/** Node's own floor (node-floor.ts) with the same narinfos and NAR as `floe`. */
async function nodeFloorTarget(dir: string, floe: SeededFloe): Promise<Target> {
  const narPath = readFileSync(floe.files.nar, 'utf8').trim();
  const narinfos = new Map([...floe.narinfos].map(([h, t]) => [`/cache/${h}.narinfo`, t]));
  const floor = await startNodeFloor(dir, narinfos, { path: narPath, bytes: floe.narBytes });
  return { label: 'bare node:http', url: floor.url, pid: floor.pid, auth: '', files: floe.files, stop: floor.stop };
}

interface Sample {
  requests: number;
  bytes: number;
  cpu: number;
  user: number;
}

function measure(t: Target, file: keyof Target['files'], connections: number, duration: string, dir: string): Sample {
  const script = path.join(dir, 'cpu.lua');
  writeFileSync(script, WRK_SCRIPT);
  const before = cpuTimes(t.pid);
  const out = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${duration}`, '-s', script, t.url], {
    env: { ...process.env, WRK_PATHS: t.files[file], WRK_AUTH: t.auth },
    encoding: 'utf8',
  });
  const after = cpuTimes(t.pid);
  const [requests, bytes, errors] = out
    .split('\n')
    .find((l) => l.startsWith('RESULT '))!
    .slice(7)
    .split(' ')
    .map(Number);
  if (file !== 'misses' && errors! > 0) throw new Error(`${t.label}: ${errors} error statuses in the CPU benchmark`);
  const user = after.user - before.user;
  return { requests: requests!, bytes: bytes!, cpu: user + after.system - before.system, user };
}

export interface CpuRow {
  measure: string;
  unit: string;
  /** One figure per server, in the order of `labels` (median of the rounds). */
  values: number[];
  /** The share of user-space time of each (the rest is the kernel: syscalls, TCP). */
  userShares: number[];
}

export async function cpuBench(
  work: string,
  duration: string,
  narMib = 64,
): Promise<{ labels: string[]; rows: CpuRow[] }> {
  const targets: Target[] = [];
  try {
    const floes: Array<SeededFloe> = [];
    for (const [i, bin] of BINS.entries()) {
      const dir = path.join(work, `cpu-${i}`);
      mkdirSync(dir, { recursive: true });
      const floe = await floeTarget(bin, dir, narMib);
      floes.push(floe);
      targets.push(floe);
    }
    const nginxDir = path.join(work, 'cpu-nginx');
    mkdirSync(nginxDir, { recursive: true });
    const nginx = await nginxTarget(nginxDir, floes[0]!);
    const floorDir = path.join(work, 'cpu-node');
    mkdirSync(floorDir, { recursive: true });
    targets.unshift(await nodeFloorTarget(floorDir, floes[0]!));
    if (nginx) targets.unshift(nginx);
    for (const t of targets) measure(t, 'hits', 8, '3s', work); // warm-up: JIT, memos (discarded)

    const rows: CpuRow[] = [];
    const rounds = (
      name: string,
      unit: string,
      of: Target[],
      file: keyof Target['files'],
      connections: number,
      value: (s: Sample) => number,
    ) => {
      const samples = of.map(() => [] as Sample[]);
      for (let r = 0; r < ROUNDS; r++)
        for (const [i, t] of of.entries()) samples[i]!.push(measure(t, file, connections, duration, work));
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const all = targets.map((t) => of.indexOf(t));
      rows.push({
        measure: name,
        unit,
        values: all.map((i) => (i < 0 ? Number.NaN : median(samples[i]!.map(value)))),
        userShares: all.map((i) =>
          i < 0 ? Number.NaN : samples[i]!.reduce((a, s) => a + s.user, 0) / samples[i]!.reduce((a, s) => a + s.cpu, 0),
        ),
      });
    };
    const perRequest = (s: Sample) => (s.cpu / s.requests) * 1e6;
    const perGiB = (s: Sample) => s.cpu / (s.bytes / 2 ** 30);
    if (CASES.has('hit')) rounds('narinfo hit, 32 connections', 'µs/request', targets, 'hits', 32, perRequest);
    if (CASES.has('hit1')) rounds('narinfo hit, 1 connection', 'µs/request', targets, 'hits', 1, perRequest);
    if (CASES.has('miss')) rounds('narinfo miss, 32 connections', 'µs/request', targets, 'misses', 32, perRequest);
    if (CASES.has('nar')) rounds(`NAR download ${narMib} MiB, 4 connections`, 'CPU s/GiB', targets, 'nar', 4, perGiB);
    if (CASES.has('policies')) {
      for (const t of floes) await t.applyPolicies!();
      for (const t of floes) measure(t, 'hits', 8, '2s', work);
      rounds('narinfo hit, 32 connections, 100 org policies', 'µs/request', floes, 'hits', 32, perRequest);
    }
    return { labels: targets.map((t) => t.label), rows };
  } finally {
    for (const t of targets) await t.stop();
  }
}
