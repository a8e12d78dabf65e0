/**
 * Nix for the benchmarks: the host's (Debian's 2.8) or, with BENCH_NIX=modern, a current one in
 * the chroot of ../shared/tools/nix-modern (it shares /tmp and loopback with the host, keeps its
 * own /nix/store, and passes NIX_CONFIG and XDG_CACHE_HOME through; keep every path under /tmp).
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const NIX_MODERN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../shared/tools/nix-modern');

/** Runs a Nix command (`nix`, `nix-build`, `nix-store`) of the Nix the benchmarks use. */
export type NixExec = (
  command: 'nix' | 'nix-build' | 'nix-store',
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  stdio?: 'ignore' | 'pipe',
) => string;

const exec =
  (prefix: readonly string[]): NixExec =>
  (command, args, env, stdio = 'ignore') => {
    const [file, ...rest] = [...prefix, command, ...args];
    const out = execFileSync(file!, rest, { env, encoding: 'utf8', stdio: ['ignore', stdio, 'ignore'] });
    return out ?? '';
  };

export const hostNix: NixExec = exec([]);
export const modernNix: NixExec = exec([NIX_MODERN]);

/** The Nix that BENCH_NIX names: `host` (default) or `modern`. */
export function benchNix(): { label: 'host' | 'modern'; exec: NixExec } {
  const which = process.env.BENCH_NIX ?? 'host';
  if (which === 'modern') return { label: 'modern', exec: modernNix };
  if (which !== 'host') throw new Error(`BENCH_NIX must be host or modern, not ${JSON.stringify(which)}`);
  return { label: 'host', exec: hostNix };
}

export function nixVersion(nix: NixExec = hostNix): string {
  return nix('nix', ['--version'], process.env, 'pipe').trim();
}

export function nixBuild(
  expr: string,
  env: NodeJS.ProcessEnv,
  args: readonly string[] = [],
  nix: NixExec = hostNix,
): string {
  return nix('nix-build', [expr, ...args, '--no-out-link'], env, 'pipe')
    .trim()
    .split('\n')
    .at(-1)!;
}
