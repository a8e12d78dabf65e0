/** Nix for the benchmarks: build a derivation expression, its output path (the last line nix-build prints). */
import { execFileSync } from 'node:child_process';

export function nixBuild(expr: string, env: NodeJS.ProcessEnv, args: readonly string[] = []): string {
  return execFileSync('nix-build', [expr, ...args, '--no-out-link'], {
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  })
    .trim()
    .split('\n')
    .at(-1)!;
}
