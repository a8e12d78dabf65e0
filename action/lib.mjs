// Runner plumbing for the Floe action, with no dependencies: inputs, GITHUB_ENV / GITHUB_PATH /
// GITHUB_OUTPUT / GITHUB_STATE files, and the CLI of this checkout.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const actionDir = path.dirname(fileURLToPath(import.meta.url));
/** The action runs the CLI of its own checkout (the Floe repository at the ref in `uses:`). */
export const repoRoot = path.resolve(actionDir, '..');
export const floeBin = path.join(repoRoot, 'bin', 'floe.js');

export function input(name, fallback = '') {
  const v = process.env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`];
  return v === undefined || v.trim() === '' ? fallback : v.trim();
}

export function booleanInput(name, fallback) {
  const v = input(name, fallback).toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new Error(`input ${name} must be true or false, got ${JSON.stringify(v)}`);
}

/** `NAME<<DELIM` form, safe for any value (a value cannot contain a random delimiter line). */
function appendKeyValue(fileVar, name, value) {
  const file = process.env[fileVar];
  if (!file) throw new Error(`$${fileVar} is not set: is this running as a GitHub Actions step?`);
  const delim = `floe_${randomUUID()}`;
  appendFileSync(file, `${name}<<${delim}\n${value}\n${delim}\n`);
}

export const exportVariable = (name, value) => {
  appendKeyValue('GITHUB_ENV', name, value);
  process.env[name] = value;
};
export const setOutput = (name, value) => appendKeyValue('GITHUB_OUTPUT', name, value);
export const saveState = (name, value) => appendKeyValue('GITHUB_STATE', name, value);
export const getState = (name) => process.env[`STATE_${name}`] ?? '';

export function addPath(dir) {
  if (!process.env.GITHUB_PATH) throw new Error('$GITHUB_PATH is not set: is this running as a GitHub Actions step?');
  appendFileSync(process.env.GITHUB_PATH, `${dir}\n`);
  process.env.PATH = `${dir}${path.delimiter}${process.env.PATH ?? ''}`;
}

export const info = (line) => process.stdout.write(`${line}\n`);
export const warning = (line) => process.stdout.write(`::warning::${line}\n`);

/** Runs the checkout's CLI, output to the step log; resolves to its exit code. */
export function floe(args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [floeBin, ...args], { stdio: ['ignore', opts.stdout ?? 'inherit', 'inherit'], env: process.env });
    let out = '';
    child.stdout?.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout: out }));
  });
}

/** Builds the CLI once if this checkout has no dist/ yet (the repository does not commit it). */
export function ensureBuilt() {
  if (existsSync(path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'))) return;
  info('floe: building the CLI from the action checkout (npm ci && npm run build)');
  for (const args of [['ci', '--no-audit', '--no-fund'], ['run', 'build']]) {
    const r = spawnSync('npm', args, { cwd: repoRoot, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed in ${repoRoot}`);
  }
}

/**
 * A pull request from a fork runs code the repository's owners have not reviewed: it must not
 * push (or get a token that could). Decided from the event payload, not from inputs.
 */
export function isForkPullRequest() {
  const name = process.env.GITHUB_EVENT_NAME ?? '';
  if (!name.startsWith('pull_request')) return false;
  let event;
  try {
    event = JSON.parse(readFileSync(process.env.GITHUB_EVENT_PATH ?? '', 'utf8'));
  } catch {
    return true; // a pull request we cannot inspect is treated as untrusted
  }
  const head = event?.pull_request?.head?.repo;
  return !head || head.fork === true || head.full_name !== process.env.GITHUB_REPOSITORY;
}

/** Whether a process runs (a zombie left by a reparented child counts as gone). */
export function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (macOS): kill(0) is the answer
  }
}
