/**
 * Real Nix clients for the tests: Debian's Nix 2.8 on the host, and the current Nix (2.26) in the
 * chroot made by ../shared/tools/nix-modern. Both share /tmp and loopback, so fixtures live in /tmp.
 * A missing Nix skips its suite on a laptop, but fails under CI=true.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './server.js';

const execFileAsync = promisify(execFile);

export const BASE_NIX_CONFIG =
  'experimental-features = nix-command flakes\nsandbox = false\nbuild-users-group =\nsubstituters =';

export interface NixResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface NixRunner {
  name: string;
  version(): Promise<string | undefined>;
  /**
   * Runs a Nix command; `cacheHome` separates simulated machines (Nix caches narinfo lookups per
   * user); `env` is added to the environment (e.g. `freshStoreEnv` for Nix 2.8).
   */
  run(args: string[], opts: { cacheHome: string; input?: string; env?: NodeJS.ProcessEnv }): Promise<NixResult>;
}

function spawnCollect(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<NixResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

export const hostNix: NixRunner = {
  name: 'nix-2.8',
  async version() {
    try {
      const { stdout } = await execFileAsync('nix', ['--version']);
      return stdout.trim();
    } catch {
      return undefined;
    }
  },
  run(args, opts) {
    return spawnCollect(args[0]!, args.slice(1), {
      ...process.env,
      NIX_CONFIG: BASE_NIX_CONFIG,
      XDG_CACHE_HOME: opts.cacheHome,
      ...opts.env,
    });
  },
};

/**
 * A brand-new machine for the host's Nix 2.8: its own store, state and log directories (a store
 * outside /nix/store needs no sandbox to build, unlike a chroot store), so nothing fetched before
 * is there. Pair it with a new `cacheHome`.
 */
export function freshStoreEnv(root: string): NodeJS.ProcessEnv {
  return {
    NIX_STORE_DIR: path.join(root, 'store'),
    NIX_STATE_DIR: path.join(root, 'state'),
    NIX_LOG_DIR: path.join(root, 'log'),
  };
}

export const NIX_MODERN = path.resolve(REPO_ROOT, '../shared/tools/nix-modern');

export const modernNix: NixRunner = {
  name: 'nix-modern',
  async version() {
    if (!existsSync(NIX_MODERN)) return undefined;
    try {
      const { stdout } = await execFileAsync(NIX_MODERN, ['nix', '--version'], { timeout: 300_000 });
      return stdout.trim();
    } catch {
      return undefined;
    }
  },
  run(args, opts) {
    // nix-modern appends NIX_CONFIG to its own base config and passes XDG_CACHE_HOME through.
    return spawnCollect(NIX_MODERN, args, {
      ...process.env,
      NIX_CONFIG: 'substituters =',
      XDG_CACHE_HOME: opts.cacheHome,
      ...opts.env,
    });
  },
};

/** Resolves to the runner's version, or undefined (skip); throws under CI when Nix is missing. */
export async function requireNix(runner: NixRunner): Promise<string | undefined> {
  const v = await runner.version();
  if (!v && process.env.CI)
    throw new Error(
      `${runner.name} is not available, and CI=true forbids skipping the real-Nix tests (.ci/run installs it)`,
    );
  return v;
}

export async function fixtureDir(prefix: string): Promise<string> {
  return mkdtemp(path.join('/tmp', `floe-${prefix}-`));
}

/** A two-path closure (top references dep) with unique content per seed. */
export async function writeClosureExpr(dir: string): Promise<string> {
  const file = path.join(dir, 'closure.nix');
  await writeFile(
    file,
    `{ seed }:
let dep = derivation { name = "dep-\${seed}"; builder = "/bin/sh"; args = ["-c" "echo dependency \${seed} > $out"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; };
in derivation { name = "top-\${seed}"; builder = "/bin/sh"; args = ["-c" "mkdir $out; echo \${dep} > $out/ref; echo top \${seed} > $out/data; ln -s data $out/link"]; PATH = "/usr/bin:/bin"; system = builtins.currentSystem; }
`,
  );
  return file;
}

export async function buildClosure(nix: NixRunner, expr: string, seed: string, cacheHome: string): Promise<string> {
  const r = await nix.run(['nix-build', expr, '--argstr', 'seed', seed, '--no-out-link'], { cacheHome });
  if (r.code !== 0) throw new Error(`nix-build failed (${nix.name}):\n${r.stderr}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

export async function writeNetrc(dir: string, name: string, token: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, `machine 127.0.0.1 password ${token}\n`, { mode: 0o600 });
  return file;
}

/**
 * `nix copy --from <cache> --to <store> <paths>`: substitution as a machine does it, signatures
 * required (by `key`), authenticated by `netrc`; `noNegativeCache`: misses are not remembered.
 */
export function copyFromCacheArgs(
  o: { key: string; netrc: string; from: string; to: string; noNegativeCache?: boolean },
  ...paths: string[]
): string[] {
  const config = ['require-sigs', 'true', 'trusted-public-keys', o.key];
  // A machine that asked before must not remember the miss (Nix caches negative answers).
  if (o.noNegativeCache) config.push('narinfo-cache-negative-ttl', '0');
  config.push('netrc-file', o.netrc);
  const options = config.flatMap((v, i) => (i % 2 === 0 ? ['--option', v] : [v]));
  return ['nix', 'copy', ...options, '--from', o.from, '--to', o.to, ...paths];
}
