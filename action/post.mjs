// Post step of the Floe action: stop the background watcher (it records what is new first), then
// push everything left in the queue within drain-timeout.
import { readFileSync } from 'node:fs';
import { alive, floe, getState, info, input } from './lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function post() {
  const pid = Number(getState('watcher_pid'));
  if (!pid) return info('floe: nothing to push (push: false, a fork pull request, or the main step failed early)');
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    /* already gone: the queue still holds what it recorded */
  }
  for (let i = 0; i < 300 && alive(pid); i++) await sleep(100);
  try {
    process.stdout.write(`::group::floe watch-store log\n${readFileSync(getState('log'), 'utf8')}::endgroup::\n`);
  } catch {
    /* no log */
  }
  const slice = getState('slice');
  const r = await floe(['watch-store', '--drain', '--queue', getState('queue'), '--baseline', getState('baseline'), ...(slice ? ['--slice', slice] : []), '--timeout', input('drain-timeout', '10m')]);
  if (r.code !== 0) {
    process.stdout.write('::error::floe: some store paths were not pushed (see above)\n');
    process.exitCode = 1;
  }
}

post().catch((err) => {
  process.stdout.write(`::error::${err.message}\n`);
  process.exitCode = 1;
});
