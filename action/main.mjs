// Main step of the Floe action: log in with the job's OIDC token, configure Nix for the rest of the
// job, start pushing in the background (drained by post.mjs), optionally publish the flake.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addPath, alive, booleanInput, ensureBuilt, exportVariable, floe, floeBin, info, input, isForkPullRequest, saveState, setOutput, warning } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


/** Starts `floe watch-store` detached, and returns once it has taken its baseline of the store. */
async function startWatcher(dir, slice) {
  const queue = path.join(dir, 'push-queue.sqlite');
  const log = path.join(dir, 'watch-store.log');
  // The post step diffs against the same baseline, so even a watcher that died early loses nothing.
  const baseline = path.join(dir, 'store-baseline');
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [floeBin, 'watch-store', '--queue', queue, '--baseline', baseline, ...(slice ? ['--slice', slice] : [])], { detached: true, stdio: ['ignore', fd, fd], env: process.env });
  child.unref();
  saveState('watcher_pid', String(child.pid));
  saveState('queue', queue);
  saveState('baseline', baseline);
  saveState('slice', slice);
  saveState('log', log);
  for (let i = 0; i < 600; i++) {
    const text = readFileSync(log, 'utf8');
    if (/watching /.test(text)) return log;
    if (!alive(child.pid)) throw new Error(`floe watch-store did not start:\n${text}`);
    await sleep(100);
  }
  throw new Error('floe watch-store did not start within 60 s');
}

async function main() {
  const server = input('server').replace(/\/+$/, '');
  if (!server) throw new Error('input server is required (the URL of the Floe server)');
  const org = input('org');
  const slice = input('slice');
  const wantPush = booleanInput('push', 'true');
  const publish = booleanInput('publish', 'false');
  const includeOutput = input('include-output').split(/\s+/).filter(Boolean);
  ensureBuilt();

  // `floe` and FLOE_SERVER for the job's own steps (`floe push`, `floe publish`, ...).
  const temp = process.env.RUNNER_TEMP || os.tmpdir();
  const binDir = path.join(temp, 'floe-bin');
  mkdirSync(binDir, { recursive: true });
  writeFileSync(path.join(binDir, 'floe'), `#!/bin/sh\nexec '${process.execPath}' '${floeBin}' "$@"\n`);
  chmodSync(path.join(binDir, 'floe'), 0o755);
  addPath(binDir);
  exportVariable('FLOE_SERVER', server);

  if (isForkPullRequest()) {
    // Fork pull requests get no OIDC token from GitHub anyway; never hand their code a write token.
    warning('floe: pull request from a fork: not logging in, not pushing');
    if (org) {
      const r = await floe(['cache', 'use', '--org', org]);
      if (r.code !== 0) warning(`floe: could not configure ${org}'s public slices as a substituter`);
    }
    setOutput('substituter', `${server}/cache`);
    setOutput('pushing', 'false');
    return;
  }

  // Writes the netrc and a nix.conf block (substituter, the view's keys, netrc-file) in the user's
  // Nix configuration, which every later `nix` of the job reads.
  const login = await floe(['login', 'github-action', ...(org ? ['--org', org] : []), '--json'], { stdout: 'pipe' });
  if (login.code !== 0) throw new Error('floe login github-action failed: does the job have `permissions: id-token: write`, and does a Floe org trust this repository?');
  const summary = JSON.parse(login.stdout.trim().split('\n').at(-1));
  info(`floe: logged in${summary.org ? ` to ${summary.org}` : ''} (${(summary.scopes ?? []).join(', ')}); substituter ${summary.substituter}, configured in ${summary.nixConf}`);
  setOutput('substituter', summary.substituter);

  if (wantPush) {
    const dir = path.join(temp, 'floe');
    mkdirSync(dir, { recursive: true });
    const log = await startWatcher(dir, slice);
    info(`floe: pushing every store path this job builds or fetches, in the background (log: ${log}); the post step drains the queue`);
  }
  setOutput('pushing', String(wantPush));

  if (publish) {
    const r = await floe(['publish', ...(org ? ['--org', org] : []), ...(includeOutput.length ? ['--include-output', ...includeOutput] : [])]);
    if (r.code !== 0) throw new Error('floe publish failed');
  }
}

main().catch((err) => {
  process.stdout.write(`::error::${err.message}\n`);
  process.exitCode = 1;
});
