// Stamps dist/build-info.json with the package version and the git commit at build/pack time, so an installed
// tarball (which has no .git) can still say which commit it was built from. Never fails the build.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

function git(...args) {
  try {
    return execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

// FLOE_BUILD_COMMIT lets builds without .git (a Nix derivation, a source tarball) pass the commit in.
const commit = process.env.FLOE_BUILD_COMMIT || git('rev-parse', 'HEAD') || null;
const fromGit = commit && !process.env.FLOE_BUILD_COMMIT;
const dirty = fromGit ? git('status', '--porcelain', '--untracked-files=no') !== '' : false;
mkdirSync(path.join(root, 'dist'), { recursive: true });
writeFileSync(path.join(root, 'dist/build-info.json'), JSON.stringify({ version, commit, dirty }, null, 2) + '\n');
