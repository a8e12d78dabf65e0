/**
 * `nix copy --to` of one fresh random path (BENCH_NAR_MIB, default 64) into Floe, against the same
 * copy to Nix's own `file://` cache and to a server that costs nothing (copy-sink.ts: it reads
 * and discards every upload, so what is left is Nix's own side: the floor Floe can approach).
 * Every round builds a new path per compression (zstd, none) and copies it to every target in an
 * order rotated by one each round, so machine drift lands on all of them; medians are reported,
 * with each Floe build's server CPU seconds per copy and the sink's view of Nix's timeline.
 *
 * `BENCH_ONLY=copy` (from `npm run bench`, or `node dist/bench/copy.js`). FLOE_BENCH_BIN=a,b
 * compares builds; BENCH_COPY_ROUNDS (default 5); BENCH_COPY_COMPRESSIONS (default zstd,none);
 * FLOE_BENCH_NODE_FLAGS passes flags to the servers' node (e.g. `--cpu-prof --cpu-prof-dir=DIR`);
 * BENCH_NIX=modern copies with a current Nix (bench/nix.ts) instead of the host's 2.8.
 */
import { benchNix, nixBuild, nixVersion } from './nix.js';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FLOE_BIN } from '../test/helpers/server.js';
import { benchOrgToken, serveForBench } from './serve.js';

const NIX_CONFIG = 'experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =';
const BINS = (process.env.FLOE_BENCH_BIN ?? FLOE_BIN).split(',');
const NODE_FLAGS = (process.env.FLOE_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const ROUNDS = Number(process.env.BENCH_COPY_ROUNDS ?? 5);
const MIB = Number(process.env.BENCH_NAR_MIB ?? 64);
const COMPRESSIONS = (process.env.BENCH_COPY_COMPRESSIONS ?? 'zstd,none').split(',');
const NIX = benchNix();
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** User + system seconds of every thread of `pid`. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK;
}

interface SinkRequest {
  method: string;
  url: string;
  bytes: number;
  start: number;
  first: number;
  end: number;
}

/** copy-sink.js in its own process (the bench blocks on `nix copy`, so it cannot serve itself). */
async function startSink(): Promise<{ url: string; child: ChildProcess; take(): SinkRequest[] }> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'copy-sink.js');
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let log: SinkRequest[] = [];
  const lines = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve) => {
    lines.on('line', (line) => {
      if (line.startsWith('listening ')) resolve(Number(line.slice(10)));
      else log.push(JSON.parse(line) as SinkRequest);
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    take: () => {
      const l = log;
      log = [];
      return l;
    },
  };
}

interface Target {
  label: string;
  /** The `--to` URL for a copy with this compression (fresh for file://). */
  to(compression: string, round: number): string;
  netrc?: string;
  pid?: number;
}

export interface CopyResult {
  label: string;
  compression: string;
  seconds: number[];
  serverCpu: number[];
}

export async function copyBench(work: string): Promise<{ results: CopyResult[]; timeline: string[] }> {
  const env = { ...process.env, NIX_CONFIG, XDG_CACHE_HOME: path.join(work, 'xdg') };
  const tag = Date.now().toString(36);
  const built: string[] = [];
  const build = (name: string) => {
    const expr = path.join(work, `${name}.nix`);
    writeFileSync(
      expr,
      `derivation { name = "${name}"; builder = "/bin/sh"; args = ["-c" "head -c ${MIB * 1048576} /dev/urandom > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }`,
    );
    const out = nixBuild(expr, env, [], NIX.exec);
    built.push(out);
    return out;
  };

  const sink = await startSink();
  const servers: ChildProcess[] = [];
  const targets: Target[] = [
    { label: 'file://', to: (c, r) => `file://${path.join(work, `file-${c}-${r}`)}?compression=${c}` },
    { label: 'sink (floor)', to: (c) => `${sink.url}?compression=${c}` },
  ];
  try {
    for (const [i, bin] of BINS.entries()) {
      const dataDir = path.join(work, `floe-${i}`);
      const server = await serveForBench(dataDir, {}, { bin, nodeFlags: NODE_FLAGS });
      servers.push(server.child);
      const { token } = await benchOrgToken(server.url, dataDir, 'bench');
      const netrc = path.join(work, `netrc-${i}`);
      writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`, { mode: 0o600 });
      const label = BINS.length > 1 ? `floe ${path.basename(path.dirname(path.dirname(path.resolve(bin))))}` : 'floe';
      targets.push({ label, to: (c) => `${server.url}/cache?compression=${c}`, netrc, pid: server.pid });
    }
    const results = new Map<string, CopyResult>();
    const timelines: Record<string, Record<string, number[]>> = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const compression of COMPRESSIONS) {
        const out = build(`copy-bench-${tag}-${round}-${compression}`);
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const t of order) {
          rmSync(env.XDG_CACHE_HOME, { recursive: true, force: true });
          const args = [
            'copy',
            ...(t.netrc ? ['--option', 'netrc-file', t.netrc] : []),
            '--to',
            t.to(compression, round),
            out,
          ];
          sink.take();
          const cpu0 = t.pid ? cpuSeconds(t.pid) : 0;
          const t0 = Date.now();
          const h0 = process.hrtime.bigint();
          NIX.exec('nix', args, env);
          const secs = Number(process.hrtime.bigint() - h0) / 1e9;
          const key = `${t.label}\0${compression}`;
          const r = results.get(key) ?? { label: t.label, compression, seconds: [], serverCpu: [] };
          r.seconds.push(secs);
          if (t.pid) r.serverCpu.push(cpuSeconds(t.pid) - cpu0);
          results.set(key, r);
          if (t.label.startsWith('sink')) {
            // Let the sink's log lines arrive.
            await new Promise((res) => setTimeout(res, 50));
            const reqs = sink.take();
            const nar = reqs.find((q) => q.method === 'PUT' && q.url.includes('/nar/'));
            const head = reqs.find((q) => q.method === 'HEAD');
            const info = reqs.find((q) => q.method === 'PUT' && q.url.endsWith('.narinfo'));
            if (nar && head && info) {
              const tl = (timelines[compression] ??= {});
              const add = (k: string, v: number) => (tl[k] ??= []).push(v);
              add('nix start → HEAD nar', head.start - t0);
              add('HEAD → NAR PUT starts', nar.start - head.end);
              add('NAR PUT headers → first byte', nar.first - nar.start);
              add('NAR PUT body', nar.end - nar.first);
              add('NAR PUT end → narinfo PUT', info.start - nar.end);
              add('narinfo PUT end → nix exits', t0 + secs * 1000 - info.end);
            }
          }
        }
        NIX.exec('nix-store', ['--delete', out], env);
        built.pop();
      }
    }
    const timeline: string[] = [];
    for (const [c, tl] of Object.entries(timelines)) {
      timeline.push(
        `compression=${c}: ${Object.entries(tl)
          .map(([k, v]) => `${k} ${median(v).toFixed(0)} ms`)
          .join(', ')}`,
      );
    }
    return { results: [...results.values()], timeline };
  } finally {
    // SIGTERM and a wait, so a server run with --cpu-prof writes its profiles.
    await Promise.all(
      servers.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const kill = setTimeout(() => c.kill('SIGKILL'), 10_000);
            c.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    sink.child.kill('SIGKILL');
    for (const out of built) {
      try {
        NIX.exec('nix-store', ['--delete', out], env);
      } catch {
        /* still referenced, or gone */
      }
    }
  }
}

/** The table: one row per target and compression, ratios against file:// and the floor. */
export function copyTable({ results }: { results: CopyResult[] }): { header: string[]; rows: string[][] } {
  const header = ['target', 'compression', 'median s', 'min–max s', 'MiB/s', 'vs file://', 'vs floor', 'server CPU s'];
  const med = (label: string, c: string) =>
    median(results.find((r) => r.label === label && r.compression === c)!.seconds);
  const rows = results.map((r) => {
    const m = median(r.seconds);
    const file = med('file://', r.compression);
    const floor = med('sink (floor)', r.compression);
    return [
      r.label,
      r.compression,
      m.toFixed(3),
      `${Math.min(...r.seconds).toFixed(2)}–${Math.max(...r.seconds).toFixed(2)}`,
      (MIB / m).toFixed(0),
      `${(file / m).toFixed(2)}x`,
      `${(floor / m).toFixed(2)}x`,
      r.serverCpu.length ? median(r.serverCpu).toFixed(2) : '',
    ];
  });
  return { header, rows };
}

/** The Nix the copies run with (BENCH_NIX), for the title. */
export const copyNixVersion = () => nixVersion(NIX.exec);

export const copyTitle = (nix: string) =>
  `nix copy --to of one fresh ${MIB} MiB random path (${nix}), ${ROUNDS} rounds, targets in rotated order, medians:`;

/** Prints the table and the timeline. */
export function printCopy(r: Awaited<ReturnType<typeof copyBench>>): void {
  const { header, rows } = copyTable(r);
  console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
  console.log('\nNix timeline against the sink (medians):');
  for (const l of r.timeline) console.log(`  ${l}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-copy-'));
  try {
    const nix = nixVersion(NIX.exec);
    console.log(copyTitle(nix));
    console.log(`${new Date().toISOString()}, node ${process.version}, load average ${os.loadavg()[0]!.toFixed(2)}`);
    printCopy(await copyBench(work));
    console.log(`load average after: ${os.loadavg()[0]!.toFixed(2)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
