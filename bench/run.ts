/**
 * `npm run bench`: Floe against a static-file baseline (nginx serving the same narinfo and NAR
 * files from disk) on this machine, in one run, reported as ratios. Also measures `nix copy`
 * upload throughput against Nix's own `file://` binary cache as the baseline.
 *
 * Load comes from wrk in a separate process. Numbers are for this machine only; the ratios are
 * what to compare across runs.
 */
import { nixBuild } from './nix.js';
import { wrkScript } from './wrk.js';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeNix32 } from '../src/nix/nix32.js';
import { serializeNar } from '../src/nix/nar.js';
import { parseNarInfo } from '../src/nix/narinfo.js';
import { FLOE_BIN, freePort } from '../test/helpers/server.js';
import { postgresAvailable, startPostgres } from '../test/helpers/postgres.js';
import { startS3 } from '../test/helpers/s3.js';
import { registryBench } from './registry.js';
import { PUSH_COLUMNS, pushBench } from './push.js';
import { policyBench } from './policy.js';
import { uploadsBench } from './uploads.js';
import { cpuBench } from './cpu.js';
import { S3_READS_COLUMNS, s3ReadsBench } from './s3-reads.js';
import { copyBench, copyNixVersion, copyTitle, printCopy } from './copy.js';
import { startNodeFloor } from './node-floor.js';

const DURATION = process.env.BENCH_DURATION ?? '8s';
const PATHS = Number(process.env.BENCH_PATHS ?? 2000);
const BIG_NAR_MIB = Number(process.env.BENCH_NAR_MIB ?? 64);
/** One process, then one per core (both Floe and nginx). */
const PROCESSES = [...new Set([1, os.availableParallelism()])];
/** The machine-readable result, written beside the printed table. */
const JSON_OUT = process.env.BENCH_JSON ?? path.join(path.dirname(FLOE_BIN), '..', 'docs', 'benchmarks-latest.json');

function ensureTools(): void {
  const missing = ['nginx', 'wrk'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(`benchmark needs ${missing.join(' and ')}: apt-get install nginx-light wrk`);
  console.log(`installing ${missing.join(', ')} from Debian...`);
  execFileSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null'],
    { stdio: 'inherit' },
  );
}

async function waitFor(url: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(url)).status < 500) return;
    } catch {
      /* not up */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up`);
}

interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  bytesPerSec: number;
  non2xx: number;
}

const WRK_SCRIPT = wrkScript(`done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %f %d\\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.bytes / (summary.duration / 1e6), summary.errors.status))
end`);

function wrk(baseUrl: string, pathsFile: string, auth: string, connections: number, workDir: string): WrkResult {
  const script = path.join(workDir, 'bench.lua');
  writeFileSync(script, WRK_SCRIPT);
  const out = execFileSync('wrk', ['-t1', `-c${connections}`, `-d${DURATION}`, '--latency', '-s', script, baseUrl], {
    env: { ...process.env, WRK_PATHS: pathsFile, WRK_AUTH: auth },
    encoding: 'utf8',
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`unexpected wrk output:\n${out}`);
  const [rps, p50, p99, bps, errs] = line.slice(7).split(' ').map(Number);
  return { rps: rps!, p50ms: p50!, p99ms: p99!, bytesPerSec: bps!, non2xx: errs! };
}

/** One line of the JSON result: a Floe measurement and, where there is one, its baseline. */
interface BenchResult {
  measure: string;
  unit: string;
  processes: number;
  floe: string;
  baseline?: number;
  value?: number;
  ratio?: number;
  [more: string]: unknown;
}

interface FloeInstance {
  label: string;
  /** Worker processes; compared with nginx running as many. */
  procs?: number;
  url: string;
  auth: string;
  token: string;
}

/** Starts `floe serve` with the given storage environment and an org + read/write token. */
async function startFloeInstance(
  label: string,
  dataDir: string,
  env: Record<string, string>,
  children: ChildProcess[],
): Promise<FloeInstance> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const floe = spawn(process.execPath, [FLOE_BIN, 'serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, FLOE_LOG_LEVEL: 'warn', ...env },
  });
  children.push(floe);
  // Every worker serves once the banner is out (the first one answers /healthz before the rest).
  let banner = '';
  const serving = new Promise<void>((resolve, reject) => {
    floe.stderr!.on('data', (d: Buffer) => {
      process.stderr.write(d);
      banner += d.toString();
      if (banner.includes('floe: serving at')) resolve();
    });
    floe.once('exit', (code) => reject(new Error(`${label} exited with ${code}`)));
  });
  await serving;
  await waitFor(`${url}/healthz`);
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
  await call('POST', '/api/v1/orgs', { name: 'bench' });
  const token = (await call('POST', '/api/v1/tokens', { org: 'bench', scopes: ['read', 'write'] })).token!;
  return { label, url, token, auth: `Basic ${Buffer.from(`:${token}`).toString('base64')}` };
}

async function uploadPath(floe: FloeInstance, hashPart: string, name: string, nar: Buffer): Promise<void> {
  const meta = {
    storePath: `/nix/store/${hashPart}-${name}`,
    narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`,
    narSize: nar.length,
    references: [],
  };
  const res = await fetch(`${floe.url}/api/v1/cache/paths`, {
    method: 'PUT',
    headers: { Authorization: floe.auth },
    body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), nar])),
  });
  if (res.status !== 201) throw new Error(`upload to ${floe.label} failed: ${res.status} ${await res.text()}`);
}

/** `BENCH_ONLY=registry`: only the registry figures (no nginx, uploads or Nix), for quick reruns. */
async function registryOnly(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-'));
  try {
    const load = os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    console.log(
      `Registry at 10,000 flakes (50,000 releases) + one with 5,000, embedded backend, wrk 8 connections, ${DURATION} per run`,
    );
    console.log(
      `${new Date().toISOString()}, ${os.cpus().length} CPUs, node ${process.version}, load average before: ${load}`,
    );
    const reg = await registryBench(work, DURATION);
    console.log('| measure | req/s | p50 (ms) | p99 (ms) |\n|---|---|---|---|');
    for (const r of reg) console.log(`| ${r.join(' | ')} |`);
    console.log(
      `load average after: ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `BENCH_ONLY=cpu`: the server's CPU time per request on the read paths (steadier than req/s on a busy machine). */
async function cpuOnly(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-'));
  chmodSync(work, 0o755); // nginx's worker reads the files as another user
  try {
    const load = os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
    console.log(`Server CPU per request (one process, embedded backend, wrk ${DURATION} per run, median of rounds)`);
    console.log(`${new Date().toISOString()}, node ${process.version}, load average before: ${load}`);
    const { labels, rows } = await cpuBench(work, DURATION, BIG_NAR_MIB);
    const base = labels[0] === 'nginx' ? 0 : undefined;
    const header = [
      'measure',
      'unit',
      ...labels.flatMap((l, i) => (i === base ? [l] : [l, 'user', ...(base === 0 ? ['ratio'] : [])])),
    ];
    console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
    for (const r of rows) {
      const cells = r.values.flatMap((v, i) => {
        const shown = Number.isNaN(v) ? '' : v.toFixed(1);
        if (i === base) return [shown];
        const user = Number.isNaN(v) ? '' : `${(r.userShares[i]! * 100).toFixed(0)}%`;
        const ratio =
          base === 0 && !Number.isNaN(v) && !Number.isNaN(r.values[0]!) ? `${(v / r.values[0]!).toFixed(1)}x` : '';
        return [shown, user, ...(base === 0 ? [ratio] : [])];
      });
      console.log(`| ${[r.measure, r.unit, ...cells].join(' | ')} |`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Prints one table: a header row and its rows, columns padded. */
function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => '| ' + header.map((_, i) => (r[i] ?? '').padEnd(widths[i]!)).join(' | ') + ' |';
  console.log(fmt(header));
  console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
  for (const r of rows) console.log(fmt(r));
}

const S3_READS_TITLE =
  '\nNAR downloads from S3 through Floe (SQLite + s3rver behind a per-connection rate limit, curl, median of rounds):';

/** `BENCH_ONLY=s3`: NAR downloads from S3, one stream against ranged GETs in flight. */
async function s3Only(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-'));
  try {
    console.log(S3_READS_TITLE);
    printTable(['measure', ...S3_READS_COLUMNS], await s3ReadsBench(work));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `BENCH_ONLY=policy`: the policy engine's cost on the narinfo hot path. */
async function policyOnly(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-'));
  try {
    console.log(POLICY_TITLE);
    printTable(POLICY_HEADER, policyCells(await policyBench(work, DURATION)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `BENCH_ONLY=copy`: `nix copy --to` of a large path, against file:// and a server that costs nothing (bench/copy.ts). */
async function copyOnly(): Promise<void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-'));
  try {
    console.log(copyTitle(copyNixVersion()));
    printCopy(await copyBench(work));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const POLICY_TITLE =
  '\nPolicy engine cost on the narinfo hot path (same server, same paths, same token, alternating runs, medians), embedded backend:';
const POLICY_HEADER = ['measure', 'no org policies', '100 org policies', 'ratio'];
const policyCells = (pol: Awaited<ReturnType<typeof policyBench>>) =>
  pol.map((r) => [r.label, r.without.toFixed(3), r.with.toFixed(3), `${(r.with / r.without).toFixed(2)}x`]);

async function main(): Promise<void> {
  // Needs only Nix, not nginx or wrk.
  if (process.env.BENCH_ONLY === 'copy') return copyOnly();
  ensureTools();
  if (process.env.BENCH_ONLY === 'registry') return registryOnly();
  if (process.env.BENCH_ONLY === 'cpu') return cpuOnly();
  if (process.env.BENCH_ONLY === 's3') return s3Only();
  if (process.env.BENCH_ONLY === 'policy') return policyOnly();
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-'));
  chmodSync(work, 0o755);
  const children: ChildProcess[] = [];
  const nginxProcesses: ChildProcess[] = [];
  const stops: Array<() => Promise<void>> = [];
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    // SIGTERM lets the nginx master stop its workers; SIGKILL would orphan them.
    for (const n of nginxProcesses) n.kill('SIGTERM');
  };
  process.on('exit', cleanup);
  try {
    // --- Floe with one process and with one per core, each beside nginx with as many workers
    const instances: FloeInstance[] = [];
    for (const procs of PROCESSES) {
      instances.push({
        ...(await startFloeInstance(
          `floe ${procs}p (SQLite+files)`,
          path.join(work, `floe-embedded-${procs}`),
          { FLOE_WORKERS: String(procs) },
          children,
        )),
        procs,
      });
    }
    if (postgresAvailable() && process.env.BENCH_SCALE_OUT === '1') {
      const pg = await startPostgres();
      stops.push(() => pg.stop());
      const s3 = await startS3();
      stops.push(() => s3.stop());
      const procs = PROCESSES.at(-1)!;
      const env = {
        FLOE_WORKERS: String(procs),
        FLOE_DATABASE_URL: await pg.createDatabase('bench'),
        ...s3.env('bench/'),
      };
      instances.push({
        ...(await startFloeInstance(`floe ${procs}p (PostgreSQL+S3)`, path.join(work, 'floe-scale'), env, children)),
        procs,
      });
    } else {
      console.log('embedded backend only (BENCH_SCALE_OUT=1 adds PostgreSQL+S3 when installed)');
    }
    const floe = instances[0]!;

    console.log(`uploading ${PATHS} paths and one ${BIG_NAR_MIB} MiB NAR to ${instances.length} Floe instance(s)...`);
    const hashes: string[] = [];
    for (let i = 0; i < PATHS; i += 50) {
      const batch = Array.from({ length: Math.min(50, PATHS - i) }, (_, j) => ({
        hash: encodeNix32(randomBytes(20)),
        name: `p${i + j}`,
        nar: serializeNar({ type: 'regular', contents: randomBytes(512) }),
      }));
      await Promise.all(instances.flatMap((inst) => batch.map((b) => uploadPath(inst, b.hash, b.name, b.nar))));
      hashes.push(...batch.map((b) => b.hash));
    }
    const bigHash = encodeNix32(randomBytes(20));
    const bigNar = serializeNar({ type: 'regular', contents: randomBytes(BIG_NAR_MIB << 20) });
    for (const inst of instances) await uploadPath(inst, bigHash, 'big', bigNar);

    // --- The same files, as a static binary cache for nginx
    const staticRoot = path.join(work, 'static');
    mkdirSync(path.join(staticRoot, 'cache/nar'), { recursive: true });
    const floorNarinfos = new Map<string, string>();
    let floorNar: { path: string; bytes: Buffer } | undefined;
    for (const h of [...hashes, bigHash]) {
      const text = await (
        await fetch(`${floe.url}/cache/${h}.narinfo`, { headers: { Authorization: floe.auth } })
      ).text();
      writeFileSync(path.join(staticRoot, `cache/${h}.narinfo`), text);
      floorNarinfos.set(`/cache/${h}.narinfo`, text);
      if (h === bigHash) {
        const url = parseNarInfo(text).url;
        const nar = Buffer.from(
          await (await fetch(`${floe.url}/cache/${url}`, { headers: { Authorization: floe.auth } })).arrayBuffer(),
        );
        writeFileSync(path.join(staticRoot, 'cache', url), nar);
        writeFileSync(path.join(work, 'big-nar-path'), `/cache/${url}\n`);
        floorNar = { path: `/cache/${url}`, bytes: nar };
      }
    }
    // Node's own floor beside them (one process): what no node:http server can go below.
    const floor = await startNodeFloor(work, floorNarinfos, floorNar!);
    stops.push(() => floor.stop());
    execFileSync('chmod', ['-R', 'a+rX', work]);
    const nginxUrls = new Map<number, string>();
    for (const procs of PROCESSES) {
      const nginxPort = await freePort();
      const dir = path.join(work, `nginx-${procs}`);
      mkdirSync(dir);
      const nginxConf = path.join(dir, 'nginx.conf');
      writeFileSync(
        nginxConf,
        `daemon off; worker_processes ${procs}; pid ${dir}/nginx.pid; error_log ${dir}/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  types { text/x-nix-narinfo narinfo; }
  server { listen 127.0.0.1:${nginxPort}; root ${staticRoot}; } }\n`,
      );
      nginxProcesses.push(spawn('nginx', ['-c', nginxConf, '-p', dir], { stdio: 'ignore' }));
      const nginxUrl = `http://127.0.0.1:${nginxPort}`;
      await waitFor(`${nginxUrl}/cache/${hashes[0]}.narinfo`);
      nginxUrls.set(procs, nginxUrl);
    }

    const hitFile = path.join(work, 'hits.txt');
    writeFileSync(hitFile, hashes.map((h) => `/cache/${h}.narinfo`).join('\n') + '\n');
    const missFile = path.join(work, 'misses.txt');
    writeFileSync(
      missFile,
      Array.from({ length: 2000 }, () => `/cache/${encodeNix32(randomBytes(20))}.narinfo`).join('\n') + '\n',
    );
    const narFile = path.join(work, 'big-nar-path');

    const rows: string[][] = [];
    const results: BenchResult[] = [];
    const measure = (label: string, file: string, conns: number, kind: 'latency' | 'rps' | 'bytes') => {
      // Each Floe instance against nginx with as many worker processes, measured back to back.
      const pairs = instances.map((inst) => {
        const procs = inst.procs ?? 1;
        const n = wrk(nginxUrls.get(procs)!, file, '', conns, work);
        const f = wrk(inst.url, file, inst.auth, conns, work);
        // wrk counts every status >= 400; misses are 404 by design, hits must have none.
        if (file !== missFile && f.non2xx > 0)
          throw new Error(`${label}: ${inst.label} answered ${f.non2xx} error statuses`);
        return { inst, n, f };
      });
      const bare = wrk(floor.url, file, '', conns, work);
      const row = (measureName: string, unit: string, pick: (r: WrkResult) => number, digits: number, scale = 1) => {
        const nginx1 = pairs[0]!.n;
        rows.push([
          measureName,
          ...pairs.flatMap(({ n, f }) => [
            (pick(n) / scale).toFixed(digits),
            (pick(f) / scale).toFixed(digits),
            (pick(f) / pick(n)).toFixed(2) + 'x',
          ]),
          (pick(bare) / scale).toFixed(digits),
          (pick(bare) / pick(nginx1)).toFixed(2) + 'x',
        ]);
        results.push({
          measure: measureName,
          unit,
          processes: 1,
          floe: 'bare node:http (floor)',
          baseline: pick(nginx1) / scale,
          value: pick(bare) / scale,
          ratio: pick(bare) / pick(nginx1),
        });
        for (const { inst, n, f } of pairs)
          results.push({
            measure: measureName,
            unit,
            processes: inst.procs ?? 1,
            floe: inst.label,
            baseline: pick(n) / scale,
            value: pick(f) / scale,
            ratio: pick(f) / pick(n),
          });
      };
      if (kind === 'latency') {
        row(`${label} p50 (ms)`, 'ms', (r) => r.p50ms, 3);
        row(`${label} p99 (ms)`, 'ms', (r) => r.p99ms, 3);
      } else if (kind === 'rps') {
        row(`${label} (req/s)`, 'req/s', (r) => r.rps, 0);
      } else {
        row(`${label} (MiB/s)`, 'MiB/s', (r) => r.bytesPerSec, 0, 2 ** 20);
      }
    };
    console.log(`measuring (wrk, ${DURATION} per run)...`);
    measure('narinfo hit latency, 1 connection,', hitFile, 1, 'latency');
    measure('narinfo miss latency, 1 connection,', missFile, 1, 'latency');
    measure('narinfo hits, 32 connections', hitFile, 32, 'rps');
    measure('narinfo hit latency, 32 connections,', hitFile, 32, 'latency');
    measure('narinfo misses, 32 connections', missFile, 32, 'rps');
    measure(`NAR download ${BIG_NAR_MIB} MiB, 4 connections`, narFile, 4, 'bytes');

    // --- nix copy upload throughput, against Nix's own file:// cache as the baseline
    if (spawnSync('sh', ['-c', 'command -v nix']).status === 0) {
      const nixEnv = {
        ...process.env,
        NIX_CONFIG: 'experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =',
        XDG_CACHE_HOME: path.join(work, 'xdg'),
      };
      // One fresh path per measurement: nix copy skips paths the destination already has.
      const build = (tag: string) => {
        const expr = path.join(work, `upload-${tag}.nix`);
        writeFileSync(
          expr,
          `derivation { name = "upload-bench-${tag}-${Date.now()}"; builder = "/bin/sh"; args = ["-c" "head -c ${BIG_NAR_MIB * 1048576} /dev/urandom > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }`,
        );
        return nixBuild(expr, nixEnv);
      };
      const time = (args: string[]) => {
        const t = process.hrtime.bigint();
        execFileSync('nix', args, { env: nixEnv, stdio: 'ignore' });
        return Number(process.hrtime.bigint() - t) / 1e9;
      };
      for (const compression of ['zstd', 'none']) {
        const out = build(compression);
        const base = time([
          'copy',
          '--to',
          `file://${path.join(work, `file-cache-${compression}`)}?compression=${compression}`,
          out,
        ]);
        const cells: string[] = [];
        const measureName = `nix copy --to, ${BIG_NAR_MIB} MiB, compression=${compression} (MiB/s)`;
        for (const inst of instances) {
          const netrc = path.join(work, `netrc-${cells.length}`);
          writeFileSync(netrc, `machine 127.0.0.1 password ${inst.token}\n`, { mode: 0o600 });
          // Nix skips a path the destination holds: each instance gets the same path once.
          const secs = time([
            'copy',
            '--option',
            'netrc-file',
            netrc,
            '--to',
            `${inst.url}/cache?compression=${compression}`,
            out,
          ]);
          rm(path.join(work, 'xdg'));
          cells.push(
            `${(BIG_NAR_MIB / base).toFixed(0)} (file://)`,
            (BIG_NAR_MIB / secs).toFixed(0),
            (base / secs).toFixed(2) + 'x',
          );
          results.push({
            measure: measureName,
            unit: 'MiB/s',
            processes: inst.procs ?? 1,
            floe: inst.label,
            baseline: BIG_NAR_MIB / base,
            value: BIG_NAR_MIB / secs,
            ratio: base / secs,
          });
        }
        rows.push([measureName, ...cells]);
      }
    } else {
      rows.push(['nix copy upload: skipped (nix not installed)', ...instances.flatMap(() => ['', '', ''])]);
    }

    const header = [
      'measure',
      ...instances.flatMap((i) => [`nginx ${i.procs ?? 1}p`, i.label, 'ratio']),
      'bare node:http 1p',
      'vs nginx 1p',
    ];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const fmt = (r: string[]) => '| ' + header.map((_, i) => (r[i] ?? '').padEnd(widths[i]!)).join(' | ') + ' |';
    console.log(
      `\nFloe benchmark, ${new Date().toISOString()}, ${os.cpus().length} CPUs, node ${process.version}, wrk ${DURATION} per run`,
    );
    console.log(fmt(header));
    console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
    for (const r of rows) console.log(fmt(r));
    console.log(
      '\nRatios are floe / baseline. Latency: lower is better (target < 1.5x). Throughput: higher is better (NAR target >= 0.5x).',
    );

    console.log(`\nRegistry at 10,000 flakes (50,000 releases), embedded backend, wrk 8 connections:`);
    const reg = await registryBench(work, DURATION);
    const rh = ['measure', 'req/s', 'p50 (ms)', 'p99 (ms)'];
    const rw = rh.map((h, i) => Math.max(h.length, ...reg.map((r) => r[i]!.length)));
    const rf = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(rw[i]!)).join(' | ') + ' |';
    console.log(rf(rh));
    console.log('|' + rw.map((w) => '-'.repeat(w + 2)).join('|') + '|');
    for (const r of reg) console.log(rf(r));
    for (const r of reg)
      results.push({
        measure: `registry, 10k flakes: ${r[0]}`,
        unit: 'ms',
        processes: 1,
        floe: 'floe 1p (SQLite+files)',
        p50ms: Number(r[2]),
        p99ms: Number(r[3]),
        rps: Number(r[1]),
      });

    console.log(POLICY_TITLE);
    const pol = await policyBench(work, DURATION);
    printTable(POLICY_HEADER, policyCells(pol));
    for (const r of pol)
      results.push({
        measure: `policies: ${r.label}`,
        unit: '',
        processes: 1,
        floe: 'floe 1p (SQLite+files)',
        baseline: r.without,
        value: r.with,
        ratio: r.with / r.without,
      });

    if (spawnSync('sh', ['-c', 'command -v nix']).status === 0) {
      console.log('\nfloe push against nix copy (same server, same closure shape):');
      const rows = await pushBench(work);
      const ph = ['measure', ...PUSH_COLUMNS];
      const pw = ph.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const pf = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(pw[i]!)).join(' | ') + ' |';
      console.log(pf(ph));
      console.log('|' + pw.map((w) => '-'.repeat(w + 2)).join('|') + '|');
      for (const r of rows) console.log(pf(r));
      for (const r of rows)
        results.push({
          measure: `push: ${r[0]}`,
          unit: 's',
          processes: 1,
          floe: 'floe 1p (SQLite+files)',
          value: Number(r[1]),
          detail: r[2],
        });
    }

    console.log(`\nUploads and reads together (embedded backend; uploads by curl, reads by wrk, 4 connections):`);
    const up = await uploadsBench(work, DURATION);
    const uh = ['measure', 'verifier threads', 'ratio', 'FLOE_VERIFY_THREADS=0', 'ratio'];
    const uw = uh.map((h, i) => Math.max(h.length, ...up.map((r) => r[i]!.length)));
    const uf = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(uw[i]!)).join(' | ') + ' |';
    console.log(uf(uh));
    console.log('|' + uw.map((w) => '-'.repeat(w + 2)).join('|') + '|');
    for (const r of up) console.log(uf(r));
    for (const r of up)
      results.push({
        measure: `uploads: ${r[0]}`,
        unit: '',
        processes: 1,
        floe: 'floe 1p (SQLite+files)',
        value: Number.parseFloat(r[1]!),
        detail: r.slice(2).join(' '),
      });
    console.log(S3_READS_TITLE);
    const s3Rows = await s3ReadsBench(work);
    printTable(['measure', ...S3_READS_COLUMNS], s3Rows);
    for (const r of s3Rows)
      results.push({
        measure: `s3 reads: ${r[0]}`,
        unit: 'MiB/s',
        processes: 1,
        floe: 'floe 1p (SQLite+S3)',
        value: Number(r[1]),
        ...(r[2] ? { ratio: Number.parseFloat(r[2]) } : {}),
      });
    const meta = {
      at: new Date().toISOString(),
      cpus: os.availableParallelism(),
      node: process.version,
      duration: DURATION,
      processes: PROCESSES,
    };
    writeFileSync(JSON_OUT, JSON.stringify({ ...meta, results }, null, 2) + '\n');
    console.log(`\nmachine-readable result: ${JSON_OUT}`);
  } finally {
    cleanup();
    for (const stop of stops) await stop().catch(() => undefined);
    rm(work);
  }
}

function rm(p: string): void {
  if (existsSync(p)) rmSync(p, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(`bench failed: ${(err as Error).stack ?? err}`, (err as Error).cause ?? '');
  process.exit(1);
});
