/**
 * `floe push` against `nix copy --to` on the same closure, same server, same run: 200 small paths
 * plus one 32 MiB path, and one 64 MiB path alone (base64 text: it compresses, as binaries do).
 * Each tool pushes to its own org, so neither finds the other's uploads; every round builds new
 * closures and alternates which tool goes first. Wall time, the client's CPU (its process and the
 * children it waits for: `nix path-info`, for floe) and the server's CPU, as medians over
 * BENCH_PUSH_ROUNDS rounds (default 3): the machine may be shared, a single run says little.
 * `node dist/bench/push.js` runs only this part. FLOE_BENCH_BIN=a/bin/floe.js,b/bin/floe.js compares
 * builds in the same run: each build's server and client, each round alternating between them (and
 * `nix copy` to each build's server), so whatever drifts on the machine lands on every side.
 */
import { nixBuild } from './nix.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FLOE_BIN } from '../test/helpers/server.js';
import { benchOrgToken, serveForBench } from './serve.js';

const NIX_CONFIG = 'experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =';
const ROUNDS = Number(process.env.BENCH_PUSH_ROUNDS ?? 3);
const BINS = (process.env.FLOE_BENCH_BIN ?? FLOE_BIN).split(',');
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User + system seconds of a process (all its threads) and of the children it has waited for. */
function cpuSeconds(pid: number | 'self'): { own: number; children: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const at = (i: number) => Number(fields[i - 3]) / TICK;
  return { own: at(14) + at(15), children: at(16) + at(17) };
}

interface Run {
  wall: number;
  client: number;
  server: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function pushBench(work: string): Promise<string[][]> {
  const env = { ...process.env, NIX_CONFIG, XDG_CACHE_HOME: path.join(work, 'push-xdg') };
  const tag = Date.now().toString(36);
  const mixed = path.join(work, 'push-closure.nix');
  writeFileSync(
    mixed,
    `{ who }: let leaf = i: derivation { name = "pb-${tag}-\${who}-\${toString i}"; builder = "/bin/sh"; args = [ "-c" "echo \${who} \${toString i} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
  big = derivation { name = "pb-${tag}-\${who}-big"; builder = "/bin/sh"; args = [ "-c" "head -c 33554432 /dev/urandom > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "pb-${tag}-\${who}-top"; builder = "/bin/sh"; args = [ "-c" "echo \${big} \${toString (builtins.genList leaf 200)} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
  );
  const small = path.join(work, 'push-small.nix');
  writeFileSync(
    small,
    `{ who }: let leaf = i: derivation { name = "ps-${tag}-\${who}-\${toString i}"; builder = "/bin/sh"; args = [ "-c" "echo \${who} \${toString i} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "ps-${tag}-\${who}-top"; builder = "/bin/sh"; args = [ "-c" "echo \${toString (builtins.genList leaf 200)} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
  );
  const large = path.join(work, 'push-large.nix');
  writeFileSync(
    large,
    `{ who }: derivation { name = "pl-${tag}-\${who}"; builder = "/bin/sh"; args = [ "-c" "base64 /dev/urandom | head -c 67108864 > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
  );
  const build = (expr: string, who: string) => nixBuild(expr, env, ['--argstr', 'who', who]);

  const servers: Array<{ bin: string; url: string; dataDir: string; pid: number; stop(): void }> = [];
  try {
    for (const [i, bin] of BINS.entries()) {
      const dataDir = path.join(work, `push-data-${i}`);
      servers.push({ bin, dataDir, ...(await serveForBench(dataDir, {}, { bin })) });
    }
    const netrc = path.join(work, 'push-netrc');
    const measure = (pid: number, f: () => void): Run => {
      const [c0, s0, t0] = [cpuSeconds('self').children, cpuSeconds(pid).own, process.hrtime.bigint()];
      f();
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      return { wall, client: cpuSeconds('self').children - c0, server: cpuSeconds(pid).own - s0 };
    };
    type Server = (typeof servers)[number];
    const nixCopy = (server: Server, token: string, storePath: string) => {
      writeFileSync(netrc, `machine 127.0.0.1 password ${token}\n`, { mode: 0o600 });
      return measure(server.pid, () =>
        execFileSync(
          'nix',
          ['copy', '--option', 'netrc-file', netrc, '--to', `${server.url}/cache?compression=zstd`, storePath],
          { env, stdio: 'ignore' },
        ),
      );
    };
    const floePush = (server: Server, token: string, storePath: string) =>
      measure(server.pid, () =>
        execFileSync(process.execPath, [server.bin, 'push', storePath], {
          env: { ...env, FLOE_SERVER: server.url, FLOE_TOKEN: token },
          stdio: 'ignore',
        }),
      );
    // BENCH_PUSH_SHAPES=small,mixed,large picks shapes (default mixed,large); small: 201 small paths alone.
    const shapes = (process.env.BENCH_PUSH_SHAPES ?? 'mixed,large').split(',') as Array<'mixed' | 'large' | 'small'>;
    const runs = servers.map(() => ({
      mixed: { nix: [] as Run[], floe: [] as Run[] },
      large: { nix: [] as Run[], floe: [] as Run[] },
      small: { nix: [] as Run[], floe: [] as Run[] },
    }));
    for (let round = 0; round < ROUNDS; round++) {
      for (const shape of shapes) {
        const expr = { mixed, large, small }[shape];
        // Every build and tool takes its turn first in some round.
        const order = servers.map((_, i) => (i + round) % servers.length);
        for (const s of order) {
          const tools = (round + s) % 2 === 0 ? (['nix', 'floe'] as const) : (['floe', 'nix'] as const);
          for (const tool of tools) {
            const who = `${tool}${shape}${round}b${s}`;
            const storePath = build(expr, who);
            const server = servers[s]!;
            const token = (await benchOrgToken(server.url, server.dataDir, who)).token;
            runs[s]![shape][tool].push(
              tool === 'nix' ? nixCopy(server, token, storePath) : floePush(server, token, storePath),
            );
          }
        }
      }
    }
    const row = (label: string, rs: Run[], baseline?: Run[]) => {
      const wall = median(rs.map((r) => r.wall));
      const ratio = baseline ? `${(median(baseline.map((r) => r.wall)) / wall).toFixed(2)}x faster` : '';
      const cpu = (k: 'client' | 'server') => median(rs.map((r) => r[k])).toFixed(2);
      return [label, wall.toFixed(2), ratio, cpu('client'), cpu('server')];
    };
    return servers.flatMap((server, i) => {
      const r = runs[i]!;
      const of = servers.length > 1 ? ` [${path.relative(process.cwd(), server.bin) || server.bin}]` : '';
      const rows: string[][] = [];
      if (r.mixed.nix.length)
        rows.push(
          row(`push 202 paths (200 small + 32 MiB), nix copy --to (zstd)${of}`, r.mixed.nix),
          row(`push the same shape, floe push (4 parallel)${of}`, r.mixed.floe, r.mixed.nix),
        );
      if (r.small.nix.length)
        rows.push(
          row(`push 201 small paths, nix copy --to (zstd)${of}`, r.small.nix),
          row(`push the same shape, floe push (4 parallel)${of}`, r.small.floe, r.small.nix),
        );
      if (r.large.nix.length)
        rows.push(
          row(`push one 64 MiB path (compressible), nix copy --to (zstd)${of}`, r.large.nix),
          row(`push the same shape, floe push${of}`, r.large.floe, r.large.nix),
        );
      return rows;
    });
  } finally {
    for (const server of servers) server.stop();
  }
}

/** The table's columns, after the measure's name. */
export const PUSH_COLUMNS = ['seconds', 'vs nix copy', 'client CPU s', 'server CPU s'];

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const work = mkdtempSync(path.join(os.tmpdir(), 'floe-bench-push-'));
  try {
    console.log(`floe push against nix copy, medians of ${ROUNDS} rounds, load average ${os.loadavg()[0]!.toFixed(2)}`);
    const rows = await pushBench(work);
    console.log(`| measure | ${PUSH_COLUMNS.join(' | ')} |\n|---|${PUSH_COLUMNS.map(() => '---|').join('')}`);
    for (const r of rows) console.log(`| ${r.join(' | ')} |`);
    console.log(`load average after: ${os.loadavg()[0]!.toFixed(2)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
