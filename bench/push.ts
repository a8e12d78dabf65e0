/**
 * `floe push` against `nix copy --to` on the same closure, same server, same run: 200 small paths
 * plus one 32 MiB path. Each tool pushes to its own org, so neither finds the other's uploads.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FLOE_BIN } from '../test/helpers/server.js';
import { serveForBench } from './serve.js';

const NIX_CONFIG = 'experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =';

export async function pushBench(work: string): Promise<string[][]> {
  const env = { ...process.env, NIX_CONFIG, XDG_CACHE_HOME: path.join(work, 'push-xdg') };
  const expr = path.join(work, 'push-closure.nix');
  const tag = Date.now().toString(36);
  writeFileSync(
    expr,
    `{ who }: let leaf = i: derivation { name = "pb-${tag}-\${who}-\${toString i}"; builder = "/bin/sh"; args = [ "-c" "echo \${who} \${toString i} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
  big = derivation { name = "pb-${tag}-\${who}-big"; builder = "/bin/sh"; args = [ "-c" "head -c 33554432 /dev/urandom > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "pb-${tag}-\${who}-top"; builder = "/bin/sh"; args = [ "-c" "echo \${big} \${toString (builtins.genList leaf 200)} > $out" ]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }\n`,
  );
  const build = (who: string) =>
    execFileSync('nix-build', [expr, '--argstr', 'who', who, '--no-out-link'], {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split('\n')
      .at(-1)!;
  const viaNix = build('nix');
  const viaFloe = build('floe');

  const dataDir = path.join(work, 'push-data');
  const server = await serveForBench(dataDir);
  const url = server.url;
  try {
    const admin = readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
    const call = async (p: string, body: unknown) => {
      const res = await fetch(`${url}${p}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      return (await res.json()) as Record<string, string>;
    };
    const tokenFor = async (org: string) => {
      await call('/api/v1/orgs', { name: org });
      return (await call('/api/v1/tokens', { org, scopes: ['read', 'write'] })).token!;
    };
    const nixToken = await tokenFor('vianix');
    const floeToken = await tokenFor('viafloe');
    const netrc = path.join(work, 'push-netrc');
    writeFileSync(netrc, `machine 127.0.0.1 password ${nixToken}\n`, { mode: 0o600 });
    const time = (f: () => void) => {
      const t = process.hrtime.bigint();
      f();
      return Number(process.hrtime.bigint() - t) / 1e9;
    };
    const nixSecs = time(() =>
      execFileSync('nix', ['copy', '--option', 'netrc-file', netrc, '--to', `${url}/cache?compression=zstd`, viaNix], {
        env,
        stdio: 'ignore',
      }),
    );
    const floeSecs = time(() =>
      execFileSync(process.execPath, [FLOE_BIN, 'push', viaFloe], {
        env: { ...env, FLOE_SERVER: url, FLOE_TOKEN: floeToken },
        stdio: 'ignore',
      }),
    );
    return [
      ['push 202 paths (200 small + 32 MiB), nix copy --to (zstd)', nixSecs.toFixed(2), ''],
      [
        'push the same shape, floe push (4 parallel, zstd)',
        floeSecs.toFixed(2),
        `${(nixSecs / floeSecs).toFixed(2)}x faster`,
      ],
    ];
  } finally {
    server.stop();
  }
}
