/**
 * `floe --version`: the package version and the commit it was built from. The commit comes from
 * dist/build-info.json (stamped by scripts/build-info.mjs at build and pack time); a checkout whose build
 * predates the stamp asks git; anything else says "unknown" rather than failing.
 */
import type { Command } from 'commander';
import { CliExit } from './client.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  version: string;
  commit: string | null;
  dirty: boolean;
}

/** The package root: dist/src/cli/version.js is three levels below it (src/cli/version.ts two, under vitest). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'floe') return dir;
    } catch {
      // not here: go up
    }
    dir = path.dirname(dir);
  }
  return dir;
}

function readJson(file: string): Record<string, unknown> | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

function gitCommit(root: string): string | null {
  try {
    const stdio: ['ignore', 'pipe', 'ignore'] = ['ignore', 'pipe', 'ignore'];
    const out = execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], { encoding: 'utf8', stdio });
    return /^[0-9a-f]{40}$/.test(out.trim()) ? out.trim() : null;
  } catch {
    return null;
  }
}

export function buildInfo(): BuildInfo {
  const root = packageRoot();
  const pkg = readJson(path.join(root, 'package.json'));
  const stamped = readJson(path.join(root, 'dist/build-info.json'));
  const version = typeof pkg?.version === 'string' ? pkg.version : 'unknown';
  if (stamped && typeof stamped.commit === 'string' && stamped.version === version) {
    return { version, commit: stamped.commit, dirty: stamped.dirty === true };
  }
  return { version, commit: gitCommit(root), dirty: false };
}

/** One line, e.g. `floe 0.2.0 (commit 016df87c…, Node v24.21.0)`; the full hash so it can be looked up. */
export function versionLine(info: BuildInfo = buildInfo()): string {
  const commit = info.commit ? `commit ${info.commit}${info.dirty ? ' with local changes' : ''}` : 'commit unknown';
  return `floe ${info.version} (${commit}, Node ${process.version})`;
}

/** `-V, --version` on the root command, computed only when asked (the git fallback spawns a process). */
export function registerVersionOption(program: Command, write: (text: string) => void): void {
  program.option('-V, --version', 'print the version and the commit it was built from');
  program.on('option:version', () => {
    write(`${versionLine()}\n`);
    // Ends the command line like --help does: main() returns 0, nothing else runs.
    throw new CliExit(0);
  });
}
