/**
 * `npm run bench`: Floe against a static-file baseline (nginx serving the same narinfo and NAR
 * files from disk) on this machine, in one run, reported as ratios. Also measures `nix copy`
 * upload throughput against Nix's own `file://` binary cache as the baseline.
 *
 * Load comes from wrk in a separate process. Numbers are for this machine only; the ratios are
 * what to compare across runs.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeNix32 } from '../src/nix/nix32.js';
import { serializeNar } from '../src/nix/nar.js';
import { parseNarInfo } from '../src/nix/narinfo.js';
import { FLOE_BIN, freePort } from '../test/helpers/server.js';

const DURATION = process.env.BENCH_DURATION ?? '8s';
const PATHS = Number(process.env.BENCH_PATHS ?? 2000);
const BIG_NAR_MIB = Number(process.env.BENCH_NAR_MIB ?? 64);

function ensureTools(): void {
  const missing = ['nginx', 'wrk'].filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`benchmark needs ${missing.join(' and ')}: apt-get install nginx-light wrk`);
  console.log(`installing ${missing.join(', ')} from Debian...`);
  execFileSync('sh', ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk >/dev/null'], { stdio: 'inherit' });
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

const WRK_SCRIPT = `
local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do paths[#paths + 1] = line end
local auth = os.getenv("WRK_AUTH")
local i = 0
request = function()
  i = i + 1
  local headers = {}
  if auth and auth ~= "" then headers["Authorization"] = auth end
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %f %f %f %f %d\\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.bytes / (summary.duration / 1e6), summary.errors.status))
end
`;

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

async function main(): Promise<void> {
  ensureTools();
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-'));
  chmodSync(work, 0o755);
  const children: ChildProcess[] = [];
  let nginxProcess: ChildProcess | undefined;
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    // SIGTERM lets the nginx master stop its workers; SIGKILL would orphan them.
    nginxProcess?.kill('SIGTERM');
  };
  process.on('exit', cleanup);
  try {
    // --- Floe, with data uploaded through its own API
    const floePort = await freePort();
    const floeUrl = `http://127.0.0.1:${floePort}`;
    const dataDir = path.join(work, 'floe-data');
    const floe = spawn(process.execPath, [FLOE_BIN, 'serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${floePort}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, FLOE_LOG_LEVEL: 'warn' },
    });
    children.push(floe);
    await waitFor(`${floeUrl}/healthz`);
    const admin = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    const call = async (method: string, p: string, body: unknown, token = admin) => {
      const res = await fetch(`${floeUrl}${p}`, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
      return res.json() as Promise<Record<string, string>>;
    };
    await call('POST', '/api/v1/orgs', { name: 'bench' });
    const token = (await call('POST', '/api/v1/tokens', { org: 'bench', scopes: ['read', 'write'] })).token!;
    const auth = `Basic ${Buffer.from(`:${token}`).toString('base64')}`;

    console.log(`uploading ${PATHS} paths and one ${BIG_NAR_MIB} MiB NAR...`);
    const hashes: string[] = [];
    const upload = async (name: string, nar: Buffer) => {
      const hashPart = encodeNix32(randomBytes(20));
      const meta = { storePath: `/nix/store/${hashPart}-${name}`, narHash: `sha256:${encodeNix32(createHash('sha256').update(nar).digest())}`, narSize: nar.length, references: [] };
      const res = await fetch(`${floeUrl}/api/v1/cache/paths`, { method: 'PUT', headers: { Authorization: auth }, body: new Uint8Array(Buffer.concat([Buffer.from(JSON.stringify(meta) + '\n'), nar])) });
      if (res.status !== 201) throw new Error(`upload failed: ${res.status} ${await res.text()}`);
      return hashPart;
    };
    for (let i = 0; i < PATHS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, PATHS - i) }, (_, j) => upload(`p${i + j}`, serializeNar({ type: 'regular', contents: randomBytes(512) }))),
      );
      hashes.push(...batch);
    }
    const bigHash = await upload('big', serializeNar({ type: 'regular', contents: randomBytes(BIG_NAR_MIB << 20) }));

    // --- The same files, as a static binary cache for nginx
    const staticRoot = path.join(work, 'static');
    mkdirSync(path.join(staticRoot, 'cache/nar'), { recursive: true });
    for (const h of [...hashes, bigHash]) {
      const text = await (await fetch(`${floeUrl}/cache/${h}.narinfo`, { headers: { Authorization: auth } })).text();
      writeFileSync(path.join(staticRoot, `cache/${h}.narinfo`), text);
      if (h === bigHash) {
        const url = parseNarInfo(text).url;
        const nar = Buffer.from(await (await fetch(`${floeUrl}/cache/${url}`, { headers: { Authorization: auth } })).arrayBuffer());
        writeFileSync(path.join(staticRoot, 'cache', url), nar);
        writeFileSync(path.join(work, 'big-nar-path'), `/cache/${url}\n`);
      }
    }
    execFileSync('chmod', ['-R', 'a+rX', work]);
    const nginxPort = await freePort();
    const nginxConf = path.join(work, 'nginx.conf');
    writeFileSync(
      nginxConf,
      `daemon off; worker_processes 1; pid ${work}/nginx.pid; error_log ${work}/nginx-error.log;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  types { text/x-nix-narinfo narinfo; }
  server { listen 127.0.0.1:${nginxPort}; root ${staticRoot}; } }\n`,
    );
    const nginx = spawn('nginx', ['-c', nginxConf, '-p', work], { stdio: 'ignore' });
    nginxProcess = nginx;
    const nginxUrl = `http://127.0.0.1:${nginxPort}`;
    await waitFor(`${nginxUrl}/cache/${hashes[0]}.narinfo`);

    const hitFile = path.join(work, 'hits.txt');
    writeFileSync(hitFile, hashes.map((h) => `/cache/${h}.narinfo`).join('\n') + '\n');
    const missFile = path.join(work, 'misses.txt');
    writeFileSync(missFile, Array.from({ length: 2000 }, () => `/cache/${encodeNix32(randomBytes(20))}.narinfo`).join('\n') + '\n');
    const narFile = path.join(work, 'big-nar-path');

    const rows: string[][] = [];
    const measure = (label: string, file: string, conns: number, kind: 'latency' | 'rps' | 'bytes') => {
      const n = wrk(nginxUrl, file, '', conns, work);
      const f = wrk(floeUrl, file, auth, conns, work);
      // wrk counts every status >= 400; misses are 404 by design, hits must have none.
      if (file !== missFile && (f.non2xx > 0 || n.non2xx > 0)) throw new Error(`${label}: ${f.non2xx} (floe) / ${n.non2xx} (nginx) error statuses`);
      if (kind === 'latency') {
        rows.push([`${label} p50 (ms)`, n.p50ms.toFixed(3), f.p50ms.toFixed(3), (f.p50ms / n.p50ms).toFixed(2) + 'x']);
        rows.push([`${label} p99 (ms)`, n.p99ms.toFixed(3), f.p99ms.toFixed(3), (f.p99ms / n.p99ms).toFixed(2) + 'x']);
      } else if (kind === 'rps') {
        rows.push([`${label} (req/s)`, n.rps.toFixed(0), f.rps.toFixed(0), (f.rps / n.rps).toFixed(2) + 'x']);
      } else {
        rows.push([`${label} (MiB/s)`, (n.bytesPerSec / 2 ** 20).toFixed(0), (f.bytesPerSec / 2 ** 20).toFixed(0), (f.bytesPerSec / n.bytesPerSec).toFixed(2) + 'x']);
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
      const nixEnv = { ...process.env, NIX_CONFIG: 'experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =', XDG_CACHE_HOME: path.join(work, 'xdg') };
      // One fresh path per measurement: nix copy skips paths the destination already has.
      const build = (tag: string) => {
        const expr = path.join(work, `upload-${tag}.nix`);
        writeFileSync(expr, `derivation { name = "upload-bench-${tag}-${Date.now()}"; builder = "/bin/sh"; args = ["-c" "head -c ${BIG_NAR_MIB * 1048576} /dev/urandom > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }`);
        return execFileSync('nix-build', [expr, '--no-out-link'], { env: nixEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').at(-1)!;
      };
      const netrc = path.join(work, 'netrc');
      writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`, { mode: 0o600 });
      const time = (args: string[]) => {
        const t = process.hrtime.bigint();
        execFileSync('nix', args, { env: nixEnv, stdio: 'ignore' });
        return Number(process.hrtime.bigint() - t) / 1e9;
      };
      for (const compression of ['zstd', 'none']) {
        const fileCache = path.join(work, `file-cache-${compression}`);
        const out = build(compression);
        const base = time(['copy', '--to', `file://${fileCache}?compression=${compression}`, out]);
        const floeSecs = time(['copy', '--option', 'netrc-file', netrc, '--to', `${floeUrl}/cache?compression=${compression}`, out]);
        rm(path.join(work, 'xdg'));
        rows.push([
          `nix copy --to, ${BIG_NAR_MIB} MiB, compression=${compression} (MiB/s)`,
          `${(BIG_NAR_MIB / base).toFixed(0)} (file://)`,
          (BIG_NAR_MIB / floeSecs).toFixed(0),
          (base / floeSecs).toFixed(2) + 'x',
        ]);
      }
    } else {
      rows.push(['nix copy upload', 'skipped: nix not installed', '', '']);
    }

    const header = ['measure', 'baseline (nginx)', 'floe', 'floe / baseline'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const fmt = (r: string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
    console.log(`\nFloe benchmark, ${new Date().toISOString()}, ${os.cpus().length} CPUs, node ${process.version}`);
    console.log(fmt(header));
    console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|');
    for (const r of rows) console.log(fmt(r));
    console.log('\nLatency: lower is better (ratio < 1.5x is the target). Throughput: higher is better (NAR >= 0.5x is the target).');
  } finally {
    cleanup();
    rm(work);
  }
}

function rm(p: string): void {
  if (existsSync(p)) rmSync(p, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
